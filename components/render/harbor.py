"""Harbor from its offline installer: `harbor.yml` rendered from the stack, `install.sh
--with-trivy` run only when what it installs changed, a health check, and the API calls that
create projects and the robot account clients pull with.

`harbor.yml` holds the admin and database passwords: it reaches the host as a secret file
(0600), never in the script text. Only keys Harbor's own template (`make/harbor.yml.tmpl`)
knows are written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import yaml

from .shell import SecretFile, put_file, q

INSTALL_ROOT = "/opt/airgap-harbor"
CONFIG_DIR = "/etc/airgap/harbor"


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
    stamp = f"{spec.install_dir}/.airgap-installed"
    return "\n".join([
        "for tool in docker tar sha256sum; do command -v \"$tool\" >/dev/null 2>&1 || "
        "{ echo \"harbor: $tool is needed on the host\" >&2; exit 1; }; done",
        f"echo {q(spec.archive_sha256 + '  ' + archive)} | sha256sum -c --quiet - "
        f"|| {{ echo {q('harbor: the installer archive does not match its sha256; refusing to install')} >&2; exit 1; }}",
        f"install -d -m 0755 {q(INSTALL_ROOT)} {q(CONFIG_DIR)} {q(spec.data_volume)}",
        f"if [ ! -x {q(spec.install_dir + '/install.sh')} ]; then",
        f"  tmp=$(mktemp -d {q(INSTALL_ROOT + '/.extract.XXXXXX')})",
        f"  tar -xzf {q(archive)} -C \"$tmp\"",
        f"  mv \"$tmp\"/harbor {q(spec.install_dir)} && rmdir \"$tmp\"",
        "fi",
        put_file(spec.cert_path, cert_pem, tag="tls"),
        "\n".join(f"airgap_secret_file {q(f.path)} {q(f.mode)} {q(f.owner)} {q(f.tag)}" for f in secret_files()),
        f"install -m 0600 {q(CONFIG_DIR + '/harbor.yml')} {q(spec.install_dir + '/harbor.yml')}",
        # install.sh (docker compose down/up of every Harbor container) runs only when what it
        # installs changed: the version, harbor.yml, or the certificate.
        f"want=$(cat {q(spec.install_dir + '/harbor.yml')} {q(spec.cert_path)} {q(spec.key_path)} | sha256sum | cut -d' ' -f1)",
        f"if [ \"$(cat {q(stamp)} 2>/dev/null)\" != \"$want\" ]; then",
        f"  (cd {q(spec.install_dir)} && ./install.sh --with-trivy) >&2",
        f"  echo \"$want\" > {q(stamp)}",
        "else",
        f"  echo {q('harbor: installed and unchanged; install.sh not run')} >&2",
        "fi",
    ])


def health_body(spec: HarborSpec, *, attempts: int = 90) -> str:
    url = f"https://{spec.hostname}:{spec.https_port}/api/v2.0/health"
    return "\n".join([
        "status=''",
        f"for attempt in $(seq {attempts}); do",
        f"  status=$(curl -fsS --max-time 5 --cacert {q(spec.cert_path)} {q(url)} 2>/dev/null | "
        "python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"status\"] if all(c[\"status\"]==\"healthy\" for c in d.get(\"components\", [])) else \"degraded\")' || true)",
        "  [ \"$status\" = healthy ] && break",
        "  sleep 2",
        "done",
        f"[ \"$status\" = healthy ] || {{ echo {q(f'harbor: {url} is not healthy')} >&2; exit 1; }}",
    ])


def api_body(spec: HarborSpec, projects: list[str], robot_name: str) -> str:
    """Projects (private) and a system robot that may pull from all of them. Admin credentials
    and the robot's secret are the next two stdin secrets (a curl config, a JSON string)."""
    base = f"https://{spec.hostname}:{spec.https_port}/api/v2.0"
    curl = f"curl -fsS --max-time 30 --cacert {q(spec.cert_path)} -K \"$admin\" -H 'Content-Type: application/json'"
    robot_body = {
        "name": robot_name, "description": "pulls for the stack's workloads (airgap-infra)", "level": "system",
        "duration": -1, "disable": False,
        "permissions": [{"kind": "project", "namespace": "*",
                         "access": [{"resource": "repository", "action": "pull"}]}],
    }
    lines = ["airgap_secret_tmp admin", "airgap_secret_tmp robot_secret"]
    for project in projects:
        body = json.dumps({"project_name": project, "metadata": {"public": "false"}})
        lines.append(
            f"if ! {curl} -o /dev/null {q(base + '/projects?project_name=' + project)} -I; then\n"
            f"  {curl} -X POST -d {q(body)} {q(base + '/projects')}\n"
            "fi")
    lines += [
        f"robot_id=$({curl} {q(base + '/robots?q=name%3D~' + robot_name)} | python3 -c "
        f"'import json,sys; print(next((str(r[\"id\"]) for r in json.load(sys.stdin) if r[\"name\"].endswith(\"{robot_name}\")), \"\"))')",
        "if [ -z \"$robot_id\" ]; then",
        f"  python3 -c 'import json,sys; b=json.loads(sys.argv[1]); b[\"secret\"]=open(sys.argv[2]).read(); print(json.dumps(b))' "
        f"{q(json.dumps(robot_body))} \"$robot_secret\" | {curl} -X POST -d @- {q(base + '/robots')} >/dev/null",
        "else",
        "  python3 -c 'import json,sys; print(json.dumps({\"secret\": open(sys.argv[1]).read()}))' \"$robot_secret\" "
        f"| {curl} -X PATCH -d @- {q(base + '/robots/')}\"$robot_id\" >/dev/null",
        "fi",
    ]
    return "\n".join(lines)


def uninstall_body(spec: HarborSpec, *, purge: bool) -> str:
    lines = [f"if [ -f {q(spec.install_dir + '/docker-compose.yml')} ]; then "
             f"(cd {q(spec.install_dir)} && docker compose down || docker-compose down) >&2 || true; fi"]
    if purge:
        lines.append(f"rm -rf --one-file-system {q(spec.data_volume)} {q(INSTALL_ROOT)} {q(CONFIG_DIR)}")
    else:
        lines.append(f"echo {q(f'harbor stopped; data kept in {spec.data_volume}')} >&2")
    return "\n".join(lines)
