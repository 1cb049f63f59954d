"""A private registry and real container runtimes in one network namespace, to prove trust.

Client nodes trust the private registry through files the project renders: Docker's
`/etc/docker/certs.d/<host:port>/ca.crt` (next to `daemon.json`) and containerd's
`/etc/containerd/certs.d/<upstream>/hosts.toml` with a `ca = …` line. A test shows a pull
succeeds with those files and fails without them. That proves nothing on 127.0.0.0/8, which
Docker treats as insecure, so everything here runs inside a `NetNamespace` on 10.231.0.2 under
the name `registry.airgap.test`:

- `NamespacedRegistry`: Docker Distribution configured by the project's renderer, minus auth
  (anonymous pull and push: these tests are about TLS trust, and credentials would only add a
  login step that fails the same way), TLS for the name and the address from a deterministic
  CA, filled from `oci_images` under the mirror layout (`docker.io/library/alpine:3.19` is
  served as `registry.airgap.test:5443/docker.io/library/alpine:3.19`), digests preserved.
- `Dockerd`: dockerd with its own data root, exec root, socket and pid file.
- `Containerd`: containerd with its own root, state and socket, pulled through with
  `ctr images pull --hosts-dir`.

Where the runtimes look for their files. `ip netns exec` bind-mounts every entry of
`/etc/netns/<namespace>/` over `/etc/<entry>` for what it starts, so `ns.etc_dir / "docker"` is
`/etc/docker` to dockerd (`certs.d/` there is the only place dockerd reads registry CAs from: the
path is compiled in) and `ns.etc_dir / "containerd"` is `/etc/containerd` to containerd and ctr.
Tests write the files where a node has them and the machine's own /etc is never touched. The
bind needs `/etc/docker` and `/etc/containerd` to exist on the machine (the packages make them);
`start()` checks it took effect.

    with NetNamespace("runtimes") as ns, NamespacedRegistry(ns, catalog) as registry, \
            Dockerd(ns) as docker:
        (docker.certs_dir / registry.endpoint).mkdir(parents=True)
        (docker.certs_dir / registry.endpoint / "ca.crt").write_text(registry.ca_pem)
        assert docker.pull(registry.served_ref("docker.io/library/alpine:3.19")).returncode == 0

Each is a `ManagedProcess`: it starts once; `close()` (or leaving the `with`) stops it by PID,
with any child it left (dockerd's own containerd), and removes its state.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from components.render import registry as render_registry
from offline import tls_emulation
from sandbox.oci_images import Catalog
from sandbox.process import ManagedProcess, ProcessError
from tests.harness.netns import NetNamespace

REGISTRY_HOST = "registry.airgap.test"
REGISTRY_PORT = 5443
DEFAULT_REFS = (
    "docker.io/library/alpine:3.19",
    "docker.io/library/busybox:1.36",
    "registry.k8s.io/pause:3.9",
)
READY_TIMEOUT_S = 30.0
PULL_TIMEOUT_S = 60.0
COPY_TIMEOUT_S = 60.0
CTR_NAMESPACE = "airgap"
# The test images are linux/amd64 only; naming the platform keeps ctr from looking for the
# machine's own on other architectures.
PLATFORM = "linux/amd64"


class RuntimeHarnessError(ProcessError):
    pass


def _machine_etc(entry: str) -> None:
    """`ip netns exec` can only bind over a directory that exists."""
    if not Path("/etc", entry).is_dir():
        raise RuntimeHarnessError(f"/etc/{entry} does not exist on this machine, so a namespace's "
                                  f"/etc/netns/<name>/{entry} cannot stand in for it")


def _check_bound(ns: NetNamespace, owned: Path) -> None:
    """Make sure a process inside sees `owned` at its /etc path (the bind took effect)."""
    inside = ns.inside(owned)
    seen = ns.run(["cat", inside], capture_output=True, timeout=10)
    if seen.returncode != 0 or seen.stdout != owned.read_bytes():
        raise RuntimeHarnessError(f"{inside} inside {ns.name} is not {owned}: the /etc bind "
                                  "of `ip netns exec` did not apply")


def issue_registry_certificate(seed: str, host: str, address: str) -> tuple[str, str, str]:
    """(CA PEM, server certificate PEM, server key PEM) for `host` and `address`, deterministic."""
    emulate = tls_emulation.outputs
    ca_key = emulate("tls:index/privateKey:PrivateKey", f"{seed}/ca", {})["privateKeyPem"]
    ca = emulate("tls:index/selfSignedCert:SelfSignedCert", f"{seed}/ca", {
        "privateKeyPem": ca_key, "isCaCertificate": True, "validityPeriodHours": 24 * 3650,
        "allowedUses": ["cert_signing", "crl_signing"], "subject": {"commonName": f"{seed} CA"}})["certPem"]
    key = emulate("tls:index/privateKey:PrivateKey", f"{seed}/server", {})["privateKeyPem"]
    csr = emulate("tls:index/certRequest:CertRequest", f"{seed}/server", {
        "privateKeyPem": key, "subject": {"commonName": host}, "dnsNames": [host],
        "ipAddresses": [address]})["certRequestPem"]
    cert = emulate("tls:index/locallySignedCert:LocallySignedCert", f"{seed}/server", {
        "certRequestPem": csr, "caPrivateKeyPem": ca_key, "caCertPem": ca, "validityPeriodHours": 24 * 825,
        "allowedUses": ["digital_signature", "key_encipherment", "server_auth"]})["certPem"]
    return ca, cert, key


def anonymous_registry_config(*, listen: str, storage: Path, cert: Path, key: Path) -> str:
    """The project's rendered registry config with its htpasswd `auth` section taken out."""
    rendered = render_registry.registry_config(listen=listen, storage=str(storage), cert=str(cert),
                                               key=str(key), htpasswd="unused")
    config = yaml.safe_load(rendered)
    config.pop("auth")
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False)


