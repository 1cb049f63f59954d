"""The upstream registry: "the internet" that the air-gapped registries are filled from.

`UpstreamRegistry` runs Docker Distribution (`docker-registry serve`, Debian's package) on a
loopback address (127.0.0.2:5000 by default) with real TLS from a CA made for this instance and
no authentication, like a public registry. It serves the images of an `oci_images.Catalog`, each
under its source registry host as the first path element:

    docker.io/library/alpine:3.19  is served as  127.0.0.2:5000/docker.io/library/alpine:3.19

which is what the stacks' mirror settings point each public registry at (`mirror_prefix`).

Filling copies every image from the OCI layout with `skopeo copy --all --preserve-digests`, so
every manifest digest equals the catalog's. A filled storage directory is cached by the layout's
content hash (`${AIRGAP_CACHE:-/var/tmp/airgap-infra-cache}/upstream/registry-…`); later starts
link it in and only start the server. `update()` publishes a newer catalog (an upstream release)
to a running registry.

Each instance makes its own CA (kept across its restarts): read it from `ca_file` / `ca_pem`, or
pass `cert_dir` to skopeo's `--cert-dir`.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.oci_images import Catalog, build_once, cache_root, generate, link_tree

DEFAULT_ADDRESS = "127.0.0.2"
DEFAULT_PORT = 5000
SERVER_DNS_NAME = "upstream.test"
# Part of the storage cache key: bump when the way storage is filled changes.
FILL_VERSION = "1"
REGISTRY_BINARY = "docker-registry"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
COPY_TIMEOUT_S = 300.0
COPY_PARALLELISM = 4


# ---------------------------------------------------------------------------------------------
# TLS: a throwaway CA and a server certificate for one address
# ---------------------------------------------------------------------------------------------


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _certificate(subject: str, public_key: ec.EllipticCurvePublicKey, issuer: x509.Name | None,
                 now: datetime.datetime) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def write_tls_material(directory: Path, address: str) -> tuple[Path, Path, Path]:
    """A new CA and a server certificate (SAN: IP `address`, DNS `upstream.test`).

    Returns (ca.crt, server.crt, server.key). ECDSA P-256 keeps generation instant and is
    accepted by every client the tests use (Go's crypto/tls, curl, Python's ssl).
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        _certificate("airgap-infra upstream test CA", ca_key.public_key(), None, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _certificate(SERVER_DNS_NAME, server_key.public_key(), ca_cert.subject, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address(address)), x509.DNSName(SERVER_DNS_NAME)]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.crt"
    cert_file = directory / "server.crt"
    key_file = directory / "server.key"
    ca_file.write_bytes(_pem(ca_cert))
    # The chain lets clients that only hold the CA verify without fetching anything.
    cert_file.write_bytes(_pem(server_cert) + _pem(ca_cert))
    key_file.touch(mode=0o600)
    key_file.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return ca_file, cert_file, key_file


# ---------------------------------------------------------------------------------------------
# Registry configuration
# ---------------------------------------------------------------------------------------------


