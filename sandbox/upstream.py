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

import ipaddress
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from sandbox.oci_images import Catalog, build_once, cache_root, generate, link_tree
from sandbox.process import ManagedProcess, http_status, port_is_free
from sandbox.upstream_tls import write_tls_material

DEFAULT_ADDRESS = "127.0.0.2"
DEFAULT_PORT = 5000
# Part of the storage cache key: bump when the way storage is filled changes.
FILL_VERSION = "1"
REGISTRY_BINARY = "docker-registry"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
COPY_TIMEOUT_S = 300.0
COPY_PARALLELISM = 4


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


# ---------------------------------------------------------------------------------------------
# The fixture
# ---------------------------------------------------------------------------------------------


class UpstreamRegistry(ManagedProcess):
    """A public-registry stand-in on `address:port`, serving `catalog`.

    Usable as a context manager (start, then stop and remove its own state) or with explicit
    `start()` / `stop()`; a stopped instance keeps its storage and CA and can start again.
    Run several on different loopback addresses or ports (benchmarks use a second one).
    """

    stop_grace = STOP_TIMEOUT_S

    def __init__(self, catalog: Catalog, *, address: str = DEFAULT_ADDRESS,
                 port: int = DEFAULT_PORT, state_dir: Path | None = None,
                 remove_state_on_close: bool | None = None) -> None:
        """`state_dir` (default: a new temporary directory) holds TLS, config, storage and log;
        `close()` removes it if `remove_state_on_close` (default: only if it was made here)."""
        super().__init__()
        ipaddress.ip_address(address)  # fail early on a typo rather than in the registry's log
        self.catalog = catalog
        self.address = address
        self.port = port
        self.state_dir = self._use_state_dir(state_dir, "airgap-upstream-", remove_state_on_close)
        self.storage_dir = self.state_dir / "storage"
        self.log_file = self.state_dir / "registry.log"
        self.started_from_cache = False
        self._tls: tuple[Path, Path, Path] | None = None

    def __str__(self) -> str:
        return f"upstream registry on {self.endpoint}"

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

    def _start(self) -> None:
        if not port_is_free(self.address, self.port):
            raise RuntimeError(f"{self.endpoint}: already in use; stop what listens there "
                               "or pick another address or port")
        self._prepare()
        if self.storage_dir.exists():  # a restart keeps what this instance served
            self._launch_registry()
            return
        try:
            self._start_with_cached_storage()
        except BaseException:
            self.stop()
            # A half-filled storage must not pass for a filled one at the next start.
            shutil.rmtree(self.storage_dir, ignore_errors=True)
            raise

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
            self._launch_registry()
            self.push(self.catalog)
            link_tree(self.storage_dir, scratch)

        if build_once(cache, fill_and_snapshot):
            return
        # Already cached (possibly by another process while this one waited for the lock).
        link_tree(cache, self.storage_dir)
        self.started_from_cache = True
        self._launch_registry()

    def _launch_registry(self) -> None:
        # A minimal environment: REGISTRY_* variables would override the config file.
        self._launch([REGISTRY_BINARY, "serve", str(self.state_dir / "config.yml")], output=self.log_file,
                     env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        context = self.ssl_context()  # verified TLS: a registry that answers with the wrong certificate is not up
        self._wait_ready(lambda: http_status(self.address, self.port, "/v2/", context=context) == 200,
                         READY_TIMEOUT_S)

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