# A readiness probe run inside the namespace: GET /v2/ by name, verified against the CA.
_PROBE = """\
import ssl, sys, urllib.request
context = ssl.create_default_context(cafile=sys.argv[2])
print(urllib.request.urlopen(sys.argv[1], context=context, timeout=5).status)
"""


class NamespacedRegistry(ManagedProcess):
    """Docker Distribution on `<namespace address>:5443`, named `registry.airgap.test` inside.

    `start()` serves and fills it; a start that fails stops what it started, and `close()`
    removes the state.
    """

    def __init__(self, ns: NetNamespace, catalog: Catalog, *, refs: tuple[str, ...] = DEFAULT_REFS,
                 host: str = REGISTRY_HOST, port: int = REGISTRY_PORT, state_dir: Path | None = None) -> None:
        super().__init__()
        if ns.hosts.get(host) != ns.address:
            raise ValueError(f"{host}: the namespace must resolve it to its own address {ns.address}")
        self.ns, self.catalog, self.refs, self.host, self.port = ns, catalog, tuple(refs), host, port
        self.state_dir = self._use_state_dir(state_dir, "airgap-nsregistry-")
        self.cert_dir = self.state_dir / "certs"  # only ca.crt: skopeo's --cert-dir rejects more
        self.log_file = self.state_dir / "registry.log"
        self.digests: dict[str, str] = {}
        """Source reference → manifest digest, as pushed (equal to the catalog's)."""

    def __str__(self) -> str:
        return f"registry in {self.ns.name}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"

    @property
    def ca_pem(self) -> str:
        return self.ca_file.read_text()

    def served_ref(self, source_ref: str) -> str:
        """`docker.io/library/alpine:3.19` → `registry.airgap.test:5443/docker.io/library/alpine:3.19`."""
        return f"{self.endpoint}/{source_ref}"

    def mirror_url(self, upstream: str) -> str:
        """The containerd host for `upstream` (with `override_path = true`): `/v2/` and the prefix."""
        return f"https://{self.endpoint}/v2/{upstream}"

    def _start(self) -> None:
        ca, cert, key = issue_registry_certificate(f"runtimes-{self.endpoint}", self.host, self.ns.address)
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        self.ca_file.write_text(ca)
        (self.state_dir / "server.crt").write_text(cert)
        (self.state_dir / "server.key").write_text(key)
        config = self.state_dir / "config.yml"
        config.write_text(anonymous_registry_config(
            listen=f"{self.ns.address}:{self.port}", storage=self.state_dir / "storage",
            cert=self.state_dir / "server.crt", key=self.state_dir / "server.key"))
        (self.state_dir / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        (self.state_dir / "registries.conf").write_text("")
        # A minimal environment: REGISTRY_* variables would override the config file.
        self._launch(["docker-registry", "serve", str(config)], output=self.log_file,
                     env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, spawn=self.ns.popen)
        pid = self.pid
        self._wait_ready(lambda: pid is not None and self.ns.listening(pid, self.port), READY_TIMEOUT_S)
        probe = self.ns.run([sys.executable, "-c", _PROBE, f"https://{self.endpoint}/v2/", str(self.ca_file)],
                            capture_output=True, text=True, timeout=15)
        if probe.returncode != 0 or probe.stdout.strip() != "200":
            raise RuntimeHarnessError(f"GET https://{self.endpoint}/v2/ inside {self.ns.name}: "
                                      f"{probe.stdout}{probe.stderr}\n{self.log_tail()}")
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(self._copy_in, self.refs))  # list() re-raises the first failure

    def _copy_in(self, ref: str) -> None:
        result = self.ns.run(
            ["skopeo", "--policy", str(self.state_dir / "policy.json"), "copy", "--quiet", "--all",
             "--preserve-digests", "--dest-no-creds", "--dest-cert-dir", str(self.cert_dir),
             f"oci:{self.catalog.layout}:{ref}", f"docker://{self.served_ref(ref)}"],
            capture_output=True, text=True, timeout=COPY_TIMEOUT_S,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.state_dir),
                 "CONTAINERS_REGISTRIES_CONF": str(self.state_dir / "registries.conf"),
                 "REGISTRY_AUTH_FILE": str(self.state_dir / "auth.json")})
        if result.returncode != 0:
            raise RuntimeHarnessError(f"skopeo copy of {ref} into {self.endpoint} failed: "
                                      f"{result.stderr.strip()}")
        self.digests[ref] = self.catalog.image(ref).digest


