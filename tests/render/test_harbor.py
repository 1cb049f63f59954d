"""Harbor: harbor.yml against the installer template's keys, install.sh gated on what it
installs (run for real with an installer-shaped archive), the API bootstrap scripts, and the
component under the mock runtime. Harbor's own images cannot be obtained here: nothing past
install.sh (the containers, the API answering) runs in these tests."""

import base64
import copy
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from components.harbor import projects_for
from components.images import parse_image_ref
from components.render import harbor as render
from components.render.shell import step_script
from offline.program import is_secret, plain_parts, reveal, run_program
from offline.stackfile import load_stack
from tests.render import stub_commands

DATA = Path(__file__).resolve().parents[1] / "data"
SPEC = render.HarborSpec(hostname="harbor.example.internal", version="v2.12.2", archive_sha256="0" * 64,
                         data_volume="/data/harbor")


def template_keys() -> set[str]:
    """harbor.yml key paths of Harbor's make/harbor.yml.tmpl (the file names its source)."""
    keys = set()
    for line in (DATA / "harbor_yml_keys.txt").read_text().split("SECTION 2")[0].splitlines():
        if line and not line.startswith("#"):
            keys.add(line.split("#")[0].strip())
    return keys


def leaf_paths(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_harbor_yml_uses_only_template_keys_with_secrets_in_place():
    text = render.harbor_yml(SPEC, admin_password="adm'in $(x)", database_password="d\"b")
    config = yaml.safe_load(text)
    known = template_keys()
    unknown = [p for p in leaf_paths(config) if p not in known and not any(p.startswith(k + ".") for k in known)]
    assert not unknown, unknown
    assert config["harbor_admin_password"] == "adm'in $(x)"
    assert config["database"]["password"] == 'd"b'
    assert config["trivy"]["skip_update"] is True and config["trivy"]["offline_scan"] is True
    assert config["https"] == {"port": 443, "certificate": SPEC.cert_path, "private_key": SPEC.key_path}
    assert config["data_volume"] == "/data/harbor" and config["_version"] == "2.12.2"
    assert "http" not in config, "no plain-HTTP listener"


def test_external_storage_keys_are_the_driver_s():
    spec = render.HarborSpec(**{**SPEC.__dict__, "s3": {"bucket": "harbor", "region": "us-east-1",
                                                          "regionendpoint": "https://minio.internal:9000"}})
    config = yaml.safe_load(render.harbor_yml(spec, admin_password="a", database_password="b", s3_secret_key="k"))
    known = template_keys()
    assert all(p in known for p in leaf_paths(config) if p.startswith("storage_service"))
    assert config["storage_service"]["s3"]["secretkey"] == "k"


def installer_archive(tmp_path: Path) -> Path:
    """An archive shaped like harbor-offline-installer-v2.12.2.tgz, whose install.sh counts runs."""
    archive = tmp_path / "harbor-offline-installer-v2.12.2.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text, mode in (
            ("harbor/install.sh", '#!/bin/sh\necho "$@" >> "$(dirname "$0")/install.runs"\n', 0o755),
            ("harbor/harbor.yml.tmpl", "hostname: reg.mydomain.com\n", 0o644),
            ("harbor/prepare", "#!/bin/sh\n", 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(text), mode
            tar.addfile(info, io.BytesIO(text.encode()))
    return archive


def run_install(tmp_path, archive, harbor_yml):
    spec = render.HarborSpec(**{**SPEC.__dict__, "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                                "data_volume": str(tmp_path / "data")})
    body = render.install_body(spec, "CERT\n", str(archive))
    body = body.replace(render.INSTALL_ROOT, str(tmp_path / "opt")).replace(render.CONFIG_DIR, str(tmp_path / "etc"))
    stdin = "".join(base64.b64encode(v.encode()).decode() + "\n" for v in ("KEY\n", harbor_yml))
    result = subprocess.run(["sh", "-c", step_script(body)], input=stdin, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    runs = tmp_path / "opt/v2.12.2/install.runs"
    return runs.read_text().splitlines() if runs.exists() else []


def test_install_sh_runs_only_when_its_inputs_change(tmp_path):
    archive = installer_archive(tmp_path)
    first = render.harbor_yml(SPEC, admin_password="one", database_password="db")
    assert run_install(tmp_path, archive, first) == ["--with-trivy"]
    assert run_install(tmp_path, archive, first) == ["--with-trivy"], "same inputs: not run again"
    second = render.harbor_yml(SPEC, admin_password="two", database_password="db")
    assert run_install(tmp_path, archive, second) == ["--with-trivy", "--with-trivy"]
    assert (tmp_path / "opt/v2.12.2/harbor.yml").stat().st_mode & 0o777 == 0o600


def test_a_tampered_installer_is_refused(tmp_path):
    archive = installer_archive(tmp_path)
    spec = render.HarborSpec(**{**SPEC.__dict__, "archive_sha256": "1" * 64})
    body = render.install_body(spec, "CERT\n", str(archive)).replace(render.INSTALL_ROOT, str(tmp_path / "opt"))
    result = subprocess.run(["sh", "-c", step_script(body)], input="", capture_output=True, text=True)
    assert result.returncode != 0 and "does not match its sha256" in result.stderr
    assert not (tmp_path / "opt/v2.12.2").exists()


def test_api_and_health_scripts_parse():
    for body in (render.health_body(SPEC), render.api_body(SPEC, ["library", "docker.io"], "airgap-pull")):
        subprocess.run(["bash", "-n", "-c", step_script(body)], check=True)
    api = render.api_body(SPEC, ["library", "docker.io"], "airgap-pull")
    assert '"action": "pull"' in api and '"level": "system"' in api
    assert "/api/v2.0/projects?project_name=library" in api


# Harbor's API as the stubs see it: no project exists, the robot exists when ROBOTS says so; what
# curl sends on stdin is kept beside the calls.
CURL_STUB = """case "$*" in
  *" -I") exit 22 ;;
  *"/robots?q="*) printf '%s' "$ROBOTS" ;;
  *"/health") printf '%s' "$HEALTH" ;;
  *" -d @- "*) { cat; echo; } >> "$STUB_LOG.sent" ;;
esac"""


def test_api_calls_create_projects_and_set_the_robot_secret(tmp_path):
    api = render.api_body(SPEC, ["docker.io"], "airgap-pull")
    stdin = stub_commands.secret_line('user = "admin:pw"\n') + stub_commands.secret_line("Robot$ecret1")
    sent = tmp_path / "stub-calls.sent"
    for robots, method, target in (("[]", "POST", "/robots"),
                                   ('[{"id": 7, "name": "robot$airgap-pull"}]', "PATCH", "/robots/7")):
        sent.write_text("")
        result, calls = stub_commands.run(tmp_path, api, {"curl": CURL_STUB}, stdin=stdin, env={"ROBOTS": robots})
        assert result.returncode == 0, result.stderr
        base = "https://harbor.example.internal:443/api/v2.0"
        urls = [(call[call.index("-X") + 1] if "-X" in call else "GET", call[-1] if call[-1] != "-I" else call[-2])
                for call in calls]
        assert urls == [("GET", f"{base}/projects?project_name=docker.io"), ("POST", f"{base}/projects"),
                        ("GET", f"{base}/robots?q=name%3D~airgap-pull"), (method, base + target)]
        for call in calls:
            assert call[1:6] == ["-fsS", "--max-time", "30", "--cacert", SPEC.cert_path]
        create = calls[1]
        project = json.loads(create[create.index("-d") + 1])
        assert project == {"project_name": "docker.io", "metadata": {"public": "false"}}
        robot = json.loads(sent.read_text())
        assert robot["secret"] == "Robot$ecret1", "the secret arrives from stdin, as data"
        if method == "POST":
            assert robot["name"] == "airgap-pull" and robot["level"] == "system"
        else:
            assert robot == {"secret": "Robot$ecret1"}


@pytest.mark.parametrize("answer, healthy", [
    ({"status": "healthy", "components": [{"name": "core", "status": "healthy"}]}, True),
    ({"status": "healthy", "components": [{"name": "trivy", "status": "unhealthy"}]}, False),
])
def test_health_waits_for_every_component(tmp_path, answer, healthy):
    result, calls = stub_commands.run(tmp_path, render.health_body(SPEC, attempts=3), {"curl": CURL_STUB, "sleep": ""},
                                      env={"HEALTH": json.dumps(answer)})
    assert (result.returncode == 0) is healthy, result.stderr
    assert len([c for c in calls if c[0] == "curl"]) == (1 if healthy else 3)
    assert calls[0][-1] == "https://harbor.example.internal:443/api/v2.0/health"
    if not healthy:
        assert "is not healthy" in result.stderr


def test_projects_cover_every_source_registry():
    refs = tuple(parse_image_ref(r) for r in ("nginx:1.25", "quay.io/x/y:1", "registry.k8s.io/pause:3.9"))
    assert projects_for(refs) == ["docker.io", "library", "quay.io", "registry.k8s.io"]


@pytest.fixture(scope="module")
def harbor_stack(tmp_path_factory):
    archive = installer_archive(tmp_path_factory.mktemp("harbor"))
    config = copy.deepcopy(load_stack("sandbox"))
    values = config.values
    values["airgap-infra:secrets"].update(harborAdminPassword="admin pass'", harborDatabasePassword="db-pass",
                                          harborRobotSecret="Robot$ecret1")
    values["airgap-infra:harbor"] = {
        "host": "registry", "installer": str(archive), "port": 8443,
        "installerSha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
    }
    values["airgap-infra:adminFileRoots"] = [str(archive.parent)]
    values["airgap-infra:mattermost"] = {
        "target": "kubernetes", "image": "docker.io/mattermost/mattermost-team-edition:9.11.1",
        "siteUrl": "https://chat.sandbox.test", "fileStorage": "local", "kubernetes": {"mode": "operator"}}
    values["airgap-infra:secrets"]["mattermostDatabaseUrl"] = "postgres://mm:pw@db:5432/mm"
    return config, run_program(config).raise_error()


def test_harbor_component_wiring(harbor_stack):
    config, run = harbor_stack
    install = run.named("harbor-install")
    assert is_secret(install.inputs["stdin"]) and "install.sh --with-trivy" in install.inputs["create"]
    assert run.named("harbor-installer").type == "command:remote:CopyToRemote"
    api = run.named("harbor-api")
    assert install.urn in api.dependencies
    for project in ("library", "docker.io", "quay.io", "registry.k8s.io", "gcr.io", "ghcr.io"):
        assert f"project_name={project}" in api.inputs["create"]
    fill = run.named("harbor-fill")
    assert api.urn in fill.dependencies and '"endpoint": "127.0.0.11:8443"' in fill.inputs["create"]
    plain = str([plain_parts(r.inputs) for r in run.records])
    for secret in ("admin pass'", "Robot$ecret1", "postgres://mm:pw@db"):
        assert secret not in plain


def test_workloads_pull_from_harbor_with_the_robot(harbor_stack):
    config, run = harbor_stack
    secret = next(r for r in run.records if r.name == "mattermost-pull-secret")
    document = reveal(secret.inputs["data"])[".dockerconfigjson"]
    auths = __import__("json").loads(base64.b64decode(document))["auths"]
    assert auths == {"127.0.0.11:8443": {"username": "robot$airgap-pull", "password": "Robot$ecret1",
                                         "auth": base64.b64encode(b"robot$airgap-pull:Robot$ecret1").decode()}}
    assert run.exports["mattermost"]["image"].startswith("127.0.0.11:8443/docker.io/mattermost/")
