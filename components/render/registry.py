"""Docker Distribution registry: config.yml, systemd unit, and the install step for both runtimes.

Pure functions of plain values. The registry never proxies to a public registry and never
deletes blobs (`storage.delete.enabled: false`); TLS and htpasswd auth are always on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from . import programs
from .shell import SecretFile, put_file, q, take_secrets

CONFIG_DIR = "/etc/airgap/registry"
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
    docker_archive: str = "/var/lib/airgap/images/registry.tar"
    """Where the image archive lies on the host (`docker` runtime)."""

    @property
    def endpoint(self) -> str:
        return f"{self.hostname}:{self.port}"


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
# Run before every start. Distribution writes manifests and links in place (create, then write),
# so a kill can leave either empty, and it then answers every request that reads one with a 500,
# a re-push included. An empty blob `data` (manifests are written this way) is removed: the next
# fill writes it again. A link's directory names the digest it holds (…/sha256/<hex>/link), except
# a tag's `current` link: an empty one of the first kind is written again when its blob is there;
# the rest are removed (the tag is then absent, and the next fill writes it).
REPAIR_STORAGE = programs.load("registry/repair-storage.sh")


def repair_storage(storage: str) -> str:
    """The command that runs the repair over `storage` (installed by the install step)."""
    return f"/bin/sh {q(REPAIR_SCRIPT)} {q(storage)}"


def registry_unit(storage: str, config_path: str = f"{CONFIG_DIR}/config.yml") -> str:
    """systemd unit for the package runtime."""
    if not re.fullmatch(r"/[A-Za-z0-9._/+-]+", storage):
        raise ValueError(f"registry storage {storage!r}: only an absolute path of letters, digits and . _ / + -")
    return f"""[Unit]
Description=Private container registry (airgap-infra)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={SERVICE_USER}
Group={SERVICE_USER}
ExecStartPre={repair_storage(storage)}
ExecStart=/usr/bin/docker-registry serve {config_path}
Restart=on-failure
RestartSec=2
TimeoutStopSec={STOP_TIMEOUT_SECONDS}
NoNewPrivileges=yes
ProtectSystem=full
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def secret_files(runtime: str) -> tuple[SecretFile, SecretFile]:
    """The install step's secrets, in stdin order: TLS key, then htpasswd."""
    group = SERVICE_USER if runtime == "package" else "root"
    return (
        SecretFile(f"{CONFIG_DIR}/server.key", "0640", f"root:{group}", "tls"),
        SecretFile(f"{CONFIG_DIR}/htpasswd", "0640", f"root:{group}", "auth"),
    )


def health_check(spec: RegistrySpec) -> str:
    """Fail unless `/v2/` answers over TLS: 401 without credentials, 200 with them.

    The credentials arrive as the next stdin secret: a curl config line `user = "name:password"`.
    """
    url = f"https://{spec.endpoint}/v2/"
    curl = f"curl -sS --max-time 5 --cacert {q(CONFIG_DIR + '/ca.crt')} --resolve {q(f'{spec.hostname}:{spec.port}:{spec.address}')}"
    return f"""airgap_secret_tmp health_auth
code=000
for attempt in $(seq 60); do
  code=$({curl} -o /dev/null -w '%{{http_code}}' {q(url)} 2>/dev/null || true)
  [ "$code" = 401 ] && break
  sleep 1
done
if [ "$code" != 401 ]; then
  echo {q(f"registry health: {url} answered")} "$code" {q("without credentials; expected 401 over TLS")} >&2
  exit 1
fi
if ! {curl} -f -o /dev/null -K "$health_auth" {q(url)}; then
  echo {q(f"registry health: {url} refused the first user's credentials")} >&2
  exit 1
fi
echo {q(f"registry healthy at {url}")} >&2
"""