class _Daemon(ManagedProcess):
    """What dockerd and containerd have in common: a state dir, the namespace, the environment."""

    log_name = "daemon.log"
    # Fixed paths written whatever the flags say (dockerd: /run/docker/plugins; containerd's
    # `opt` plugin: /opt/containerd; a node's config may name /run/containerd/…): each daemon
    # gets an empty tmpfs of its own over them, so the machine's stay untouched.
    scratch = ("/run", "/opt")

    def __init__(self, ns: NetNamespace, state_dir: Path | None, prefix: str) -> None:
        super().__init__()
        self.ns = ns
        # Short on purpose: unix socket paths below it must stay under 108 bytes.
        self.state_dir = self._use_state_dir(state_dir, prefix)
        self.log_file = self.state_dir / self.log_name

    def __str__(self) -> str:
        return f"{type(self).__name__.lower()} in {self.ns.name}"

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": str(self.state_dir)}

    def _launch_daemon(self, argv: list[str]) -> None:
        self._launch(argv, output=self.log_file, env=self._env(),
                     spawn=functools.partial(self.ns.popen, cgroups=True, scratch=self.scratch))


class Dockerd(_Daemon):
    """dockerd inside `ns`, isolated from the machine's Docker by its own roots and socket.

    `/etc/docker` inside is `etc_dir`: write `daemon.json` (via `start`) and `certs.d/` there.
    """

    log_name = "dockerd.log"

    def __init__(self, ns: NetNamespace, state_dir: Path | None = None) -> None:
        super().__init__(ns, state_dir, "airgap-dockerd-")
        self.etc_dir = ns.etc_dir / "docker"
        self.certs_dir = self.etc_dir / "certs.d"
        self.config_file = self.etc_dir / "daemon.json"
        self.socket = self.state_dir / "docker.sock"
        self._daemon_json = "{}\n"

    def start(self, daemon_json: str = "{}\n") -> Dockerd:
        """Start with `daemon_json` as /etc/docker/daemon.json.

        It must not set what the flags below set (data-root, exec-root, pidfile, hosts,
        storage-driver, iptables, ip6tables, bridge): dockerd refuses a directive given both ways.
        A start that fails stops what it started; `close()` removes the state.
        """
        self._daemon_json = daemon_json
        return super().start()

    def _start(self) -> None:
        _machine_etc("docker")
        self.certs_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._daemon_json)
        _check_bound(self.ns, self.config_file)
        self._launch_daemon([
            "dockerd", "--config-file", self.ns.inside(self.config_file),
            "--data-root", str(self.state_dir / "data"), "--exec-root", str(self.state_dir / "exec"),
            "--pidfile", str(self.state_dir / "dockerd.pid"), "-H", f"unix://{self.socket}",
            # vfs: no overlay mounts; no iptables or bridge: the namespace has no way out anyway.
            "--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
        ])
        self._wait_ready(self._ping, READY_TIMEOUT_S)

    def _ping(self) -> bool:
        if not self.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(2)
            try:
                connection.connect(str(self.socket))
                connection.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return connection.recv(64).startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
            except OSError:
                return False

    def docker(self, *args: str, timeout: float = PULL_TIMEOUT_S) -> subprocess.CompletedProcess:
        """The docker CLI against this daemon, inside the namespace, with a config dir of its own."""
        env = {**self._env(), "DOCKER_CONFIG": str(self.state_dir / "cli")}
        return self.ns.run(["docker", "-H", f"unix://{self.socket}", *args], capture_output=True,
                           text=True, timeout=timeout, env=env)

    def pull(self, ref: str) -> subprocess.CompletedProcess:
        return self.docker("pull", ref)

    def remove_image(self, ref: str) -> subprocess.CompletedProcess:
        return self.docker("image", "rm", ref)

    def image_digest(self, ref: str) -> str | None:
        """The manifest digest recorded for `ref`'s repository (RepoDigests), or None."""
        result = self.docker("image", "inspect", "--format", "{{json .RepoDigests}}", ref)
        if result.returncode != 0:
            return None
        repository = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
        for entry in json.loads(result.stdout) or []:
            name, _, digest = entry.partition("@")
            if name == repository:
                return digest
        return None

    def info(self) -> dict:
        result = self.docker("info", "--format", "{{json .}}", timeout=30)
        if result.returncode != 0:
            raise RuntimeHarnessError(f"docker info: {result.stderr.strip()}")
        return json.loads(result.stdout)


