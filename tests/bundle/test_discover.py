"""python -m bundle discover against the real public manifests and charts of our targets
(tests/data/discover, SOURCES.txt names each file's repository and commit), and bad input refused
with the file named and nothing written."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from bundle import discover, discover_charts
from bundle.manifest import BundleError
from tests.bundle.conftest import ROOT, bundle_cli

DATA = ROOT / "tests" / "data" / "discover"
MANIFESTS = DATA / "manifests"
CHARTS = DATA / "charts"

# What a reader finds by hand in the rendered manifests (every `image:` line, the operator's
# --prometheus-config-reloader flag, and the images the custom resources make the operators run).
KUBE_PROMETHEUS = {
    "docker.io/grafana/grafana:13.1.3",
    "ghcr.io/jimmidyson/configmap-reload:v0.15.0",
    "quay.io/brancz/kube-rbac-proxy:v0.22.1",
    "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1",
    "quay.io/prometheus-operator/prometheus-operator:v0.93.1",
    "quay.io/prometheus/alertmanager:v0.33.1",
    "quay.io/prometheus/blackbox-exporter:v0.28.0",
    "quay.io/prometheus/node-exporter:v1.12.1",
    "quay.io/prometheus/prometheus:v3.13.2",
    "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.19.1",
    "registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0",
}
INGRESS_NGINX = {
    "registry.k8s.io/ingress-nginx/controller:v1.15.1"
    "@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1",
    "registry.k8s.io/ingress-nginx/kube-webhook-certgen:v1.6.9"
    "@sha256:01038e7de14b78d702d2849c3aad72fd25903c4765af63cf16aa3398f5d5f2dd",
}
MATTERMOST_OPERATOR = {
    "docker.io/mattermost/mattermost-operator:latest",             # the operator's Deployment
    "docker.io/mattermost/mattermost-enterprise-edition:5.28.0",   # mattermost_full.yaml: image + version
    "docker.io/mattermost/mattermost-enterprise-edition:10.8.1",   # the sample: the operator's defaults
    "docker.io/library/postgres:13",                               # readiness check, external mode
    "docker.io/appropriate/curl:latest",
}


def found(*sources: str | Path, **options) -> dict[str, discover.Found]:
    result = discover.discover(discover.Sources(paths=[str(source) for source in sources], **options))
    return {entry.text: entry for entry in result.images}


def package(chart_dir: Path, target: Path, *, subcharts: tuple[Path, ...] = (), values: dict | None = None) -> Path:
    """A chart archive as `helm package` writes it (after `helm dependency build` for subcharts)."""
    name = yaml.safe_load((chart_dir / "Chart.yaml").read_text())["name"]
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(chart_dir.rglob("*")):
            if path.is_file():
                relative = path.relative_to(chart_dir).as_posix()
                if values is not None and relative == "values.yaml":
                    data = yaml.safe_dump(values).encode()
                    info = tarfile.TarInfo(f"{name}/values.yaml")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
                else:
                    archive.add(path, f"{name}/{relative}")
        for sub in subcharts:
            archive.add(sub, f"{name}/charts/{sub.name}")
    return target


def test_rendered_manifests_of_every_target_are_found_with_their_origins():
    images = found(MANIFESTS)
    assert set(images) == KUBE_PROMETHEUS | INGRESS_NGINX | MATTERMOST_OPERATOR
    reloader = images["quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1"].origins
    assert [(o.where.split("manifests/")[1], o.rule) for o in reloader] == [
        ("kube-prometheus/prometheusOperator-deployment.yaml:Deployment/monitoring/prometheus-operator:"
         "prometheus-operator", "container.args --prometheus-config-reloader")]
    certgen = images[sorted(INGRESS_NGINX)[1]].origins
    assert {o.where.rsplit("deploy.yaml:", 1)[1] for o in certgen} == {
        "Job/ingress-nginx/ingress-nginx-admission-create:create",
        "Job/ingress-nginx/ingress-nginx-admission-patch:patch"}
    prometheus = images["quay.io/prometheus/prometheus:v3.13.2"].origins[0]
    assert prometheus.where.endswith("prometheus-prometheus.yaml:Prometheus/monitoring/k8s")
    assert prometheus.rule == "rule Prometheus: spec.image"
    postgres = images["docker.io/library/postgres:13"].origins
    assert all("readinessCheck.mode: builtin" in o.note for o in postgres)
    assert all(entry.pinned for entry in images.values())


def test_values_that_merely_look_like_images_are_not_reported(tmp_path):
    # kube-prometheus's ClusterRoleBindings are in MANIFESTS too: nothing came from them above.
    assert not any("clusterRoleBinding" in o.where for e in found(MANIFESTS).values() for o in e.origins)
    (tmp_path / "binding.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "nginx:1.25"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "nginx:1.25"},
         "subjects": [{"kind": "ServiceAccount", "name": "redis:7", "namespace": "x"}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"image": "busybox:1.36"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {
            "containers": [{"name": "c", "image": "busybox:1.36",
                            "args": ["--image-pull-policy=Always", "--log-image=true", "--helper-image=quay.io/x/y:1"],
                            "env": [{"name": "SIDECAR_IMAGE", "value": "ghcr.io/a/b:2"},
                                    {"name": "IMAGE_NAME", "value": "not/an:image"}]}]}}}},
    ]))
    assert set(found(tmp_path)) == {"docker.io/library/busybox:1.36", "quay.io/x/y:1", "ghcr.io/a/b:2"}


def test_list_kinds_and_api_lists_without_item_kinds(tmp_path):
    # kubectl's `List` (items with kinds) and the API's `PodList` (items without) from recorded bodies.
    kuard = json.loads((DATA / "cluster" / "kuard-pods-list.json").read_text())
    recorded = json.loads((DATA / "cluster" / "nginx-deployment-pods-list.json").read_text())["items"]
    pods = {"items": [item for item in recorded if item["kind"] == "Pod"]}
    api_list = {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                "items": [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in pods["items"]]}
    (tmp_path / "kuard.json").write_text(json.dumps(kuard))
    # The recorded list's Deployment and ReplicaSet (with their kinds) carry the same template.
    nested = {"apiVersion": "v1", "kind": "List", "items": [api_list, *(i for i in recorded if i["kind"] != "Pod")]}
    images = discover.discover(discover.Sources(paths=[str(tmp_path / "kuard.json"), "-"],
                                                stdin=lambda: yaml.safe_dump(nested))).images
    by_ref = {entry.text: entry for entry in images}
    assert set(by_ref) == {"gcr.io/kuar-demo/kuard-amd64:1", "docker.io/library/nginx:1.14.2"}
    assert {o.where for o in by_ref["docker.io/library/nginx:1.14.2"].origins} == {
        f"-:Pod/default/{item['metadata']['name']}:nginx" for item in pods["items"]} | {
        "-:Deployment/default/nginx-deployment:nginx", "-:ReplicaSet/default/nginx-deployment-9456bbbf9:nginx"}


def test_the_mattermost_operator_needs_no_probe_images_in_builtin_mode(tmp_path):
    documents = list(yaml.safe_load_all((MANIFESTS / "mattermost-operator" / "mattermost_full.yaml").read_text()))
    resource = next(document for document in documents if document and document["kind"] == "Mattermost")
    resource["spec"].setdefault("database", {})["readinessCheck"] = {"mode": "builtin"}
    (tmp_path / "mm.yaml").write_text(yaml.safe_dump(resource))
    assert set(found(tmp_path)) == {"docker.io/mattermost/mattermost-enterprise-edition:5.28.0"}


def test_user_rules_read_custom_resources(tmp_path):
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"kind": "Redis", "group": "cache.example.com", "images": [
            {"image": "spec.image", "tag": "spec.version"},
            {"image": "spec.exporter.repository", "tag": "spec.exporter.tag", "when": ["spec.exporter.enabled"]}],
         "containers": ["spec.sidecars"]}]}))
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "redis.yaml").write_text(yaml.safe_dump({
        "apiVersion": "cache.example.com/v1", "kind": "Redis", "metadata": {"name": "r", "namespace": "n"},
        "spec": {"image": "redis", "version": "7.2.4", "exporter": {"enabled": True, "repository":
                 "oliver006/redis_exporter", "tag": "v1.58.0"}, "sidecars": [{"name": "s", "image": "busybox:1.36"}]}}))
    images = found(tmp_path / "manifests", rule_files=[tmp_path / "rules.yaml"])
    assert set(images) == {"docker.io/library/redis:7.2.4", "docker.io/oliver006/redis_exporter:v1.58.0",
                           "docker.io/library/busybox:1.36"}
    assert images["docker.io/library/redis:7.2.4"].origins[0].rule == \
        f"rule Redis ({tmp_path / 'rules.yaml'}): spec.image+spec.version"
    (tmp_path / "bad-rules.yaml").write_text("rules:\n- kind: Redis\n  images:\n  - tag: spec.version\n")
    with pytest.raises(BundleError, match=r"bad-rules.yaml: rules\[1\].images\[1\]: give `image`"):
        found(tmp_path / "manifests", rule_files=[tmp_path / "bad-rules.yaml"])


# --- charts -------------------------------------------------------------------------------

def test_chart_archives_with_bundled_subcharts(tmp_path):
    subcharts = (package(CHARTS / "kube-state-metrics", tmp_path / "kube-state-metrics-8.4.0.tgz"),
                 package(CHARTS / "prometheus-node-exporter", tmp_path / "prometheus-node-exporter-4.56.1.tgz"))
    archive = package(CHARTS / "kube-prometheus-stack", tmp_path / "kube-prometheus-stack-88.5.3.tgz",
                      subcharts=subcharts)
    result = discover.discover(discover.Sources(paths=[str(archive)]))
    images = {entry.text: entry for entry in result.images}
    assert {text for text, entry in images.items() if entry.pinned} == {
        "docker.io/library/busybox:latest",
        "ghcr.io/jkroepke/kube-webhook-certgen:1.8.7",
        "quay.io/prometheus-operator/admission-webhook:v0.93.1",
        "quay.io/prometheus-operator/prometheus-config-reloader:v0.93.1",
        "quay.io/prometheus-operator/prometheus-operator:v0.93.1",
        "quay.io/prometheus/alertmanager:v0.34.0",
        "quay.io/prometheus/prometheus:v3.14.0-distroless",
        "quay.io/thanos/thanos:v0.42.4",
        # from the subchart archives below charts/, the tag printed as "v" + appVersion
        "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0",
        "quay.io/brancz/kube-rbac-proxy:v0.22.1",
        "quay.io/prometheus/node-exporter:v1.12.1",
        "quay.io/prometheus/busybox:latest",
    }
    assert [text for text, entry in images.items() if not entry.pinned] == ["registry.k8s.io/kubectl"]
    operator = images["quay.io/prometheus-operator/prometheus-operator:v0.93.1"].origins[0]
    assert operator.where == f"{archive}:prometheusOperator.image"
    assert operator.rule == "values image map + appVersion (the templates' default tag)"
    ksm = images["registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.20.0"].origins[0]
    assert ksm.where == f"{archive}/charts/kube-state-metrics-8.4.0.tgz:image"
    assert any("helm template" in note for note in result.notes)


def test_chart_shapes_of_cert_manager_ingress_nginx_and_mattermost(tmp_path):
    images = found(*(package(CHARTS / name, tmp_path / f"{name}.tgz") for name in (
        "cert-manager", "ingress-nginx", "mattermost-team-edition", "mattermost-operator")),
        CHARTS / "mattermost-enterprise-edition")
    rules = {text: {o.rule for o in entry.origins} for text, entry in images.items()}
    # cert-manager: imageRegistry + imageNamespace + name, the tag from appVersion (v0.0.0 in git;
    # the release tool sets it), the solver image passed as a flag by the template.
    for component in ("controller", "webhook", "cainjector", "acmesolver", "startupapicheck"):
        assert rules[f"quay.io/jetstack/cert-manager-{component}:v0.0.0"] == {
            "values image name + imageRegistry/imageNamespace + appVersion (the templates' default tag)"}
    # ingress-nginx: registry from global.image.registry, `image` + tag + digest
    for ref in INGRESS_NGINX:
        assert rules[ref] == {"values image map (image + tag) + global.image.registry"}
    assert "registry.k8s.io/defaultbackend-amd64:1.5" in images
    # Mattermost: a tag carrying its digest, the init image, bundled subchart directories
    assert ("docker.io/mattermost/mattermost-team-edition:11.6.1"
            "@sha256:425b1e065a3433f4a7b10d8091fe83b3459c008647cc1e3c3707974832d2ef30") in images
    assert "docker.io/mattermost/mattermost-operator:v1.25.4" in images
    assert "quay.io/pires/docker-elasticsearch-kubernetes:5.5.0" in images
    assert rules["docker.io/grafana/grafana:latest"] == {"values image string"}
    assert rules["docker.io/bats/bats:v1.1.0"] == {"template literal image"}
    curl = {o.where.split("/")[-1] for o in images["docker.io/appropriate/curl:latest"].origins}
    assert curl == {"mattermost-team-edition.tgz:initContainerImage",
                    "mattermost-enterprise-edition:initContainerImage", "mattermost-grafana:server.setDatasource.image"}


def test_global_image_registry_overrides_every_registry(tmp_path):
    values = yaml.safe_load((CHARTS / "kube-prometheus-stack" / "values.yaml").read_text())
    values["global"]["imageRegistry"] = "mirror.corp:5000"
    archive = package(CHARTS / "kube-prometheus-stack", tmp_path / "kps.tgz", values=values)
    images = found(archive)
    assert images and all(text.startswith("mirror.corp:5000/") for text in images)
    assert "mirror.corp:5000/prometheus/prometheus:v3.14.0-distroless" in images


def test_kustomize_overrides_and_compose(tmp_path):
    operator = found(DATA / "kustomize" / "mattermost-operator")
    assert list(operator) == ["docker.io/mattermost/mattermost-operator:latest"]
    assert operator["docker.io/mattermost/mattermost-operator:latest"].origins[0].rule == \
        "container.image + kustomize images[mattermost-operator]"
    assert set(found(DATA / "kustomize" / "ingress-nginx")) == INGRESS_NGINX

    compose = DATA / "compose" / "mattermost"
    images = found(compose / "docker-compose.yml", compose / "docker-compose.nginx.yml",
                   compose_env=[compose / "env.example"])
    assert set(images) == {"docker.io/library/postgres:13-alpine", "docker.io/library/nginx:alpine",
                           "docker.io/mattermost/mattermost-enterprise-edition:10.5.2"}
    result = discover.discover(discover.Sources(paths=[str(compose / "docker-compose.yml")]))
    assert not result.images and any("--compose-env" in note for note in result.notes)


def test_one_entry_per_normalised_reference():
    hits = [discover.Hit("nginx:1.25", "a.yaml:Pod/x/y:c", "container.image"),
            discover.Hit("docker.io/library/nginx:1.25", "b.yaml:Pod/x/z:c", "container.image"),
            discover.Hit("index.docker.io/library/nginx:1.25", "b.yaml:Pod/x/z:c", "container.image"),
            discover.Hit("quay.io/x/y", "c.yaml:Pod/x/w:c", "container.image"),
            discover.Hit("Not A Ref", "d.yaml:Pod/x/v:c", "container.image")]
    images = discover.normalise(hits)
    assert [entry.text for entry in images] == ["docker.io/library/nginx:1.25", "quay.io/x/y", "Not A Ref"]
    assert [o.where for o in images[0].origins] == ["a.yaml:Pod/x/y:c", "b.yaml:Pod/x/z:c"]
    assert not images[1].pinned and images[2].problem


# --- outputs ------------------------------------------------------------------------------

def test_outputs_images_file_stack_snippet_and_against(tmp_path):
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(yaml.safe_dump({"config": {"airgap-infra:images": [
        "quay.io/prometheus/prometheus:v3.13.2", "docker.io/library/redis:7.2.4", sorted(INGRESS_NGINX)[0]]}}))
    result = bundle_cli("discover", MANIFESTS / "ingress-nginx", MANIFESTS / "kube-prometheus",
                        "--images-file", tmp_path / "images.txt", "--stack-snippet", tmp_path / "snippet.yaml",
                        "--against", stack)
    assert result.returncode == 0, result.stderr
    refs = sorted(KUBE_PROMETHEUS | INGRESS_NGINX)
    from bundle.images import read_images_file
    assert read_images_file(tmp_path / "images.txt") == refs
    assert yaml.safe_load((tmp_path / "snippet.yaml").read_text()) == {"airgap-infra:images": refs}
    comparison = result.stdout[result.stdout.index(f"{stack}: "):]
    assert f"{stack}: lacks {len(refs) - 2}, carries 1 that nothing uses" in comparison
    assert "  unused  docker.io/library/redis:7.2.4" in comparison
    assert "  lacks   docker.io/grafana/grafana:13.1.3  (found at " in comparison


# --- bad input ----------------------------------------------------------------------------

def _refused(tmp_path: Path, *sources: object, named: str, says: str) -> None:
    out = tmp_path / "out.txt"
    result = bundle_cli("discover", *sources, "--images-file", out, "--stack-snippet", tmp_path / "snippet.yaml")
    assert result.returncode == 1, result.stdout
    assert named in result.stderr and says in result.stderr, result.stderr
    assert not out.exists() and not (tmp_path / "snippet.yaml").exists(), "nothing is written"


def test_a_broken_document_is_refused_with_its_file_and_line(tmp_path):
    good = shutil.copy(MANIFESTS / "ingress-nginx" / "deploy.yaml", tmp_path / "good.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Pod\n---\nmetadata:\n  name: [unclosed\n")
    _refused(tmp_path, good, broken, named=str(broken), says="not valid YAML at line 6")


def test_a_100_mb_file_is_refused(tmp_path):
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(100 * 1024 * 1024)
    _refused(tmp_path, huge, named=str(huge), says="more than the 64 MiB a manifest may have")


def _archive_with(tmp_path: Path, add) -> Path:
    target = tmp_path / "evil-1.0.0.tgz"
    with tarfile.open(target, "w:gz") as archive:
        for name, data in (("evil/Chart.yaml", b"apiVersion: v2\nname: evil\nversion: 1.0.0\n"),
                           ("evil/values.yaml", b"image: {repository: busybox, tag: '1.36'}\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        add(archive)
    return target


def test_chart_archives_that_climb_or_link_out_are_refused(tmp_path):
    def climbing(archive):
        info = tarfile.TarInfo("evil/../../etc/cron.d/x")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))

    def linking(archive):
        info = tarfile.TarInfo("evil/templates/secret.yaml")
        info.type, info.linkname = tarfile.SYMTYPE, "../../../../etc/shadow"
        archive.addfile(info)

    def hard_linking(archive):
        info = tarfile.TarInfo("evil/templates/passwd")
        info.type, info.linkname = tarfile.LNKTYPE, "/etc/passwd"
        archive.addfile(info)

    for add, says in ((climbing, "climbs out of the archive with '..'"), (linking, "links out of the archive"),
                      (hard_linking, "links out of the archive")):
        archive = _archive_with(tmp_path, add)
        _refused(tmp_path, archive, named=f"{archive}: member evil/", says=says)
        archive.unlink()
    inside = _archive_with(tmp_path, lambda archive: None)
    assert set(found(inside)) == {"docker.io/library/busybox:1.36"}


def test_chart_directories_and_folders_that_link_out_are_refused(tmp_path):
    chart = shutil.copytree(CHARTS / "mattermost-operator", tmp_path / "chart")
    (chart / "templates" / "leak.yaml").symlink_to("/etc/passwd")
    _refused(tmp_path, chart, named=str(chart / "templates" / "leak.yaml"), says="links out of the chart")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "outside.yaml").symlink_to(MANIFESTS / "ingress-nginx" / "deploy.yaml")
    _refused(tmp_path, folder, named=str(folder / "outside.yaml"), says="links out of")


def test_damaged_archives_and_missing_files_name_the_file(tmp_path):
    damaged = tmp_path / "damaged.tgz"
    damaged.write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    _refused(tmp_path, damaged, named=str(damaged), says="not a chart archive")
    _refused(tmp_path, tmp_path / "absent.yaml", named=str(tmp_path / "absent.yaml"), says="no such file")
    with pytest.raises(BundleError, match="one top directory with a Chart.yaml"):
        discover_charts.load_archive(_tar({"a/values.yaml": b"{}", "b/Chart.yaml": b"name: b"}), "two.tgz")


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_ck8s_artifacts_from_a_config_directory(tmp_path):
    config = shutil.copytree(ROOT / "tests" / "data" / "ck8s" / "config", tmp_path / "ck8s")
    sc = yaml.safe_load((config / "sc-config.yaml").read_text())
    sc["opensearch"]["plugins"]["additionalPlugins"] = ["https://files.internal:8445/opensearch/repository-s3-2.19.1.zip"]
    (config / "sc-config.yaml").write_text(yaml.safe_dump(sc))
    result = bundle_cli("discover", "--ck8s-config", config, "--artifacts-file", tmp_path / "artifacts.txt")
    assert result.returncode == 0, result.stderr
    listed = [line.split() for line in (tmp_path / "artifacts.txt").read_text().splitlines()
              if not line.startswith("#")]
    common = yaml.safe_load((config / "common-config.yaml").read_text())
    rules_version = common["falco"]["rulesFiles"]["default"]["version"]
    assert listed == [
        [f"falco/falco-rules-{rules_version}", f"oci://ghcr.io/falcosecurity/rules/falco-rules:{rules_version}"],
        ["opensearch/repository-s3-2.19.1.zip", "https://files.internal:8445/opensearch/repository-s3-2.19.1.zip"],
        ["trivy/trivy-db-2", "oci://ghcr.io/aquasecurity/trivy-db:2"],
        ["trivy/trivy-java-db-1", "oci://ghcr.io/aquasecurity/trivy-java-db:1"],
    ]
    assert "installExternalObjectStoragePlugin is true" in result.stdout


def test_the_inside_commands_still_need_no_pyyaml(tmp_path):
    """discover is registered with the other commands, yet verify or inventory never import PyYAML."""
    import subprocess
    import sys

    probe = ("import sys; sys.modules['yaml'] = None\n"
             "from bundle.__main__ import main\n"
             f"sys.exit(main(['inventory', {str(tmp_path / 'MANIFEST.json')!r}]))\n")
    (tmp_path / "MANIFEST.json").write_text("{}")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "yaml" not in result.stderr.lower(), result.stderr
    assert result.returncode in (0, 1), result.stderr
