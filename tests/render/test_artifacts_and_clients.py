"""File server, registry clients and Compliant Kubernetes overrides: renderers as tables, then
the text through real tools (bash, containerd's own config loading) and real runs against a
scratch directory."""

import hashlib
import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from components.images import registry_prefix
from components.render import ck8s, file_server, registry_clients
from components.render.shell import step_script

from . import stub_commands

DATA = Path(__file__).resolve().parents[1] / "data"


def run_step(body: str) -> subprocess.CompletedProcess:
    script = step_script(body)
    subprocess.run(["bash", "-n", "-c", script], check=True)
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- file server ----------------------------------------------------------------------------

def test_sha256sums_table():
    artifacts = [file_server.Artifact("b/two", "2" * 64), file_server.Artifact("a/one", "1" * 64)]
    assert file_server.sha256sums(artifacts) == f"{'1' * 64}  a/one\n{'2' * 64}  b/two\n"


def test_artifacts_arrive_verified_and_a_mismatch_keeps_the_old_file(tmp_path):
    root = tmp_path / "files"
    staged = root / file_server.STAGING
    staged.mkdir(parents=True)
    good, new = b"rules v1\n", b"rules v2\n"
    (staged / sha(good)).write_bytes(good)
    first = run_step(file_server.install_body(str(root), [file_server.Artifact("falco/rules.yaml", sha(good),
                                                                              staged=True)]))
    assert first.returncode == 0, first.stderr
    assert (root / "falco/rules.yaml").read_bytes() == good
    assert (root / "SHA256SUMS").read_text() == f"{sha(good)}  falco/rules.yaml\n"

    # the new content arrives under a name that claims another checksum: refused, old file stays
    (staged / ("f" * 64)).write_bytes(new)
    bad = run_step(file_server.install_body(str(root), [file_server.Artifact("falco/rules.yaml", "f" * 64,
                                                                            staged=True)]))
    assert bad.returncode != 0
    assert "arrived with sha256" in bad.stderr and "previous file stays served" in bad.stderr
    assert (root / "falco/rules.yaml").read_bytes() == good
    assert not list((root / "falco").glob(".airgap-incoming.*"))


@pytest.mark.parametrize("path", ["a b/c", "x;touch /tmp/pwned", "$(id)/x"])
def test_hostile_artifact_paths_are_data(tmp_path, path):
    root = tmp_path / "files"
    (root / file_server.STAGING).mkdir(parents=True)
    data = b"x\n"
    (root / file_server.STAGING / sha(data)).write_bytes(data)
    result = run_step(file_server.install_body(str(root), [file_server.Artifact(path, sha(data), staged=True)]))
    assert result.returncode == 0, result.stderr
    assert (root / path).read_bytes() == data
    assert not Path("/tmp/pwned").exists()



def test_an_artifact_the_stack_no_longer_lists_stops_being_served(tmp_path):
    """What the previous index served and the stack no longer lists goes, with the folders it
    leaves empty; files the index never listed stay (they are not the stack's)."""
    root = tmp_path / "files"
    (root / file_server.STAGING).mkdir(parents=True)
    contents = {"falco/rules.yaml": b"rules\n", "opensearch/plugins/s3.zip": b"zip\n", "keys/a b.asc": b"key\n"}
    for data in contents.values():
        (root / file_server.STAGING / sha(data)).write_bytes(data)
    every = [file_server.Artifact(path, sha(data), staged=True) for path, data in contents.items()]
    assert run_step(file_server.install_body(str(root), every)).returncode == 0
    (root / "opensearch/README").write_text("put here by hand\n")
    kept = [a for a in every if a.path == "falco/rules.yaml"]
    result = run_step(file_server.install_body(str(root), kept))
    assert result.returncode == 0, result.stderr
    served = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.startswith("."))
    assert served == ["SHA256SUMS", "falco", "falco/rules.yaml", "opensearch", "opensearch/README"]
    assert (root / "SHA256SUMS").read_text() == f"{sha(contents['falco/rules.yaml'])}  falco/rules.yaml\n"
    assert run_step(file_server.install_body(str(root), [])).returncode == 0
    assert not (root / "falco").exists(), "the last artifact goes too"


# --- registry clients -------------------------------------------------------------------------

@pytest.mark.parametrize("upstream", ["docker.io", "registry.k8s.io", "quay.io"])
def test_hosts_toml_table(upstream):
    text = registry_clients.hosts_toml(upstream, "registry.internal:5443", "/etc/containerd/certs.d/ca.crt",
                                       registry_prefix(upstream))
    config = tomllib.loads(text)
    assert config["server"] == "https://registry.internal:5443", "a failed pull never falls back to the internet"
    host = config["host"][f"https://registry.internal:5443/v2/{upstream}"]
    assert host == {"capabilities": ["pull", "resolve"], "ca": "/etc/containerd/certs.d/ca.crt", "override_path": True}