class Containerd(_Daemon):
    """containerd inside `ns` with its own root, state and socket; `ctr` pulls through it.

    `/etc/containerd` inside is `etc_dir`: the config (via `start`) and `certs.d/` (the hosts
    directory, `hosts_dir`) go there.
    """

    log_name = "containerd.log"

    def __init__(self, ns: NetNamespace, state_dir: Path | None = None) -> None:
        super().__init__(ns, state_dir, "airgap-containerd-")
        self.etc_dir = ns.etc_dir / "containerd"
        self.hosts_dir = self.etc_dir / "certs.d"
        self.config_file = self.etc_dir / "config.toml"
        self.socket = self.state_dir / "containerd.sock"
        self._config: str | None = None

    def default_config(self) -> str:
        """A version 2 config with CRI and the snapshotters that probe the kernel off."""
        return f"""\
version = 2
# CRI reads config_path on a node; ctr reads --hosts-dir instead, so CRI stays off here.
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "{self.ns.inside(self.hosts_dir)}"
"""

    def start(self, config: str | None = None) -> Containerd:
        """Start with `config` (default: `default_config()`) as /etc/containerd/config.toml.

        Root, state and the socket are given as flags, which take precedence over the file.
        A start that fails stops what it started; `close()` removes the state.
        """
        self._config = config
        return super().start()

    def _start(self) -> None:
        config = self.default_config() if self._config is None else self._config
        _check_containerd_config(config)
        _machine_etc("containerd")
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config)
        _check_bound(self.ns, self.config_file)
        self._launch_daemon([
            "containerd", "--config", self.ns.inside(self.config_file), "--address", str(self.socket),
            "--root", str(self.state_dir / "root"), "--state", str(self.state_dir / "state"),
        ])
        self._wait_ready(lambda: self.socket.exists() and self.ctr("version", timeout=5).returncode == 0,
                         READY_TIMEOUT_S)

    def ctr(self, *args: str, timeout: float = PULL_TIMEOUT_S) -> subprocess.CompletedProcess:
        """ctr against this containerd, inside the namespace (it does the registry traffic itself)."""
        return self.ns.run(["ctr", "--address", str(self.socket), "--namespace", CTR_NAMESPACE,
                            "--timeout", f"{int(timeout)}s", *args],
                           capture_output=True, text=True, timeout=timeout + 10, env=self._env())

    def pull(self, ref: str, hosts_dir: Path | str | None = None) -> subprocess.CompletedProcess:
        """`ctr images pull --hosts-dir` (default: /etc/containerd/certs.d as seen inside)."""
        hosts_dir = self.ns.inside(self.hosts_dir if hosts_dir is None else hosts_dir)
        # native: unpacking copies files, no overlay mount (as vfs for dockerd).
        return self.ctr("images", "pull", "--hosts-dir", hosts_dir, "--platform", PLATFORM,
                        "--snapshotter", "native", ref)

    def remove_image(self, ref: str) -> subprocess.CompletedProcess:
        return self.ctr("images", "rm", "--sync", ref)

    def image_digest(self, ref: str) -> str | None:
        """The digest of the image record `ref` (its manifest or index), or None."""
        result = self.ctr("images", "ls", f"name=={ref}", timeout=30)
        if result.returncode != 0:
            raise RuntimeHarnessError(f"ctr images ls: {result.stderr.strip()}")
        for line in result.stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == ref:
                return fields[2]
        return None


def _check_containerd_config(text: str) -> None:
    """Refuse a config containerd would misread: 1.6 reads one without `version = 2` as
    version 1, where the plugin keys differ, and says nothing about it."""
    if tomllib.loads(text).get("version") != 2:
        raise ValueError("containerd config: `version = 2` is required")
