"""Harbor from its offline installer: `harbor.yml` rendered from the stack, `install.sh
[--with-trivy]` run only when what it installs changed, a health check, the API calls that create
projects and the robot account clients pull with, and Trivy's databases laid out where the
scanner reads them.

`harbor.yml` holds the admin and database passwords: it reaches the host as a secret file
(0600), never in the script text. Only keys of the installer's own template
(`make/harbor.yml.tmpl` of each supported release line) are written, and every key it sets.

Trivy inside the gap: the adapter runs `trivy` with `--skip-db-update`, `--skip-java-db-update`
and `--offline-scan`, reading its databases from its cache directory, a bind mount of
`<data_volume>/trivy-adapter/trivy`. The databases come from the private registry, where
`trivyDb` put them: a host program (programs/harbor/trivy_db.py) pulls them over TLS verified
against the registry's CA, checks every digest and unpacks them there. The adapter does not pull
them itself, even where the template can name the repositories (v2.15 on): Trivy would send the
scan's Harbor credentials and then its (empty) Docker keychain, and the private registry serves
nobody without its own credentials. The names still point at the private registry, and its CA
is in the adapter's trust store (`storage_service.ca_bundle`), so nothing names the internet.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

import yaml

from . import programs
from .formats.hosts import host_port
from .purge import purge_lines
from .shell import SecretFile, put_file, q

INSTALL_ROOT = "/opt/airgap-harbor"
CONFIG_DIR = "/etc/airgap/harbor"
REGISTRY_CA = f"{CONFIG_DIR}/registry-ca.crt"
INSTALL = programs.load("harbor/install.sh")
API_JSON = programs.load("harbor/api-json.sh")
HEALTH = programs.load("harbor/health.sh")
API = programs.load("harbor/api.sh")
TRIVY_DB = programs.load("harbor/trivy-db.sh")

SUPPORTED_LINES = ("2.12", "2.13", "2.14", "2.15")
"""Release lines whose `harbor.yml.tmpl` this renderer follows (their keys: tests/data/harbor)."""
NAMED_DB_REPOSITORIES = (2, 15)
"""From this line on the template has `trivy.db_repository` and `trivy.java_db_repository`."""
JOB_DURATION_KEY = (2, 13)
"""From this line on the template has `jobservice.max_job_duration_hours`."""
OMITTED = {"http.port": "no plain-HTTP listener: Harbor answers on HTTPS only"}
"""Keys the template sets that harbor.yml leaves out on purpose, and why."""
SCANNER_OWNER = "10000:10000"
"""The adapter's user (`scanner`; DEFAULT_UID/GID of make/photon/prepare/g.py)."""


@dataclass(frozen=True)
class TrivyDatabase:
    """One of Trivy's databases as the private registry holds it, and how Trivy reads it."""

    directory: str
    """Its directory under Trivy's cache directory (trivy pkg/db Dir, pkg/javadb dbDir)."""
    media_type: str
    """The media type of the artifact's layer (Trivy's dbMediaType / javadb mediaType)."""
    schema: int
    """The schema version its metadata.json must name for the Trivy the installer ships."""
    files: tuple[str, ...]
    """What the layer's archive holds and Trivy opens."""
    repository: str
    """Repository in the private registry."""
    reference: str
    """Tag in the private registry."""


def trivy_databases(db: tuple[str, str], java_db: tuple[str, str]) -> tuple[TrivyDatabase, TrivyDatabase]:
    """The vulnerability and Java databases, each from (repository, tag) in the private registry."""
    return (TrivyDatabase("db", "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip", 2,
                          ("trivy.db", "metadata.json"), *db),
            TrivyDatabase("java-db", "application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip", 1,
                          ("trivy-java.db", "metadata.json"), *java_db))


@dataclass(frozen=True)
class TrivyDbSource:
    """Where the Harbor host reads Trivy's databases: the private registry."""

    registry: str
    """Its `host:port`."""
    databases: tuple[TrivyDatabase, ...]


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
    scanner: bool = True
    """Install Trivy (`--with-trivy`)."""
    trivy_db: TrivyDbSource | None = None
    """Where its databases come from (the scanner needs them)."""

    @property
    def line(self) -> tuple[int, int]:
        major, minor, _ = self.version.lstrip("v").split(".")
        return int(major), int(minor)

    @property
    def template_version(self) -> str:
        """The template's `_version` (the installer's migrator reads it): `X.Y.0` of the release line."""
        return "{}.{}.0".format(*self.line)

    @property
    def install_dir(self) -> str:
        return f"{INSTALL_ROOT}/{self.version}"

    @property
    def cert_path(self) -> str:
        return f"{CONFIG_DIR}/server.crt"

    @property
    def key_path(self) -> str:
        return f"{CONFIG_DIR}/server.key"

    @property
    def trivy_cache_dir(self) -> str:
        """The adapter's Trivy cache directory on the host (mounted at /home/scanner/.cache/trivy)."""
        return f"{self.data_volume}/trivy-adapter/trivy"


def _trivy(spec: HarborSpec) -> dict:
    # Inside the gap Trivy neither downloads its databases nor reaches out while scanning.
    trivy: dict = {"ignore_unfixed": False, "skip_update": True, "skip_java_db_update": True,
                   "offline_scan": True, "security_check": "vuln", "insecure": False, "timeout": "5m0s"}
    if spec.line >= NAMED_DB_REPOSITORIES and spec.trivy_db is not None:
        db, java_db = spec.trivy_db.databases
        trivy["db_repository"] = f"{spec.trivy_db.registry}/{db.repository}:{db.reference}"
        trivy["java_db_repository"] = f"{spec.trivy_db.registry}/{java_db.repository}:{java_db.reference}"
    return trivy