def render_registry_config(*, address: str, port: int, storage: Path, cert_file: Path,
                           key_file: Path) -> str:
    """Docker Distribution config: TLS, no auth, filesystem storage, deletes off.

    Written for every instance: Debian's default config enables htpasswd auth.
    """
    return yaml.safe_dump({
        "version": 0.1,
        # Warnings only: it stands for a public registry, whose logging costs us nothing; the
        # access log (one line a request) is still written.
        "log": {"level": "warn", "formatter": "text", "fields": {"service": "upstream"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": False},
            "cache": {"blobdescriptor": "inmemory"},
            # Purging runs at start-up and walks every upload directory: pointless here.
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": f"{address}:{port}",
            "secret": secrets.token_hex(16),
            "tls": {"certificate": str(cert_file), "key": str(key_file)},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }, sort_keys=False)


def port_is_free(address: str, port: int) -> bool:
    """True if nothing listens on address:port (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As Go's listeners do: without it, TIME_WAIT from the last run looks like a listener.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# The fixture
# ---------------------------------------------------------------------------------------------


class UpstreamRegistry:
    """A public-registry stand-in on `address:port`, serving `catalog`.

    Usable as a context manager (start, then stop and remove its own state) or with explicit
    `start()` / `stop()`; a stopped instance keeps its storage and CA and can start again.
    Run several on different loopback addresses or ports (benchmarks use a second one).
    """

    def __init__(self, catalog: Catalog, *, address: str = DEFAULT_ADDRESS,
                 port: int = DEFAULT_PORT, state_dir: Path | None = None,
                 remove_state_on_close: bool | None = None) -> None:
        """`state_dir` (default: a new temporary directory) holds TLS, config, storage and log;
        `close()` removes it if `remove_state_on_close` (default: only if it was made here)."""
        ipaddress.ip_address(address)  # fail early on a typo rather than in the registry's log
        self.catalog = catalog
        self.address = address
        self.port = port
        if remove_state_on_close is None:
            remove_state_on_close = state_dir is None
        self._remove_state_on_close = remove_state_on_close
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="airgap-upstream-"))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.storage_dir = self.state_dir / "storage"
        self.log_file = self.state_dir / "registry.log"
        self.started_from_cache = False
        self._process: subprocess.Popen | None = None
        self._tls: tuple[Path, Path, Path] | None = None

    # -- what clients need ---------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def cert_dir(self) -> Path:
        """A directory holding only `ca.crt`: skopeo's `--cert-dir` rejects other files."""
        return self.state_dir / "certs.d"

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"

    @property
    def ca_pem(self) -> str:
        return self.ca_file.read_text()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def mirror_prefix(self, registry: str) -> str:
        """Where a public registry's content lives here: `127.0.0.2:5000/docker.io`."""
        return f"{self.endpoint}/{registry}"

    def served_ref(self, source_ref: str) -> str:
        """`docker.io/library/alpine:3.19` → `127.0.0.2:5000/docker.io/library/alpine:3.19`."""
        return f"{self.endpoint}/{source_ref}"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def skopeo_env(self) -> dict[str, str]:
        """Environment for skopeo runs that ignores the machine's registries.conf and auth files."""
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.state_dir),
            "CONTAINERS_REGISTRIES_CONF": str(self.state_dir / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(self.state_dir / "auth.json"),
        }

    # -- life cycle ----------------------------------------------------------------------------

    def start(self) -> UpstreamRegistry:
        if self._process is not None:
            raise RuntimeError(f"upstream registry on {self.endpoint} already running "
                               f"(pid {self.pid})")
        if not port_is_free(self.address, self.port):
            raise RuntimeError(f"{self.endpoint}: already in use; stop what listens there "
                               "or pick another address or port")
        self._prepare()
        fresh = not self.storage_dir.exists()  # a restart keeps what this instance served
        try:
            if fresh:
                self._start_with_cached_storage()
            else:
                self._launch()
        except BaseException:
            self.stop()
            if fresh:  # a half-filled storage must not pass for a filled one at the next start
                shutil.rmtree(self.storage_dir, ignore_errors=True)
            raise
        return self

    def stop(self) -> None:
        """Stop the server by its PID: TERM, a bounded wait, then KILL."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)

    def close(self) -> None:
        """Stop, and remove the state directory if this instance made it."""
        self.stop()
        if self._remove_state_on_close:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> UpstreamRegistry:
        try:
            return self.start()
        except BaseException:  # __exit__ will not run: clean up here
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- publishing ------------------------------------------------------------------------------

    def push(self, catalog: Catalog, refs: list[str] | None = None) -> None:
        """Copy `refs` (default: all) from `catalog`'s layout, digests preserved."""
        refs = list(catalog.refs if refs is None else refs)
        with ThreadPoolExecutor(max_workers=COPY_PARALLELISM) as pool:
            # list() drains the results, so the first failed copy raises here.
            list(pool.map(lambda ref: self._copy_in(catalog.layout, ref), refs))

    def update(self, catalog: Catalog) -> list[str]:
        """Publish an upstream release: push what is new or moved since the current catalog.

        Returns the references pushed. Older manifests stay (deletes are off), as upstream's do.
        """
        changed = catalog.changed_since(self.catalog)
        self.push(catalog, changed)
        self.catalog = catalog
        return changed

    # -- internals -------------------------------------------------------------------------------

    def _prepare(self) -> None:
        """TLS material (once per instance), the cert dir, the config, and skopeo's own config."""
        if self._tls is None:
            self._tls = write_tls_material(self.state_dir / "tls", self.address)
            self.cert_dir.mkdir(exist_ok=True)
            shutil.copyfile(self._tls[0], self.ca_file)
        _, cert_file, key_file = self._tls
        (self.state_dir / "config.yml").write_text(render_registry_config(
            address=self.address, port=self.port, storage=self.storage_dir,
            cert_file=cert_file, key_file=key_file))
        # Our own policy and an empty registries.conf: the machine's files must not change copies.
        (self.state_dir / "policy.json").write_text(
            '{"default": [{"type": "insecureAcceptAnything"}]}\n')
        (self.state_dir / "registries.conf").write_text("")

    def _storage_cache(self) -> Path:
        return cache_root() / f"registry-{FILL_VERSION}-{self.catalog.content_hash[:16]}"

    def _start_with_cached_storage(self) -> None:
        cache = self._storage_cache()

        def fill_and_snapshot(scratch: Path) -> None:
            self.storage_dir.mkdir()
            self._launch()
            self.push(self.catalog)
            link_tree(self.storage_dir, scratch)

        if build_once(cache, fill_and_snapshot):
            return
        # Already cached (possibly by another process while this one waited for the lock).
        link_tree(cache, self.storage_dir)
        self.started_from_cache = True
        self._launch()

    def _launch(self) -> None:
        with open(self.log_file, "ab") as log:
            # A minimal environment: REGISTRY_* variables would override the config file.
            self._process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(self.state_dir / "config.yml")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """Poll `GET /v2/` over verified TLS until it answers, the process exits, or time is up."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        context = self.ssl_context()
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"upstream registry exited with {self._process.returncode}\n"
                                   f"{self._log_tail()}")
            connection = http.client.HTTPSConnection(self.address, self.port, context=context,
                                                     timeout=1)
            try:
                connection.request("GET", "/v2/")
                status = connection.getresponse().status
                if status == 200:
                    return
                last_error = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as error:
                last_error = str(error)
            finally:
                connection.close()
            time.sleep(0.05)
        raise RuntimeError(f"upstream registry on {self.endpoint} not ready after "
                           f"{READY_TIMEOUT_S:.0f} s ({last_error})\n{self._log_tail()}")

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no registry log)"

    def _copy_in(self, layout: Path, ref: str) -> None:
        command = [
            "skopeo", "--policy", str(self.state_dir / "policy.json"), "copy", "--quiet",
            "--all", "--preserve-digests", "--dest-no-creds", "--dest-cert-dir", str(self.cert_dir),
            "--retry-times", "2",
            f"oci:{layout}:{ref}", f"docker://{self.served_ref(ref)}",
        ]
        result = subprocess.run(command, capture_output=True, text=True, env=self.skopeo_env(),
                                timeout=COPY_TIMEOUT_S, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"skopeo copy of {ref} into {self.endpoint} failed "
                               f"({result.returncode}): {result.stderr.strip()}")


def start_upstream(scale: str = "test", *, address: str = DEFAULT_ADDRESS, port: int = DEFAULT_PORT,
                   revision: int = 0, state_dir: Path | None = None) -> UpstreamRegistry:
    """Generate (or reuse) the images at `scale` and start a registry serving them.

    Benchmarks start a second one on another `address` (any 127.0.0.0/8 address works without
    configuration). The caller ends it with `close()` or by using it as a context manager.
    """
    owns_state_dir = state_dir is None
    state_dir = state_dir or Path(tempfile.mkdtemp(prefix="airgap-upstream-"))
    try:
        catalog = generate(state_dir / "layout", scale, revision)
        upstream = UpstreamRegistry(catalog, address=address, port=port, state_dir=state_dir,
                                    remove_state_on_close=owns_state_dir)
        return upstream.start()
    except BaseException:
        if owns_state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
        raise