def install_package_runtime(spec: RegistrySpec) -> str:
    """Install step body for Debian's docker-registry as a systemd unit."""
    config = registry_config(
        listen=f"{spec.address}:{spec.port}",
        storage=spec.storage_path,
        cert=f"{CONFIG_DIR}/server.crt",
        key=f"{CONFIG_DIR}/server.key",
        htpasswd=f"{CONFIG_DIR}/htpasswd",
    )
    return "\n".join([
        "if ! command -v docker-registry >/dev/null 2>&1; then",
        "  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry",
        "fi",
        f"if systemctl is-enabled {PACKAGE_UNIT} >/dev/null 2>&1 || systemctl is-active {PACKAGE_UNIT} >/dev/null 2>&1; then",
        f"  systemctl disable --now {PACKAGE_UNIT}",
        "fi",
        f"install -d -m 0750 -o {SERVICE_USER} -g {SERVICE_USER} {q(spec.storage_path)}",
        f"install -d -m 0755 {q(CONFIG_DIR)}",
        put_file(f"{CONFIG_DIR}/config.yml", config, mode="0644", tag="config"),
        put_file(f"{CONFIG_DIR}/server.crt", spec.cert_pem, mode="0644", tag="tls"),
        put_file(f"{CONFIG_DIR}/ca.crt", spec.ca_pem, mode="0644", tag="ca"),
        put_file(REPAIR_SCRIPT, REPAIR_STORAGE, mode="0755", tag="repair"),
        put_file(f"/etc/systemd/system/{UNIT_NAME}", registry_unit(spec.storage_path), mode="0644", tag="unit"),
        take_secrets(secret_files("package")),
        "if airgap_changed unit; then systemctl daemon-reload; fi",
        f"systemctl enable {UNIT_NAME} >/dev/null 2>&1 || true",
        f"if airgap_changed config tls auth unit && systemctl is-active {UNIT_NAME} >/dev/null 2>&1; then",
        f"  systemctl restart {UNIT_NAME}",
        "else",
        f"  systemctl start {UNIT_NAME}",
        "fi",
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
    name = q(CONTAINER_NAME)
    image = q(spec.docker_image)
    repair = f"{repair_storage(spec.storage_path)} >&2"  # before every start of the container
    run = " ".join([
        "docker run -d", f"--name {name}", "--restart=always", f"--stop-timeout {STOP_TIMEOUT_SECONDS}",
        f"-p {q(f'{spec.address}:{spec.port}:5000')}",
        f"-v {q(spec.storage_path + ':/var/lib/registry')}",
        f"-v {q(CONFIG_DIR + ':' + inner + ':ro')}",
        f"--label airgap.image-id=\"$image_id\"", image,
    ])
    return "\n".join([
        "if ! command -v docker >/dev/null 2>&1; then",
        "  echo 'registry: runtime docker needs Docker on the host' >&2; exit 1",
        "fi",
        f"if ! docker image inspect {image} >/dev/null 2>&1; then",
        f"  docker load -i {q(spec.docker_archive)}",
        "fi",
        f"image_id=$(docker image inspect -f '{{{{.Id}}}}' {image})",
        f"install -d -m 0750 {q(spec.storage_path)}",
        f"install -d -m 0755 {q(CONFIG_DIR)}",
        put_file(f"{CONFIG_DIR}/config.yml", config, mode="0644", tag="config"),
        put_file(f"{CONFIG_DIR}/server.crt", spec.cert_pem, mode="0644", tag="tls"),
        put_file(f"{CONFIG_DIR}/ca.crt", spec.ca_pem, mode="0644", tag="ca"),
        put_file(REPAIR_SCRIPT, REPAIR_STORAGE, mode="0755", tag="repair"),
        take_secrets(secret_files("docker")),
        f"current=$(docker inspect -f '{{{{index .Config.Labels \"airgap.image-id\"}}}}' {name} 2>/dev/null || true)",
        f"published=$(docker port {name} 5000/tcp 2>/dev/null | head -n1 || true)",
        f"if [ \"$current\" != \"$image_id\" ] || [ \"$published\" != {q(f'{spec.address}:{spec.port}')} ]; then",
        f"  docker stop {name} >/dev/null 2>&1 || true",
        f"  docker rm -f {name} >/dev/null 2>&1 || true",
        f"  {repair}",
        f"  {run}",
        "elif airgap_changed config tls auth; then",
        f"  docker stop {name} >/dev/null",
        f"  {repair}",
        f"  docker start {name} >/dev/null",
        f"elif [ \"$(docker inspect -f '{{{{.State.Running}}}}' {name})\" != true ]; then",
        f"  {repair}",
        f"  docker start {name}",
        "fi",
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
        lines.append(f"rm -rf --one-file-system {q(storage_path)}")
    else:
        lines.append(f"echo {q(f'registry removed; images kept in {storage_path}')} >&2")
    return "\n".join(lines)
