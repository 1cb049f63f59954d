"""Harbor: harbor.yml key by key against the installer template of every supported release line
(tests/data/harbor), install.sh gated on what it installs (run for real with an installer-shaped
archive), the API bootstrap scripts, Trivy's databases pulled from a real private registry and
laid out where the adapter reads them, and the component under the mock runtime. Harbor's own
images cannot be obtained here: nothing past install.sh (the containers, the API answering, a
scan reading the laid-out databases) runs in these tests."""

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

from components.harbor import locked_digests, projects_for
from components.images import parse_image_ref
from components.registry import fill_image
from components.render import harbor as render, registry_fill
from components.render.shell import step_script
from offline.program import is_secret, plain_parts, reveal, run_program
from offline.stackfile import PROJECT_DIR, load_stack
from sandbox import trivy_artifacts
from tests.harness.private_registry import PrivateRegistry
from tests.render import stub_commands

DATA = Path(__file__).resolve().parents[1] / "data"
SPEC = render.HarborSpec(hostname="harbor.example.internal", version="v2.12.2", archive_sha256="0" * 64,
                         data_volume="/data/harbor")
DB_REFS = (parse_image_ref(trivy_artifacts.DB_REF), parse_image_ref(trivy_artifacts.JAVA_DB_REF))
TRIVY = render.TrivyDbSource(registry="registry.example.internal:5443", databases=render.trivy_databases(
    *((ref.private_path, ref.private_tag) for ref in DB_REFS)))


class Template:
    """What tests/data/harbor/v<line>.txt says of one release line's installer (the file names its sources)."""

    def __init__(self, line: str):
        self.keys: dict[str, bool] = {}  # path -> optional
        self.backends: set[str] = set()
        self.env: dict[str, str | None] = {}
        self.mounts: dict[str, str] = {}  # target -> source
        self.facts: dict[str, str] = {}
        for text in (DATA / "harbor" / f"v{line}.txt").read_text().splitlines():
            if not text or text.startswith("#"):
                continue
            kind, *words = text.split()
            if kind == "key":
                self.keys[words[0]] = words[1:] == ["optional"]
            elif kind == "backend":
                self.backends.add(words[0])
            elif kind == "adapter-env":
                self.env[words[0]] = words[1] if len(words) > 1 else None
            elif kind == "adapter-mount":
                self.mounts[words[1]] = words[0]
            else:
                self.facts[kind] = words[0]


def s3_driver_keys() -> set[str]:
    """storage_service.s3.* of distribution's s3 driver (SECTION 1b of harbor_yml_keys.txt names its source)."""
    section = (DATA / "harbor_yml_keys.txt").read_text().split("# SECTION 1b:")[1].split("# SECTION 2:")[0]
    return {line.split("#")[0].strip() for line in section.splitlines()
            if line.startswith("storage_service.s3.")}


