"""Upstream package repositories: the signed Debian archive and RPM repository "on the internet".

The air gap's `AptlyMirror` and `RepoSyncMirror` copy from these, so they carry what real ones
carry: packages built by the distributions' own tools, signed metadata, and keys published for
clients.

What is served (by nginx, plain HTTP on 127.0.0.2:8080 by default, as Debian mirrors do; HTTPS on
8443 with a CA made per instance when asked for)

    /debian/      dists/bookworm/{InRelease,Release,Release.gpg}
                  dists/bookworm/main/binary-amd64/Packages{,.gz}
                  pool/main/a/<name>/<name>_<version>_all.deb
    /rpm/         Packages/<name>-<version>-1.noarch.rpm   (each signed with rpmsign)
                  repodata/repomd.xml{,.asc} + primary/filelists/other (createrepo_c)
                  RPM-GPG-KEY-airgap-upstream
    /keys/        debian.asc, rpm.asc, wrong.asc (armored) and debian.gpg, rpm.gpg, wrong.gpg
                  (binary keyrings, what gpgv and aptly's `-keyring` read)
    /slow/…       the same tree at `slow_rate` bytes a second, to interrupt a mirror mid-download

The trees come from `upstream_repo_trees.py` (what the packages are, how they are built and
signed); this module serves them.

`UpstreamRepos` serves a revision; `publish(revision)` swaps the served tree with one symlink
rename, which is how "a new upstream version appears" in update tests.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path

from sandbox.process import ManagedProcess, http_status, polls, port_is_free
from sandbox.upstream_keys import KEY_USER_IDS
from sandbox.upstream_repo_trees import (
    COMPONENT,
    RPM_KEY_FILE_NAME,
    SUITE,
    RepoTree as RepoTree,  # re-exported: tests read it from here
    bulk_specs,
    cached_repos,
    packages_at,
)
from sandbox.upstream_tls import SERVER_DNS_NAME, write_tls_material

DEFAULT_ADDRESS = "127.0.0.2"
DEFAULT_PORT = 8080
DEFAULT_TLS_PORT = 8443

DEFAULT_SLOW_RATE = 32 * 1024
# Keeps the slowest download (the data package) under about half a minute.
MIN_SLOW_RATE = 10 * 1024

READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0

REQUIRED_TOOLS = ("gpg", "gpgconf", "dpkg-deb", "dpkg-scanpackages", "apt-ftparchive",
                  "rpmbuild", "rpmsign", "createrepo_c", "nginx")


def missing_tools() -> list[str]:
    """Tools generation and serving need that this machine lacks (apt-ftparchive: apt-utils;
    rpmbuild/rpmsign: rpm)."""
    return [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------

MIME_TYPES = {
    "application/vnd.debian.binary-package": "deb",
    "application/x-rpm": "rpm",
    "application/gzip": "gz",
    "text/xml": "xml",
    # Keys and signatures: readable in a browser; clients do not look at the type.
    "text/plain": "asc",
}


def render_nginx_config(*, address: str, port: int, state_dir: Path, www: Path, slow_rate: int,
                        tls: tuple[int, Path, Path] | None = None) -> str:
    """nginx in the foreground, listening only on `address`, every path inside `state_dir`.

    `tls` is (port, certificate chain, key) for an HTTPS server with the same locations.
    """
    types = "\n".join(f"        {mime} {extension};" for mime, extension in MIME_TYPES.items())
    locations = f"""
        root {www};
        autoindex on;
        location /slow/ {{
            alias {www}/;
            limit_rate {slow_rate};
        }}
        location = /_status {{
            stub_status;
            access_log off;
        }}"""
    https = ""
    if tls is not None:
        tls_port, cert_file, key_file = tls
        https = f"""
    server {{
        listen {address}:{tls_port} ssl;
        server_name {SERVER_DNS_NAME};
        ssl_certificate {cert_file};
        ssl_certificate_key {key_file};
{locations}
    }}"""
    temp = state_dir / "temp"
    return f"""# Written by sandbox/upstream_repos.py for one fixture instance.