def _merge(tmp_path, existing, insecure):
    path = tmp_path / "daemon.json"
    if existing is not None:
        path.write_text(json.dumps(existing))
    body = registry_clients.docker_lines("reg:5443", "CA\n", insecure=insecure, daemon_json=str(path))
    body = body.replace("/etc/docker/certs.d", str(tmp_path / "certs.d"))
    result = run_step(body)
    assert result.returncode == 0, result.stderr
    return json.loads(path.read_text())


def test_daemon_json_is_merged_not_overwritten(tmp_path):
    user = {"log-driver": "journald", "insecure-registries": ["other:5000"], "data-root": "/srv/docker"}
    merged = _merge(tmp_path, user, insecure=False)
    assert merged == user, "keys the stack does not own are kept"
    assert (tmp_path / "certs.d/reg:5443/ca.crt").read_text() == "CA\n"
    allowed = _merge(tmp_path, {}, insecure=True)
    assert allowed["insecure-registries"] == ["reg:5443"]
    assert "insecure-registries" not in _merge(tmp_path, None, insecure=False), "removed when no longer allowed"


def test_containerd_loads_the_rendered_config(tmp_path):
    """containerd itself parses config.toml with the drop-in the lines add, and sees config_path."""
    etc = tmp_path / "etc/containerd"
    etc.mkdir(parents=True)
    (etc / "config.toml").write_text('version = 2\nroot = "/var/lib/containerd"\n')
    body = registry_clients.containerd_lines("reg:5443", "CA\n", ("docker.io",), prefix_of=registry_prefix)
    for _ in range(2):  # the second run changes nothing
        result = run_step(body.replace("/etc/containerd", str(etc)))
        assert result.returncode == 0, result.stderr
    text = (etc / "config.toml").read_text()
    assert text.count("conf.d/*.toml") == 1 and text.startswith("imports = ")
    dumped = subprocess.run(["containerd", "--config", str(etc / "config.toml"), "config", "dump"],
                            capture_output=True, text=True, check=True).stdout
    assert re.search(r'config_path = ".*/etc/containerd/certs.d"', dumped)
    assert tomllib.loads((etc / "certs.d/docker.io/hosts.toml").read_text())["server"] == "https://reg:5443"



def _node(tmp_path: Path, body: str) -> None:
    """Run registry client lines against a scratch node: its /etc/docker, /etc/containerd and the
    endpoint record under `tmp_path` (systemctl says no runtime is running)."""
    for real, scratch in (("/etc/docker", "docker"), ("/etc/containerd", "containerd"),
                          ("/var/lib/airgap/registry-clients", "state")):
        body = body.replace(real, str(tmp_path / scratch))
    result, _ = stub_commands.run(tmp_path, body, {"systemctl": "exit 3"})
    assert result.returncode == 0, result.stderr


