"""Harbor from its offline installer: `harbor.yml` rendered from the stack, `install.sh
--with-trivy` run only when what it installs changed, a health check, and the API calls that
create projects and the robot account clients pull with.

`harbor.yml` holds the admin and database passwords: it reaches the host as a secret file
(0600), never in the script text. Only keys Harbor's own template (`make/harbor.yml.tmpl`)
knows are written.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field

import yaml

from . import programs
from .formats.hosts import host_port
from .shell import SecretFile, put_file, q

INSTALL_ROOT = "/opt/airgap-harbor"
CONFIG_DIR = "/etc/airgap/harbor"
INSTALL = programs.load("harbor/install.sh")
API_JSON = programs.load("harbor/api-json.sh")
HEALTH = programs.load("harbor/health.sh")
API = programs.load("harbor/api.sh")


@dataclass(frozen=True)
class HarborSpec:
    hostname: str
    version: str
    """Installer version (from the archive name), e.g. `v2.12.2`."""
    archive_sha256: str
    data_volume: str
    https_port: int = 443
    s3: dict = field(default_factory=dict)
    """Optional external storage: distribution's s3 driver parameters (no secrets here)."""

    @property
    def install_dir(self) -> str:
        return f"{INSTALL_ROOT}/{self.version}"

    @property
    def cert_path(self) -> str:
        return f"{CONFIG_DIR}/server.crt"

    @property
    def key_path(self) -> str:
        return f"{CONFIG_DIR}/server.key"


def harbor_yml(spec: HarborSpec, *, admin_password: str, database_password: str,
               s3_secret_key: str | None = None) -> str:
    """The installer's configuration (a secret: it carries passwords)."""
    config: dict = {
        "hostname": spec.hostname,
        "https": {"port": spec.https_port, "certificate": spec.cert_path, "private_key": spec.key_path},
        "harbor_admin_password": admin_password,
        "database": {"password": database_password, "max_idle_conns": 100, "max_open_conns": 900,
                     "conn_max_lifetime": "5m", "conn_max_idle_time": 0},
        "data_volume": spec.data_volume,
        # Inside the gap Trivy neither downloads its databases nor reaches out while scanning.
        "trivy": {"ignore_unfixed": False, "skip_update": True, "skip_java_db_update": True,
                  "offline_scan": True, "security_check": "vuln", "insecure": False, "timeout": "5m0s"},
        "jobservice": {"max_job_workers": 10, "job_loggers": ["STD_OUTPUT", "FILE"],
                       "logger_sweeper_duration": 1},
        "notification": {"webhook_job_max_retry": 3, "webhook_job_http_client_timeout": 3},
        "log": {"level": "info", "local": {"rotate_count": 50, "rotate_size": "200M",
                                           "location": "/var/log/harbor"}},
        "_version": spec.version.lstrip("v"),
        "proxy": {"http_proxy": None, "https_proxy": None, "no_proxy": None,
                  "components": ["core", "jobservice", "trivy"]},
        "upload_purging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False},
        "cache": {"enabled": False, "expire_hours": 24},
    }
    if spec.s3:
        s3 = dict(spec.s3)
        if s3_secret_key is not None:
            s3["secretkey"] = s3_secret_key
        config["storage_service"] = {"s3": s3}
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False)


def secret_files() -> tuple[SecretFile, SecretFile]:
    """Install step secrets, in stdin order: TLS key, harbor.yml."""
    return (SecretFile(f"{CONFIG_DIR}/server.key", "0600", "root:root", "tls"),
            SecretFile(f"{CONFIG_DIR}/harbor.yml", "0600", "root:root", "config"))


def install_body(spec: HarborSpec, cert_pem: str, archive: str) -> str:
    """Install step: the installer checked and unpacked, the certificate and secrets written,
    install.sh run when what it installs changed (programs/harbor/install.sh)."""
    return "\n".join([
        INSTALL,
        f"airgap_harbor_installer {q(archive)} {q(spec.archive_sha256)}",
        f"install -d -m 0755 {q(INSTALL_ROOT)} {q(CONFIG_DIR)} {q(spec.data_volume)}",
        f"airgap_harbor_unpack {q(archive)} {q(spec.install_dir)}",
        put_file(spec.cert_path, cert_pem, tag="tls"),
        "\n".join(f"airgap_secret_file {q(f.path)} {q(f.mode)} {q(f.owner)} {q(f.tag)}" for f in secret_files()),
        f"airgap_harbor_install {q(CONFIG_DIR + '/harbor.yml')} {q(spec.install_dir)} {q(spec.cert_path)} "
        f"{q(spec.key_path)}",
    ])


def health_body(spec: HarborSpec, *, attempts: int = 90) -> str:
    """Wait until Harbor and every component report healthy (programs/harbor/health.sh)."""
    url = f"https://{host_port(spec.hostname, spec.https_port)}/api/v2.0/health"
    return "\n".join([API_JSON, HEALTH, f"airgap_harbor_health {q(url)} {q(spec.cert_path)} {int(attempts)}"])


def api_body(spec: HarborSpec, projects: list[str], robot_name: str) -> str:
    """Projects (private) and a system robot that may pull from all of them. Admin credentials
    and the robot's secret are the next two stdin secrets (a curl config, a JSON string;
    programs/harbor/api.sh)."""
    base = f"https://{host_port(spec.hostname, spec.https_port)}/api/v2.0"
    robot_body = {
        "name": robot_name, "description": "pulls for the stack's workloads (airgap-infra)", "level": "system",
        "duration": -1, "disable": False,
        "permissions": [{"kind": "project", "namespace": "*",
                         "access": [{"resource": "repository", "action": "pull"}]}],
    }
    lines = [API_JSON, API, f"airgap_harbor_api_login {q(spec.cert_path)}"]
    for project in projects:
        body = json.dumps({"project_name": project, "metadata": {"public": "false"}})
        query = f"{base}/projects?project_name={urllib.parse.quote(project, safe='')}"
        lines.append(f"airgap_harbor_project {q(query)} {q(base + '/projects')} {q(body)}")
    query = f"{base}/robots?q=name%3D~{urllib.parse.quote(robot_name, safe='')}"
    lines.append(f"airgap_harbor_robot {q(base + '/robots')} {q(query)} {q(robot_name)} {q(json.dumps(robot_body))}")
    return "\n".join(lines)


def uninstall_body(spec: HarborSpec, *, purge: bool) -> str:
    lines = [f"if [ -f {q(spec.install_dir + '/docker-compose.yml')} ]; then "
             f"(cd {q(spec.install_dir)} && docker compose down || docker-compose down) >&2 || true; fi"]
    if purge:
        lines.append(f"rm -rf --one-file-system {q(spec.data_volume)} {q(INSTALL_ROOT)} {q(CONFIG_DIR)}")
    else:
        lines.append(f"echo {q(f'harbor stopped; data kept in {spec.data_volume}')} >&2")
    return "\n".join(lines)
