"""Docker Distribution registry: config.yml, systemd unit, and the install step for both runtimes.

Pure functions of plain values. The registry never proxies to a public registry and never
deletes blobs (`storage.delete.enabled: false`); TLS and htpasswd auth are always on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from . import programs
from .formats import systemd as unit_file
from .formats.hosts import host_port, url_host
from .purge import purge_lines
from .shell import SecretFile, put_file, q, take_secrets

CONFIG_DIR = "/etc/airgap/registry"
TRANSFER_DIR = "/var/lib/airgap/transfer"
"""Where OCI layouts carried across the gap are copied on the registry host."""
IMAGES_DIR = "/var/lib/airgap/images"
"""Where the registry image archive lands on its host (`runtime: docker`)."""
# Distribution writes a repository's `link` files (and manifests) in place, not through a rename:
# stopped mid-request it can leave an empty link, which it then answers with a 500 for as long as
# the link exists. On SIGTERM it finishes the requests it has started, for up to DRAIN; the
# service manager waits a little longer than that before it kills.
DRAIN_SECONDS = 30
STOP_TIMEOUT_SECONDS = DRAIN_SECONDS + 15
UNIT_NAME = "airgap-registry.service"
CONTAINER_NAME = "airgap-registry"
SERVICE_USER = "docker-registry"
# The Debian package's own unit listens on :5000 on every address; ours replaces it.
PACKAGE_UNIT = "docker-registry.service"


@dataclass(frozen=True)
class RegistrySpec:
    """What a registry host runs, as plain values."""

    address: str
    """Address the registry binds (the host's own address)."""
    hostname: str
    """Name clients use; the certificate covers it."""
    port: int
    storage_path: str
    cert_pem: str
    """Server certificate (chain) PEM."""
    ca_pem: str
    """CA bundle clients trust; also used by the health check."""
    runtime: str = "package"
    """`package` or `docker`."""
    docker_image: str = "registry:2"
    docker_archive: str = f"{IMAGES_DIR}/registry.tar"
    """Where the image archive lies on the host (`docker` runtime)."""

    @property
    def endpoint(self) -> str:
        return host_port(self.hostname, self.port)


def registry_config(*, listen: str, storage: str, cert: str, key: str, htpasswd: str) -> str:
    """Docker Distribution `config.yml`. Paths are as the registry process sees them."""
    config = {
        "version": 0.1,
        "log": {"level": "warn", "formatter": "text", "fields": {"service": "airgap-registry"}},
        "storage": {
            "filesystem": {"rootdirectory": storage},
            "delete": {"enabled": False},
            "cache": {"blobdescriptor": "inmemory"},
            "maintenance": {
                "uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False},
                "readonly": {"enabled": False},
            },
        },
        "http": {
            "addr": listen,
            "tls": {"certificate": cert, "key": key, "minimumtls": "tls1.2"},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
            "draintimeout": f"{DRAIN_SECONDS}s",
        },
        "auth": {"htpasswd": {"realm": "airgap-registry", "path": htpasswd}},
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False)


REPAIR_SCRIPT = f"{CONFIG_DIR}/repair-storage.sh"
# Run before every start. Distribution writes manifests and links in place (create, then write)
# and syncs nothing, so a kill or a power loss can leave one empty or holding part of its bytes;
# it then answers every request that reads one with a 500 or the wrong bytes, a re-push included.
# The repair (programs/registry/repair_storage.py) checks every link, every manifest by its hash
# and every other blob by the size its manifests give; what is wrong is moved to a quarantine
# folder in the storage and logged, a link written again when its directory names a blob that is
# there, and a tag whose image lost a part dropped: the next fill copies that image again.
REPAIR_STORAGE = programs.load("registry/repair-storage.sh")
HEALTH = programs.load("registry/health.sh")
PACKAGE_RUNTIME = programs.load("registry/package-runtime.sh")
DOCKER_RUNTIME = programs.load("registry/docker-runtime.sh")


def repair_command(storage: str) -> tuple[str, ...]:
    """The words of the command that runs the repair over `storage` (installed by the install step)."""
    return ("/bin/sh", REPAIR_SCRIPT, storage)


def registry_unit(storage: str, config_path: str = f"{CONFIG_DIR}/config.yml") -> str:
    """systemd unit for the package runtime."""
    if not re.fullmatch(r"/[A-Za-z0-9._/+-]+", storage):
        raise ValueError(f"registry storage {storage!r}: only an absolute path of letters, digits and . _ / + -")
    return unit_file.unit([
        ("Unit", [("Description", "Private container registry (airgap-infra)"),
                  ("After", "network-online.target"), ("Wants", "network-online.target")]),
        ("Service", [
            ("Type", "simple"), ("User", SERVICE_USER), ("Group", SERVICE_USER),
            ("ExecStartPre", unit_file.command(repair_command(storage))),
            ("ExecStart", unit_file.command(["/usr/bin/docker-registry", "serve", config_path])),
            ("Restart", "on-failure"), ("RestartSec", "2"), ("TimeoutStopSec", str(STOP_TIMEOUT_SECONDS)),
            ("NoNewPrivileges", "yes"), ("ProtectSystem", "full"), ("PrivateTmp", "yes"),
        ]),
        ("Install", [("WantedBy", "multi-user.target")]),
    ])


def secret_files(runtime: str) -> tuple[SecretFile, SecretFile]:
    """The install step's secrets, in stdin order: TLS key, then htpasswd."""
    group = SERVICE_USER if runtime == "package" else "root"
    return (
        SecretFile(f"{CONFIG_DIR}/server.key", "0640", f"root:{group}", "tls"),
        SecretFile(f"{CONFIG_DIR}/htpasswd", "0640", f"root:{group}", "auth"),
    )


def health_check(spec: RegistrySpec) -> str:
    """Fail unless `/v2/` answers over TLS: 401 without credentials, 200 with them.

    The credentials arrive as the next stdin secret: a curl config line `user = "name:password"`
    (programs/registry/health.sh, which the step must hold).
    """
    words = (f"https://{spec.endpoint}/v2/", f"{CONFIG_DIR}/ca.crt",
             f"{spec.endpoint}:{url_host(spec.address)}")  # curl's --resolve host:port:address
    return "airgap_registry_health " + " ".join(q(word) for word in words) + "\n"


def install_package_runtime(spec: RegistrySpec) -> str:
    """Install step body for Debian's docker-registry as a systemd unit."""
    config = registry_config(
        listen=host_port(spec.address, spec.port),
        storage=spec.storage_path,
        cert=f"{CONFIG_DIR}/server.crt",
        key=f"{CONFIG_DIR}/server.key",
        htpasswd=f"{CONFIG_DIR}/htpasswd",
    )
    return "\n".join([
        PACKAGE_RUNTIME,
        HEALTH,
        f"airgap_registry_package {q(PACKAGE_UNIT)}",
        f"install -d -m 0750 -o {SERVICE_USER} -g {SERVICE_USER} {q(spec.storage_path)}",
        f"install -d -m 0755 {q(CONFIG_DIR)}",
        put_file(f"{CONFIG_DIR}/config.yml", config, mode="0644", tag="config"),
        put_file(f"{CONFIG_DIR}/server.crt", spec.cert_pem, mode="0644", tag="tls"),
        put_file(f"{CONFIG_DIR}/ca.crt", spec.ca_pem, mode="0644", tag="ca"),
        put_file(REPAIR_SCRIPT, REPAIR_STORAGE, mode="0755", tag="repair"),
        put_file(f"/etc/systemd/system/{UNIT_NAME}", registry_unit(spec.storage_path), mode="0644", tag="unit"),
        take_secrets(secret_files("package")),
        f"airgap_registry_unit_start {q(UNIT_NAME)}",
        health_check(spec),
    ])


def install_docker_runtime(spec: RegistrySpec) -> str:
    """Install step body for registry:2 run by Docker from an archive carried across the gap."""
    inner = "/etc/docker/registry"
    config = registry_config(
        listen="0.0.0.0:5000",
        storage="/var/lib/registry",
        cert=f"{inner}/server.crt",
        key=f"{inner}/server.key",
        htpasswd=f"{inner}/htpasswd",
    )
    container = (CONTAINER_NAME, spec.docker_image, host_port(spec.address, spec.port), str(STOP_TIMEOUT_SECONDS),
                 f"{spec.storage_path}:/var/lib/registry", f"{CONFIG_DIR}:{inner}:ro",
                 *repair_command(spec.storage_path))  # before every start of the container
    return "\n".join([
        DOCKER_RUNTIME,
        HEALTH,
        f"airgap_registry_image {q(spec.docker_image)} {q(spec.docker_archive)}",
        f"install -d -m 0750 {q(spec.storage_path)}",
        f"install -d -m 0755 {q(CONFIG_DIR)}",
        put_file(f"{CONFIG_DIR}/config.yml", config, mode="0644", tag="config"),
        put_file(f"{CONFIG_DIR}/server.crt", spec.cert_pem, mode="0644", tag="tls"),
        put_file(f"{CONFIG_DIR}/ca.crt", spec.ca_pem, mode="0644", tag="ca"),
        put_file(REPAIR_SCRIPT, REPAIR_STORAGE, mode="0755", tag="repair"),
        take_secrets(secret_files("docker")),
        "airgap_registry_container " + " ".join(q(word) for word in container),
        health_check(spec),
    ])


def uninstall(runtime: str, storage_path: str, *, purge: bool) -> str:
    """Delete step body: stop the service; keep the images unless `purge`."""
    lines = []
    if runtime == "package":
        lines += [
            f"systemctl disable --now {UNIT_NAME} >/dev/null 2>&1 || true",
            f"rm -f /etc/systemd/system/{UNIT_NAME}",
            "systemctl daemon-reload >/dev/null 2>&1 || true",
        ]
    else:
        lines.append(f"docker stop {q(CONTAINER_NAME)} >/dev/null 2>&1 || true")  # drains, unlike rm -f
        lines.append(f"docker rm -f {q(CONTAINER_NAME)} >/dev/null 2>&1 || true")
    lines.append(f"rm -rf {q(CONFIG_DIR)}")
    if purge:
        lines.append(purge_lines(storage_path))
    else:
        lines.append(f"echo {q(f'registry removed; images kept in {storage_path}')} >&2")
    return "\n".join(lines)


def transfer_dir_lines() -> str:
    """The folder layouts are copied into (CopyToRemote copies *into* an existing directory)."""
    return f"install -d -m 0755 {q(TRANSFER_DIR)}"