def _files(tmp_path: Path) -> list[str]:
    files = (str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    return sorted(path for path in files if not path.startswith("stub"))


def test_every_apply_converges_the_registry_clients_of_a_node(tmp_path):
    """A runtime turned off loses what was written for it, the registry moving to another port
    takes the old port's entries away, and a node leaving the stack is as it was before (its own
    daemon.json keys and config.toml kept, byte for byte)."""
    own_config = 'version = 2\nroot = "/var/lib/containerd"\n'
    (tmp_path / "containerd").mkdir()
    (tmp_path / "containerd/config.toml").write_text(own_config)
    upstreams = ("docker.io", "quay.io")

    def apply(endpoint: str, *, docker: bool, containerd: bool) -> None:
        _node(tmp_path, registry_clients.client_lines(endpoint, "CA\n", upstreams, docker=docker, containerd=containerd,
                                                      insecure=False, prefix_of=registry_prefix))

    apply("reg:5443", docker=True, containerd=True)
    both = ["containerd/certs.d/docker.io/hosts.toml", "containerd/certs.d/quay.io/hosts.toml",
            "containerd/certs.d/reg:5443/ca.crt", "containerd/conf.d/airgap-registry.toml", "containerd/config.toml",
            "docker/certs.d/reg:5443/ca.crt", "docker/daemon.json", "state/endpoint"]
    assert _files(tmp_path) == both
    apply("reg:5444", docker=True, containerd=True)
    assert _files(tmp_path) == sorted(path.replace("5443", "5444") for path in both), "the old port's entries go"
    apply("reg:5444", docker=False, containerd=True)
    assert not (tmp_path / "docker/certs.d/reg:5444").exists()
    assert not (tmp_path / "docker/daemon.json").exists(), "a daemon.json holding nothing but ours goes"
    apply("reg:5444", docker=True, containerd=False)
    assert _files(tmp_path) == ["containerd/config.toml", "docker/certs.d/reg:5444/ca.crt", "docker/daemon.json",
                                "state/endpoint"]
    assert (tmp_path / "containerd/config.toml").read_text() == own_config
    (tmp_path / "docker/daemon.json").write_text('{"log-driver": "journald"}')
    _node(tmp_path, registry_clients.remove_lines("reg:5444", upstreams, docker=True, containerd=False))
    assert _files(tmp_path) == ["containerd/config.toml", "docker/daemon.json"]
    assert json.loads((tmp_path / "docker/daemon.json").read_text()) == {"log-driver": "journald"}


def test_a_config_toml_written_for_our_import_alone_goes_with_it(tmp_path):
    lines = registry_clients.client_lines("reg:5443", "CA\n", ("docker.io",), docker=False, containerd=True,
                                          insecure=False, prefix_of=registry_prefix)
    _node(tmp_path, lines)
    assert (tmp_path / "containerd/config.toml").read_text().startswith("version = 2\nimports = [")
    _node(tmp_path, registry_clients.remove_lines("reg:5443", ("docker.io",), docker=False, containerd=True))
    assert _files(tmp_path) == []
    (tmp_path / "containerd").mkdir(exist_ok=True)
    (tmp_path / "containerd/config.toml").write_text('version = 2\nimports = ["/etc/other/*.toml"]\n')
    _node(tmp_path, lines)
    _node(tmp_path, registry_clients.remove_lines("reg:5443", ("docker.io",), docker=False, containerd=True))
    assert (tmp_path / "containerd/config.toml").read_text() == 'version = 2\nimports = ["/etc/other/*.toml"]\n'


# --- Compliant Kubernetes -----------------------------------------------------------------------

def known_ck8s_keys() -> set[str]:
    keys = set()
    for line in (DATA / "ck8s_config_keys.txt").read_text().splitlines():
        if line and not line.startswith("#") and "|" in line:
            keys.add(line.split("|", 1)[0].strip())
    return keys


def covered(path: str, known: set[str]) -> bool:
    """`path` is a listed key, a free-form map entry of one, or inside an object a listed key takes whole."""
    pattern = path
    for key in known:
        regex = "^" + re.escape(key).replace("<registry>", "[^.]+") + r"(\[\].*|\..*)?$"
        if re.match(regex, pattern):
            return True
    return False


FULL = ck8s.Ck8sInputs(
    registry_endpoint="10.0.0.5:5443", registry_address="10.0.0.5",
    mirror_prefixes={"docker.io": "10.0.0.5:5443/docker.io", "quay.io": "10.0.0.5:5443/quay.io"},
    trivy_db_repository="ghcr.io/aquasecurity/trivy-db", trivy_java_db_repository="ghcr.io/aquasecurity/trivy-java-db",
    file_server_url="https://files.internal:8445", file_server_address="10.0.0.6", file_server_port=8445,
    falco_driver="kmod", falco_driver_path="falco/driver", falco_indexes=("falco/index.yaml",),
    opensearch_plugins=("opensearch/repository-s3-2.15.0.zip",), dns_zone="corp.internal", dns_servers=("10.0.0.53",),
    alert_email="ops@corp.internal", smtp_smarthost="10.0.0.25:587")


def test_overrides_use_only_known_keys():
    known = known_ck8s_keys()
    common, sc = ck8s.overrides(FULL)
    for fragment in (common, sc):
        unknown = sorted(p for p in ck8s.key_paths(fragment) if not covered(p, known))
        assert not unknown, f"keys the Compliant Kubernetes schema does not list: {unknown}"


def test_overrides_carry_the_stack_values():
    common, sc = ck8s.overrides(FULL)
    common, sc = yaml.safe_load(ck8s.to_yaml(common)), yaml.safe_load(ck8s.to_yaml(sc))
    assert common["global"]["ck8sFlavor"] == "air-gapped"
    assert common["falco"]["customIndexes"] == [{"name": "airgap-1", "url": "https://files.internal:8445/falco/index.yaml"}]
    assert common["falco"]["driver"] == {"kind": "kmod", "module": {"repoURL": "https://files.internal:8445/falco/driver"}}
    assert common["trivy"]["scanner"]["dbRegistry"] == "10.0.0.5:5443"
    assert common["trivy"]["scanner"]["registry"]["mirror"]["docker.io"] == "10.0.0.5:5443/docker.io"
    assert common["networkPolicies"]["falco"]["plugins"] == {"ips": ["10.0.0.6/32"], "ports": [8445]}
    assert "forward . 10.0.0.53" in common["nodeLocalDns"]["customConfig"]
    assert sc["opensearch"]["plugins"]["additionalPlugins"] == ["https://files.internal:8445/opensearch/repository-s3-2.15.0.zip"]
    assert sc["alerts"]["customReceivers"][0]["email_configs"][0]["smarthost"] == "10.0.0.25:587"


def test_modern_bpf_downloads_no_driver_and_no_indexes_turns_artifact_install_off():
    common, _ = ck8s.overrides(ck8s.Ck8sInputs(falco_driver="modern-bpf"))
    assert common["falco"] == {"artifact": {"install": {"enabled": False}}, "driver": {"kind": "modern_ebpf"}}