def leaf_paths(node, prefix=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def spec_for(line: str, **changes) -> render.HarborSpec:
    return render.HarborSpec(**{**SPEC.__dict__, "version": f"v{line}.1", **changes})


def test_the_supported_lines_are_the_templates_kept():
    kept = sorted(path.stem.lstrip("v") for path in (DATA / "harbor").glob("v*.txt"))
    assert kept == sorted(render.SUPPORTED_LINES)


@pytest.mark.parametrize("line", render.SUPPORTED_LINES)
def test_harbor_yml_holds_every_template_key_and_no_other(line):
    template = Template(line)
    spec = spec_for(line, trivy_db=TRIVY, s3={"bucket": "harbor", "region": "us-east-1",
                                              "regionendpoint": "https://minio.internal:9000"})
    config = yaml.safe_load(render.harbor_yml(spec, admin_password="a", database_password="b", s3_secret_key="k"))
    rendered = set(leaf_paths(config))
    s3 = s3_driver_keys()
    unknown = sorted(path for path in rendered if path not in template.keys
                     and not (path.split(".")[:2] == ["storage_service", "s3"] and "s3" in template.backends
                              and path in s3))
    assert not unknown, f"keys v{line}'s template does not have: {unknown}"
    left_out = {path for path, optional in template.keys.items() if not optional} - rendered
    assert left_out == set(render.OMITTED), "every key the template sets is written, or omitted for a reason"
    assert config["_version"] == template.facts["version"], "the template's own _version, never the patch level"


@pytest.mark.parametrize("line", render.SUPPORTED_LINES)
def test_trivy_reads_only_what_the_gap_holds(line):
    template = Template(line)
    config = yaml.safe_load(render.harbor_yml(spec_for(line, trivy_db=TRIVY), admin_password="a",
                                              database_password="b"))
    trivy = config["trivy"]
    assert trivy["skip_update"] is True and trivy["skip_java_db_update"] is True and trivy["offline_scan"] is True
    assert "github_token" not in trivy
    # Where the template can name the repositories (and the adapter passes them on), they are ours.
    named = "trivy.db_repository" in template.keys
    assert named == ("SCANNER_TRIVY_DB_REPOSITORY" in template.env)
    if named:
        assert trivy["db_repository"] == "registry.example.internal:5443/ghcr.io/aquasecurity/trivy-db:2"
        assert trivy["java_db_repository"] == "registry.example.internal:5443/ghcr.io/aquasecurity/trivy-java-db:1"
    else:
        assert "db_repository" not in trivy and "java_db_repository" not in trivy
    assert config["storage_service"] == {"ca_bundle": render.REGISTRY_CA}, "the registry's CA in the trust store"
    assert template.facts["trust-ca"].endswith("/storage_ca_bundle.crt")


@pytest.mark.parametrize("line", render.SUPPORTED_LINES)
def test_the_databases_go_where_the_adapter_reads_them(line):
    template = Template(line)
    cache = template.env["SCANNER_TRIVY_CACHE_DIR"]
    assert cache is not None, "the adapter's cache directory is fixed in its env file"
    spec = spec_for(line)
    assert template.mounts[cache].replace("{{data_volume}}", spec.data_volume) == spec.trivy_cache_dir
    assert render.SCANNER_OWNER == f"{template.facts['scanner-uid']}:{template.facts['scanner-uid']}"


def test_the_databases_are_as_trivy_reads_them():
    kept = {}
    for line in (DATA / "trivy_db_layout.txt").read_text().splitlines():
        if line.startswith("database "):
            _, directory, media_type, schema, *files = line.split()
            kept[directory] = (media_type, int(schema), tuple(files))
    assert {db.directory: (db.media_type, db.schema, db.files) for db in TRIVY.databases} == kept
    layer_types = {trivy_artifacts.DB_LAYER_TYPE, trivy_artifacts.JAVA_DB_LAYER_TYPE}
    assert {media_type for media_type, _, _ in kept.values()} == layer_types


def test_harbor_yml_keeps_secrets_in_place_and_no_plain_listener():
    text = render.harbor_yml(SPEC, admin_password="adm'in $(x)", database_password="d\"b")
    config = yaml.safe_load(text)
    assert config["harbor_admin_password"] == "adm'in $(x)"
    assert config["database"]["password"] == 'd"b'
    assert config["https"] == {"port": 443, "certificate": SPEC.cert_path, "private_key": SPEC.key_path}
    assert config["data_volume"] == "/data/harbor" and config["_version"] == "2.12.0"
    assert "http" not in config, "no plain-HTTP listener"
    assert "storage_service" not in config, "no scanner source: no CA to trust, local storage"


def test_external_storage_keys_are_the_driver_s():
    spec = render.HarborSpec(**{**SPEC.__dict__, "s3": {"bucket": "harbor", "region": "us-east-1",
                                                          "regionendpoint": "https://minio.internal:9000"}})
    config = yaml.safe_load(render.harbor_yml(spec, admin_password="a", database_password="b", s3_secret_key="k"))
    assert all(p in s3_driver_keys() for p in leaf_paths(config) if p.startswith("storage_service"))
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


def run_install(tmp_path, archive, harbor_yml, registry_ca=None, **changes):
    spec = render.HarborSpec(**{**SPEC.__dict__, "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                                "data_volume": str(tmp_path / "data"), **changes})
    body = render.install_body(spec, "CERT\n", str(archive), registry_ca)
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
    assert run_install(tmp_path, archive, second, scanner=False) == ["--with-trivy", "--with-trivy", ""], \
        "without the scanner: run again, without --with-trivy"


def test_the_registry_ca_is_world_readable_and_a_new_one_reinstalls(tmp_path):
    archive = installer_archive(tmp_path)
    harbor_yml = render.harbor_yml(render.HarborSpec(**{**SPEC.__dict__, "trivy_db": TRIVY}),
                                   admin_password="one", database_password="db")
    assert run_install(tmp_path, archive, harbor_yml, "CA ONE\n", trivy_db=TRIVY) == ["--with-trivy"]
    ca = tmp_path / "etc" / Path(render.REGISTRY_CA).name
    assert ca.read_text() == "CA ONE\n" and ca.stat().st_mode & 0o777 == 0o644, "prepare refuses it unreadable"
    assert run_install(tmp_path, archive, harbor_yml, "CA ONE\n", trivy_db=TRIVY) == ["--with-trivy"]
    assert len(run_install(tmp_path, archive, harbor_yml, "CA TWO\n", trivy_db=TRIVY)) == 2, \
        "prepare copies the CA into the trust store: a new one runs install.sh again"


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


# --- Trivy's databases, laid out from a real private registry ----------------------------------

# No virtual environment on PATH: python3 is the system's, as on the Harbor host.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
LAYOUT = PROJECT_DIR / "sandbox" / "data" / "trivy-layout"


def layout_blob(digest: str) -> bytes:
    return (LAYOUT / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def shipped(ref) -> tuple[str, str, dict[str, str]]:
    """(manifest digest, layer digest, file -> sha256) of a database as the carried layout holds it."""
    index = json.loads((LAYOUT / "index.json").read_text())
    digest = next(entry["digest"] for entry in index["manifests"]
                  if entry["annotations"]["org.opencontainers.image.ref.name"] == str(ref))
    layer = json.loads(layout_blob(digest))["layers"][0]["digest"]
    with tarfile.open(fileobj=io.BytesIO(layout_blob(layer)), mode="r:gz") as tar:
        files = {}
        for member in tar:
            content = tar.extractfile(member)
            assert content is not None
            files[member.name] = "sha256:" + hashlib.sha256(content.read()).hexdigest()
    return digest, layer, files


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A private registry as the Registry component runs it, filled from the trivyDb layout by the
    stack's own fill step; (registry, its lock)."""
    work = tmp_path_factory.mktemp("trivy-registry")
    (work / "registries.conf").write_text("")
    images = [fill_image(ref, {}, str(LAYOUT)) for ref in DB_REFS]
    with PrivateRegistry("127.0.0.5", 5449, state_dir=work / "registry") as private:
        plan = registry_fill.fill_plan(private.endpoint, images, parallel=2, retries=1)
        script = step_script(registry_fill.fill_step(plan, (private.cert_dir / "ca.crt").read_text()))
        auth = registry_fill.auth_file(private.endpoint, private.user, private.password)
        result = subprocess.run(["bash", "-c", script], input=stub_commands.secret_line(auth), capture_output=True,
                                env={"PATH": SYSTEM_PATH, "HOME": str(work),
                                     "CONTAINERS_REGISTRIES_CONF": str(work / "registries.conf")},
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        yield private, json.loads(result.stdout)["images"]


def lay_out(tmp_path: Path, private: PrivateRegistry, lock: list, data_volume: Path) -> subprocess.CompletedProcess:
    """The Harbor host's databases step, as rendered, run by bash on this machine."""
    spec = render.HarborSpec(**{**SPEC.__dict__, "data_volume": str(data_volume), "trivy_db": render.TrivyDbSource(
        registry=private.endpoint, databases=TRIVY.databases)})
    body = render.trivy_db_body(spec, (private.cert_dir / "ca.crt").read_text(), locked_digests(lock, DB_REFS))
    body = body.replace(render.CONFIG_DIR, str(tmp_path / "etc"))
    auth = registry_fill.auth_file(private.endpoint, private.user, private.password)
    return subprocess.run(["bash", "-c", step_script(body)], input=stub_commands.secret_line(auth),
                          env={"PATH": SYSTEM_PATH}, capture_output=True, text=True, timeout=120)


def test_the_databases_are_laid_out_where_the_adapter_reads_them_with_their_digests(tmp_path, filled):
    private, lock = filled
    data_volume = tmp_path / "data"
    result = lay_out(tmp_path, private, lock, data_volume)
    assert result.returncode == 0, result.stderr
    reports = {json.loads(line)["target"]: json.loads(line) for line in result.stdout.splitlines()}
    cache = Path(render.HarborSpec(**{**SPEC.__dict__, "data_volume": str(data_volume)}).trivy_cache_dir)
    uid = int(render.SCANNER_OWNER.split(":")[0])
    for ref, database in zip(DB_REFS, TRIVY.databases, strict=True):
        manifest, layer, files = shipped(ref)
        assert next(entry["digest"] for entry in lock if entry["source"] == str(ref)) == manifest
        target = cache / database.directory
        assert sorted(p.name for p in target.iterdir()) == sorted([*database.files, ".airgap-trivy-db.json"])
        for name, digest in files.items():
            path = target / name
            assert "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest() == digest
            assert (path.stat().st_uid, path.stat().st_gid, path.stat().st_mode & 0o777) == (uid, uid, 0o644)
        assert (target.stat().st_uid, target.stat().st_mode & 0o777) == (uid, 0o755)
        assert json.loads((target / "metadata.json").read_text())["Version"] == database.schema
        record = json.loads((target / ".airgap-trivy-db.json").read_text())
        assert record == {"target": str(target), "manifest": manifest, "layer": layer, "files": files}
        assert reports[str(target)] == {**record, "changed": True}
    leftovers = [p.name for p in cache.iterdir() if p.name.startswith(".")]
    assert not leftovers, "no staging directory is left behind"

    db = cache / "db" / "trivy.db"
    inode = db.stat().st_ino
    again = lay_out(tmp_path, private, lock, data_volume)
    assert again.returncode == 0, again.stderr
    assert [json.loads(line)["changed"] for line in again.stdout.splitlines()] == [False, False]
    assert db.stat().st_ino == inode, "an unchanged database is left as it is"

    db.write_bytes(b"damaged")
    repaired = lay_out(tmp_path, private, lock, data_volume)
    assert repaired.returncode == 0, repaired.stderr
    assert [json.loads(line)["changed"] for line in repaired.stdout.splitlines()] == [True, False]
    assert "sha256:" + hashlib.sha256(db.read_bytes()).hexdigest() == shipped(DB_REFS[0])[2]["trivy.db"]


def test_a_blob_that_does_not_hash_to_its_digest_is_refused(tmp_path, filled):
    private, lock = filled
    data_volume = tmp_path / "data"
    assert lay_out(tmp_path, private, lock, data_volume).returncode == 0
    db = Path(render.HarborSpec(**{**SPEC.__dict__, "data_volume": str(data_volume)}).trivy_cache_dir) / "db"
    (db / "trivy.db").write_bytes(b"damaged")  # so that the next run fetches the layer again
    layer = shipped(DB_REFS[0])[1].split(":")[1]
    stored = private.storage / "docker/registry/v2/blobs/sha256" / layer[:2] / layer / "data"
    original = stored.read_bytes()
    try:
        stored.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))  # what a bad disk would serve
        result = lay_out(tmp_path, private, lock, data_volume)
    finally:
        stored.write_bytes(original)
    assert result.returncode != 0 and f"blob sha256:{layer} arrived as sha256:" in result.stderr
    assert (db / "trivy.db").read_bytes() == b"damaged", "the directory in place is not touched"
    assert not [p.name for p in db.parent.iterdir() if p.name.startswith(".")]


def test_a_digest_the_registry_lacks_is_refused(tmp_path, filled):
    private, lock = filled
    wrong = [dict(entry, digest="sha256:" + "0" * 64) if entry["source"] == str(DB_REFS[0]) else entry
             for entry in lock]
    result = lay_out(tmp_path, private, wrong, tmp_path / "data")
    assert result.returncode != 0 and "the registry answered 404" in result.stderr
    assert not (tmp_path / "data/trivy-adapter/trivy/db").exists()


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
    assert is_secret(install.inputs["stdin"])
    assert f"airgap_harbor_install {render.CONFIG_DIR}/harbor.yml {render.INSTALL_ROOT}/v2.12.2 --with-trivy " \
        in install.inputs["create"]
    harbor_yml = yaml.safe_load(base64.b64decode(reveal(install.inputs["stdin"]).splitlines()[1]))
    assert harbor_yml["storage_service"] == {"ca_bundle": render.REGISTRY_CA}
    assert run.exports["registryCaBundle"].strip() in install.inputs["create"], "the registry's CA, for prepare"
    assert run.named("harbor-installer").type == "command:remote:CopyToRemote"
    api = run.named("harbor-api")
    assert install.urn in api.dependencies
    for project in ("library", "docker.io", "quay.io", "registry.k8s.io", "gcr.io", "ghcr.io"):
        assert f"project_name={project}" in api.inputs["create"]
    fill = run.named("harbor-fill")
    assert api.urn in fill.dependencies and '"endpoint": "127.0.0.11:8443"' in fill.inputs["create"]
    plain = str([plain_parts(r.inputs) for r in run.records])
    for secret in ("admin pass'", "Robot$ecret1", "postgres://mm:pw@db",
                   config.values["airgap-infra:secrets"]["registryPassword"]):
        assert secret not in plain


def test_the_databases_step_reads_the_registry_trivy_db_filled(harbor_stack):
    config, run = harbor_stack
    step = run.named("harbor-trivy-db")
    assert {run.named("harbor-install").urn, run.named("registry-fill").urn} <= set(step.dependencies)
    auth = json.loads(base64.b64decode(reveal(step.inputs["stdin"]).strip()))
    password = config.values["airgap-infra:secrets"]["registryPassword"]
    assert auth == {"auths": {"127.0.0.11:5443": {"auth": base64.b64encode(f"airgap:{password}".encode()).decode()}}}
    create = step.inputs["create"]
    for database in TRIVY.databases:
        assert f"--repository {database.repository} --reference {database.reference} " in create
        assert f"--target /data/harbor/trivy-adapter/trivy/{database.directory} --owner 10000:10000 " in create
    assert "--endpoint 127.0.0.11:5443 --ca /etc/airgap/harbor/registry-ca.crt" in create


def test_without_the_scanner_no_databases_are_needed(tmp_path):
    archive = installer_archive(tmp_path)
    config = copy.deepcopy(load_stack("sandbox"))
    values = config.values
    values["airgap-infra:secrets"].update(harborAdminPassword="a", harborDatabasePassword="b", harborRobotSecret="c")
    values["airgap-infra:harbor"] = {"host": "registry", "installer": str(archive), "port": 8443, "scanner": False,
                                     "installerSha256": hashlib.sha256(archive.read_bytes()).hexdigest()}
    values["airgap-infra:adminFileRoots"] = [str(tmp_path)]
    run = run_program(config).raise_error()
    assert "harbor-trivy-db" not in {r.name for r in run.records}
    install = run.named("harbor-install")
    assert f"{render.INSTALL_ROOT}/v2.12.2 '' {render.CONFIG_DIR}/server.crt" in install.inputs["create"]
    assert "storage_service" not in yaml.safe_load(base64.b64decode(reveal(install.inputs["stdin"]).splitlines()[1]))


def test_workloads_pull_from_harbor_with_the_robot(harbor_stack):
    config, run = harbor_stack
    secret = next(r for r in run.records if r.name == "mattermost-pull-secret")
    document = reveal(secret.inputs["data"])[".dockerconfigjson"]
    auths = __import__("json").loads(base64.b64decode(document))["auths"]
    assert auths == {"127.0.0.11:8443": {"username": "robot$airgap-pull", "password": "Robot$ecret1",
                                         "auth": base64.b64encode(b"robot$airgap-pull:Robot$ecret1").decode()}}
    assert run.exports["mattermost"]["image"].startswith("127.0.0.11:8443/docker.io/mattermost/")