daemon off;
# Workers as root: the tree sits under 0700 temporary directories that user nobody cannot enter.
user root root;
worker_processes 1;
pid {state_dir / "nginx.pid"};
error_log {state_dir / "error.log"} warn;
events {{
    worker_connections 256;
}}
http {{
    types {{
{types}
    }}
    default_type application/octet-stream;
    log_format upstream '$remote_addr "$request" $status $body_bytes_sent $request_time';
    access_log {state_dir / "access.log"} upstream;
    client_body_temp_path {temp / "body"};
    proxy_temp_path {temp / "proxy"};
    fastcgi_temp_path {temp / "fastcgi"};
    uwsgi_temp_path {temp / "uwsgi"};
    scgi_temp_path {temp / "scgi"};
    sendfile on;
    # Small chunks, so limit_rate throttles smoothly rather than in one burst.
    sendfile_max_chunk 16k;
    keepalive_timeout 5s;
    server {{
        listen {address}:{port};
        server_name {SERVER_DNS_NAME};
{locations}
    }}{https}
}}
"""


@dataclass(frozen=True)
class LoggedRequest:
    client: str
    request: str
    """`GET /debian/dists/bookworm/InRelease HTTP/1.1`."""
    status: int
    bytes_sent: int

    @property
    def path(self) -> str:
        parts = self.request.split(" ")
        return parts[1] if len(parts) > 1 else self.request


def _parse_access_line(line: str) -> LoggedRequest | None:
    try:
        client, rest = line.split(" ", 1)
        request, tail = rest[1:].rsplit('" ', 1)
        status, sent, _ = tail.split(" ")
        return LoggedRequest(client, request, int(status), int(sent))
    except ValueError:  # a line being written right now
        return None


class UpstreamRepos(ManagedProcess):
    """The signed Debian archive and RPM repository served by nginx on `address:port`.

    Usable as a context manager (start, then stop and remove its own state) or with explicit
    `start()` / `stop()`. `publish(revision)` switches what is served while running.
    """

    stop_grace = STOP_TIMEOUT_S

    def __init__(self, revision: int = 0, *, address: str = DEFAULT_ADDRESS,
                 port: int = DEFAULT_PORT, tls: bool = False, tls_port: int = DEFAULT_TLS_PORT,
                 slow_rate: int = DEFAULT_SLOW_RATE, state_dir: Path | None = None,
                 remove_state_on_close: bool | None = None, bulk: int = 0) -> None:
        """`slow_rate`: bytes a second under /slow/ (at least MIN_SLOW_RATE, so a download there
        ends in bounded time). `state_dir` (default: a new temporary directory) holds the served
        trees, nginx's config, pid file and logs; `close()` removes it if `remove_state_on_close`
        (default: only if it was made here). `bulk`: filler packages in the Debian archive, in
        every revision served (see `bulk_specs`)."""
        super().__init__()
        ipaddress.ip_address(address)  # fail early on a typo rather than in nginx's log
        bulk_specs(bulk)  # and on a bulk count out of range
        if slow_rate < MIN_SLOW_RATE:
            raise ValueError(f"slow_rate: {slow_rate} B/s would make /slow/ downloads take "
                             f"minutes; give at least {MIN_SLOW_RATE}")
        self.address = address
        self.port = port
        self.tls_port = tls_port if tls else None
        self.slow_rate = slow_rate
        self.revision = revision
        self.bulk = bulk
        self.state_dir = self._use_state_dir(state_dir, "airgap-upstream-repos-", remove_state_on_close)
        self.www = self.state_dir / "www"
        self.config_file = self.state_dir / "nginx.conf"
        self.error_log = self.state_dir / "error.log"
        self.access_log = self.state_dir / "access.log"
        self._tls_files: tuple[Path, Path, Path] | None = None

    def __str__(self) -> str:
        return f"nginx serving the upstream repositories on {self.base_url}"

    # -- what clients need ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def https_base_url(self) -> str:
        if self.tls_port is None:
            raise RuntimeError("HTTPS is off; create the fixture with tls=True")
        return f"https://{self.address}:{self.tls_port}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the HTTPS server's certificate (tls=True only)."""
        if self._tls_files is None:
            raise RuntimeError("HTTPS is off or the fixture has not started")
        return self._tls_files[0]

    def https_context(self) -> ssl.SSLContext:
        """Trusts the instance's CA only (tls=True)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    @property
    def debian_url(self) -> str:
        return f"{self.base_url}/debian"

    @property
    def rpm_url(self) -> str:
        return f"{self.base_url}/rpm"

    @property
    def slow_debian_url(self) -> str:
        return f"{self.base_url}/slow/debian"

    @property
    def slow_rpm_url(self) -> str:
        return f"{self.base_url}/slow/rpm"

    @property
    def keys_dir(self) -> Path:
        """debian/rpm/wrong `.asc` (armored) and `.gpg` (binary keyring) public keys."""
        return self.www / "keys"

    def key_file(self, role: str, *, binary: bool = False) -> Path:
        """`role` is debian, rpm or wrong; `binary` gives the keyring gpgv and aptly read."""
        if role not in KEY_USER_IDS:
            raise KeyError(f"{role}: no such key; give one of {', '.join(KEY_USER_IDS)}")
        return self.keys_dir / f"{role}.{'gpg' if binary else 'asc'}"

    @property
    def debian_key(self) -> str:
        return self.key_file("debian").read_text()

    @property
    def rpm_key(self) -> str:
        return self.key_file("rpm").read_text()

    @property
    def wrong_key(self) -> str:
        return self.key_file("wrong").read_text()

    @property
    def debian_keyring(self) -> Path:
        return self.key_file("debian", binary=True)

    @property
    def wrong_keyring(self) -> Path:
        return self.key_file("wrong", binary=True)

    @property
    def packages(self) -> dict[str, tuple[str, ...]]:
        """Package name → versions served now (the RPM repository holds the same, bulk aside)."""
        return packages_at(self.revision, self.bulk)

    def apt_source_line(self, signed_by: str | Path) -> str:
        return f"deb [signed-by={signed_by}] {self.debian_url} {SUITE} {COMPONENT}"

    def yum_repo(self, repo_id: str = "airgap-upstream", gpgkey: str | Path | None = None) -> str:
        """A .repo stanza with package and metadata signature checks on."""
        gpgkey = gpgkey or f"{self.rpm_url}/{RPM_KEY_FILE_NAME}"
        if isinstance(gpgkey, Path):
            gpgkey = f"file://{gpgkey}"
        return (f"[{repo_id}]\nname=airgap-infra upstream\nbaseurl={self.rpm_url}\nenabled=1\n"
                f"gpgcheck=1\nrepo_gpgcheck=1\ngpgkey={gpgkey}\n")

    # -- life cycle ----------------------------------------------------------------------------

    def _start(self) -> None:
        for port in filter(None, (self.port, self.tls_port)):
            if not port_is_free(self.address, port):
                raise RuntimeError(f"{self.address}:{port}: already in use; stop what listens "
                                   "there or pick another address or port")
        self.publish(self.revision)
        self._write_config()
        # -e: the error log before the config is read (else /var/log/nginx, the machine's).
        # TERM is nginx's fast shutdown; a worker left by a KILLed master is stopped as a child.
        self._launch(["nginx", "-c", str(self.config_file), "-p", str(self.state_dir), "-e", str(self.error_log)],
                     output=self.state_dir / "nginx.out", env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self._wait_ready(lambda: http_status(self.address, self.port, f"/debian/dists/{SUITE}/InRelease") == 200,
                         READY_TIMEOUT_S)

    # -- publishing ------------------------------------------------------------------------------

    def publish(self, revision: int) -> dict[str, tuple[str, ...]]:
        """Serve `revision` from now on; returns its packages.

        The tree is copied in from the cache (tests may tamper with their copy), then the `www`
        symlink is replaced by rename: each request sees one revision or the other, never a
        half-copied tree (a client between two requests can see both, as with a real mirror mid-
        sync). Works while running: nginx resolves the link at every request.
        """
        served = self.state_dir / "revisions" / f"r{revision}"
        if not served.is_dir():
            scratch = served.with_name(f"{served.name}.tmp-{os.getpid()}")
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(cached_repos(revision, self.bulk).root, scratch)
            os.rename(scratch, served)
        link = self.state_dir / "www.new"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(served.relative_to(self.state_dir))
        os.replace(link, self.www)
        self.revision = revision
        return self.packages

    # -- watching clients ------------------------------------------------------------------------

    def requests(self) -> list[LoggedRequest]:
        """Finished requests, oldest first (nginx logs a request when it ends)."""
        try:
            lines = self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        return [request for request in map(_parse_access_line, lines) if request is not None]

    def wait_for_request(self, path_part: str, timeout: float = 30.0) -> LoggedRequest:
        """The first finished request whose path contains `path_part`, waiting up to `timeout`."""
        for _ in polls(timeout):
            for request in self.requests():
                if path_part in request.path:
                    return request
        raise TimeoutError(f"no request for {path_part!r} on {self.base_url} within {timeout:.0f} s")

    def responses_in_flight(self) -> int:
        """Responses nginx is writing now, not counting the status request that asks."""
        connection = http.client.HTTPConnection(self.address, self.port, timeout=2)
        try:
            connection.request("GET", "/_status")
            body = connection.getresponse().read().decode()
        finally:
            connection.close()
        # "Reading: 0 Writing: 2 Waiting: 0"
        fields = body.split()
        return int(fields[fields.index("Writing:") + 1]) - 1

    # -- internals -------------------------------------------------------------------------------

    def _write_config(self) -> None:
        tls = None
        if self.tls_port is not None:
            if self._tls_files is None:
                self._tls_files = write_tls_material(self.state_dir / "tls", self.address)
            _, cert_file, key_file = self._tls_files
            tls = (self.tls_port, cert_file, key_file)
        (self.state_dir / "temp").mkdir(exist_ok=True)
        self.config_file.write_text(render_nginx_config(
            address=self.address, port=self.port, state_dir=self.state_dir, www=self.www,
            slow_rate=self.slow_rate, tls=tls))

    def log_tail(self, lines: int = 40) -> str:
        """The end of nginx's own output and of its error log."""
        found = []
        for log in (self.state_dir / "nginx.out", self.error_log):
            with contextlib.suppress(FileNotFoundError):
                found += log.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(found) or "(no nginx output)"