def harbor_yml(spec: HarborSpec, *, admin_password: str, database_password: str,
               s3_secret_key: str | None = None) -> str:
    """The installer's configuration (a secret: it carries passwords)."""
    jobservice: dict = {"max_job_workers": 10, "job_loggers": ["STD_OUTPUT", "FILE"], "logger_sweeper_duration": 1}
    if spec.line >= JOB_DURATION_KEY:
        jobservice["max_job_duration_hours"] = 24
    config: dict = {
        "hostname": spec.hostname,
        "https": {"port": spec.https_port, "certificate": spec.cert_path, "private_key": spec.key_path},
        "harbor_admin_password": admin_password,
        "database": {"password": database_password, "max_idle_conns": 100, "max_open_conns": 900,
                     "conn_max_lifetime": "5m", "conn_max_idle_time": 0},
        "data_volume": spec.data_volume,
        "trivy": _trivy(spec),
        "jobservice": jobservice,
        "notification": {"webhook_job_max_retry": 3, "webhook_job_http_client_timeout": 3},
        "log": {"level": "info", "local": {"rotate_count": 50, "rotate_size": "200M",
                                           "location": "/var/log/harbor"}},
        "_version": spec.template_version,
        "proxy": {"http_proxy": None, "https_proxy": None, "no_proxy": None,
                  "components": ["core", "jobservice", "trivy"]},
        "upload_purging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False},
        "cache": {"enabled": False, "expire_hours": 24},
    }
    storage: dict = {}
    if spec.trivy_db is not None:
        # prepare copies it into the trust store every Harbor container appends to its CA bundle.
        storage["ca_bundle"] = REGISTRY_CA
    if spec.s3:
        s3 = dict(spec.s3)
        if s3_secret_key is not None:
            s3["secretkey"] = s3_secret_key
        storage["s3"] = s3
    if storage:
        config["storage_service"] = storage
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False)


def secret_files() -> tuple[SecretFile, SecretFile]:
    """Install step secrets, in stdin order: TLS key, harbor.yml."""
    return (SecretFile(f"{CONFIG_DIR}/server.key", "0600", "root:root", "tls"),
            SecretFile(f"{CONFIG_DIR}/harbor.yml", "0600", "root:root", "config"))


def install_body(spec: HarborSpec, cert_pem: str, archive: str, registry_ca_pem: str | None = None) -> str:
    """Install step: the installer checked and unpacked, the certificate, the private registry's CA
    (with `trivy_db`) and secrets written, install.sh run when what it installs changed
    (programs/harbor/install.sh)."""
    reads = [spec.cert_path, spec.key_path]
    lines = [
        INSTALL,
        f"airgap_harbor_installer {q(archive)} {q(spec.archive_sha256)}",
        f"install -d -m 0755 {q(INSTALL_ROOT)} {q(CONFIG_DIR)} {q(spec.data_volume)}",
        f"airgap_harbor_unpack {q(archive)} {q(spec.install_dir)}",
        put_file(spec.cert_path, cert_pem, tag="tls"),
    ]
    if spec.trivy_db is not None:
        assert registry_ca_pem is not None, "the registry's CA comes with the registry's databases"
        lines.append(put_file(REGISTRY_CA, registry_ca_pem, tag="registry-ca"))  # prepare wants it world-readable
        reads.append(REGISTRY_CA)
    lines += [
        "\n".join(f"airgap_secret_file {q(f.path)} {q(f.mode)} {q(f.owner)} {q(f.tag)}" for f in secret_files()),
        f"airgap_harbor_install {q(CONFIG_DIR + '/harbor.yml')} {q(spec.install_dir)} "
        f"{q('--with-trivy' if spec.scanner else '')} " + " ".join(q(path) for path in reads),
    ]
    return "\n".join(lines)


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


def trivy_db_body(spec: HarborSpec, registry_ca_pem: str, digests: Mapping[str, str | None]) -> str:
    """Trivy's databases into the adapter's cache directory, from the private registry
    (programs/harbor/trivy-db.sh, trivy_db.py). `digests` holds each database's manifest digest
    as the registry's lock has it (by repository); without one the tag is read and its digest
    still verified. The registry's auth file is the step's one stdin secret."""
    source = spec.trivy_db
    assert source is not None
    lines = [TRIVY_DB, put_file(REGISTRY_CA, registry_ca_pem, tag="registry-ca"), "airgap_harbor_trivy_db_login"]
    for database in source.databases:
        args = ["--endpoint", source.registry, "--ca", REGISTRY_CA, "--repository", database.repository,
                "--reference", digests.get(database.repository) or database.reference,
                "--media-type", database.media_type, "--schema", str(database.schema),
                "--target", f"{spec.trivy_cache_dir}/{database.directory}", "--owner", SCANNER_OWNER,
                *database.files]
        lines.append("airgap_harbor_trivy_db " + " ".join(q(arg) for arg in args))
    return "\n".join(lines)


def uninstall_body(spec: HarborSpec, *, purge: bool) -> str:
    lines = [f"if [ -f {q(spec.install_dir + '/docker-compose.yml')} ]; then "
             f"(cd {q(spec.install_dir)} && docker compose down || docker-compose down) >&2 || true; fi"]
    if purge:
        lines += [purge_lines(spec.data_volume), f"rm -rf --one-file-system {q(INSTALL_ROOT)} {q(CONFIG_DIR)}"]
    else:
        lines.append(f"echo {q(f'harbor stopped; data kept in {spec.data_volume}')} >&2")
    return "\n".join(lines)
