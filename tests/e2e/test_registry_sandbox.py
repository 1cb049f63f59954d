"""The `sandbox` stack applied for real: sandbox hosts (a bastion and a registry host), the upstream
fixture on 127.0.0.2:5000 playing the public registries, every step run over SSH through the
bastion. Then real clients check what was built: skopeo over TLS with auth sees every image
with its source digest; a second apply changes nothing; a registry stopped mid-fill loses nothing.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.images import parse_image_ref
from offline.executor import Executor
from offline.program import ProgramRun
from offline.stackfile import PROJECT_DIR, StackConfig, load_stack
from sandbox import trivy_artifacts
from sandbox.hosts import Sandbox, SandboxHost
from sandbox.oci_images import Image
from sandbox.upstream import UpstreamRegistry
from tests.e2e.stack import apply

pytestmark = pytest.mark.e2e

BASTION, REGISTRY = "127.0.0.10", "127.0.0.11"
STORAGE = "/var/lib/airgap/registry"
UNIT = "airgap-registry.service"
TRANSFER = "/var/lib/airgap/transfer"


@dataclass(frozen=True)
class Env:
    work: Path
    upstream: UpstreamRegistry
    host: SandboxHost
    """The registry host (the bastion, which every step goes through, is not named)."""
    config: StackConfig
    first: ProgramRun
    executor: Executor


@pytest.fixture(scope="module")
def env(work: Path, upstream_registry: UpstreamRegistry, sandbox: Sandbox) -> Env:
    sandbox.up("bastion", BASTION)
    host = sandbox.up("registry", REGISTRY, trust={upstream_registry.endpoint: upstream_registry.ca_pem})
    config = registry_only(load_stack("sandbox"))
    first, executor = apply(config, work)
    return Env(work, upstream_registry, host, config, first, executor)


def registry_only(config: StackConfig) -> StackConfig:
    """The sandbox stack without the mirrors: this module is about the registry."""
    config = copy.deepcopy(config)
    for key in ("aptMirror", "rpmMirror", "fileServer", "ck8s"):
        config.values[f"airgap-infra:{key}"] = {}
    config.values["airgap-infra:mirrorClients"] = []
    config.values["airgap-infra:registryClients"] = []
    return config


def client_files(env: Env) -> tuple[Path, Path]:
    """A skopeo cert dir with the stack's CA, and an auth file for the first registry user."""
    work, run = env.work, env.first
    certs = work / "client-certs"
    certs.mkdir(exist_ok=True)
    (certs / "ca.crt").write_text(run.exports["registryCaBundle"])
    password = env.config.values["airgap-infra:secrets"]["registryPassword"]
    token = base64.b64encode(f"airgap:{password}".encode()).decode()
    auth = work / "client-auth.json"
    auth.write_text(json.dumps({"auths": {run.exports["registryEndpoint"]: {"auth": token}}}))
    return certs, auth


def skopeo_raw(env: Env, reference: str, *, certs: Path | None = None,
               auth: Path | None = None) -> subprocess.CompletedProcess:
    argv = ["skopeo", "inspect", "--raw"]
    argv += ["--cert-dir", str(certs)] if certs else []
    argv += ["--authfile", str(auth)] if auth else ["--no-creds"]
    return subprocess.run([*argv, f"docker://{reference}"], capture_output=True,
                          env=env.upstream.skopeo_env(), timeout=60)


def registry_log(env: Env) -> str:
    """The registry's last log lines (the sandbox's systemctl keeps each unit's output)."""
    return env.host.ssh("tail -n 40 /var/log/journal/airgap-registry.service.log", check=False).stdout


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_apply_succeeds_through_the_bastion(env: Env) -> None:
    run = env.first
    assert run.error is None, run.error
    assert run.exports["registryEndpoint"] == f"{REGISTRY}:5443"
    names = [entry.name for entry in env.executor.log]
    assert names.index("registry-install") < names.index("registry-fill") < names.index("registry-lock-file")


def test_every_image_has_its_source_digest_over_tls_with_auth(env: Env) -> None:
    certs, auth = client_files(env)
    catalog = env.upstream.catalog
    lock = [e for e in env.first.exports["imageLock"] if "artifactType" not in e]  # not the Trivy databases
    assert len(lock) == len(catalog.images)
    for image in catalog.images:
        entry = lock_entry(lock, image)
        result = skopeo_raw(env, entry["private"], certs=certs, auth=auth)
        assert result.returncode == 0, (result.stderr, registry_log(env))
        assert digest(result.stdout) == image.digest == entry["digest"], image.ref
        by_digest = skopeo_raw(env, entry["privateByDigest"], certs=certs, auth=auth)
        assert by_digest.returncode == 0 and digest(by_digest.stdout) == image.digest


def lock_entry(lock: list[dict], image: Image) -> dict:
    """The lock entry for a catalog image, whether the stack names it by tag, digest or both."""
    wanted = parse_image_ref(image.ref)
    for entry in lock:
        ref = parse_image_ref(entry["source"])
        if ref.name == wanted.name and (ref.tag == wanted.tag or ref.digest == image.digest):
            return entry
    raise AssertionError(f"{image.ref} is not in the lock")


def test_multi_arch_index_keeps_every_platform(env: Env) -> None:
    certs, auth = client_files(env)
    index = next(i for i in env.upstream.catalog.images if i.is_index)
    entry = lock_entry(env.first.exports["imageLock"], index)
    assert entry["platforms"] == sorted(index.platforms)
    document = json.loads(skopeo_raw(env, entry["private"], certs=certs, auth=auth).stdout)
    assert len(document["manifests"]) == len(index.platforms)
    repository = entry["private"].rsplit(":", 1)[0]
    for child in document["manifests"]:
        result = skopeo_raw(env, f"{repository}@{child['digest']}", certs=certs, auth=auth)
        assert result.returncode == 0 and digest(result.stdout) == child["digest"]


def test_tls_and_auth_are_enforced(env: Env) -> None:
    certs, auth = client_files(env)
    reference = env.first.exports["imageLock"][0]["private"]
    anonymous = skopeo_raw(env, reference, certs=certs)
    assert anonymous.returncode != 0 and b"unauthorized" in anonymous.stderr.lower()
    untrusted = skopeo_raw(env, reference, auth=auth)
    assert untrusted.returncode != 0 and b"certificate" in untrusted.stderr.lower()


def test_lock_file_is_written_on_the_admin_machine(env: Env) -> None:
    written = json.loads((env.work / "out/sandbox/image-lock.json").read_text())
    assert written["images"] == env.first.exports["imageLock"]
    assert len(written["images"]) == len(env.config.values["airgap-infra:images"]) + 2  # + the Trivy databases


def test_no_secret_is_left_on_the_host(env: Env) -> None:
    host = env.host
    leftover = host.ssh("ls /tmp", check=True).stdout.split()
    assert not [name for name in leftover if name.startswith("airgap-")]
    password = env.config.values["airgap-infra:secrets"]["registryPassword"]
    found = host.ssh(f"grep -rlF -- {json.dumps(password)[1:-1][:12]!r} /etc /var/lib/airgap /tmp || true").stdout
    assert found.strip() == ""


def _host_state(host: SandboxHost) -> str:
    """Service PID, and every file the registry owns with its size and mtime."""
    return host.ssh(
        "systemctl show -p MainPID airgap-registry.service 2>/dev/null || true; "
        f"find /etc/airgap /etc/systemd/system/airgap-registry.service {STORAGE} -printf '%p %s %T@\\n' | sort"
    ).stdout


def test_second_apply_changes_nothing(env: Env) -> None:
    host = env.host
    before = _host_state(host)
    second, executor = apply(env.config, env.work)
    assert second.error is None, second.error
    assert _host_state(host) == before, "a second apply restarted the registry or changed files"
    fill = next(entry for entry in executor.log if entry.name == "registry-fill")
    count = len(env.config.values["airgap-infra:images"]) + 2
    assert f"{count} of {count} images already present" in fill.stderr
    assert second.exports["imageLock"] == env.first.exports["imageLock"]


def test_registry_stopped_mid_fill_then_reapplied_loses_nothing(env: Env) -> None:
    """The registry goes down while the fill runs; the apply fails; the next apply completes, and
    every image stored before the stop is still there and is not copied again."""
    host = env.host
    host.ssh(f"systemctl stop {UNIT}; rm -rf {STORAGE}/docker; systemctl start {UNIT}")
    tag_links = f"{STORAGE}/docker/registry/v2/repositories -path '*_manifests/tags/*/current/link'"
    count_links = f"find {tag_links} 2>/dev/null | wc -l"
    watched: dict[str, str] = {}
    done = threading.Event()

    def stop_registry_mid_fill():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not done.is_set():
            if int(host.ssh(count_links).stdout.strip() or 0) >= 3:
                host.ssh("systemctl stop airgap-registry.service")
                watched["survivors"] = host.ssh(count_links).stdout.strip()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=stop_registry_mid_fill)
    watcher.start()
    try:
        interrupted, _ = apply(env.config, env.work)
    finally:
        done.set()
        watcher.join(timeout=150)
    assert "survivors" in watched, "the fill finished before the registry could be stopped"
    assert interrupted.error is not None, "the fill cannot succeed with the registry stopped"
    # What a kill (not a stop: the registry drains on SIGTERM) can leave: an empty layer link, tag
    # link or manifest. Distribution answers each with a 500 until the unit's repair runs.
    v2 = f"{STORAGE}/docker/registry/v2"
    broken = host.ssh(
        f"tags=$(find {v2}/repositories -path '*_manifests/tags/*/current/link' | sort); "
        "tag=$(echo \"$tags\" | sed -n 1p); other=$(echo \"$tags\" | sed -n 2p); "
        "repository=${tag%%/_manifests/*}; "
        "layer=$(find \"$repository/_layers\" -name link | sort | head -n1); "
        "hex=$(cut -d: -f2 \"$other\"); "
        f"manifest={v2}/blobs/sha256/$(printf %.2s \"$hex\")/$hex/data; "
        ": > \"$tag\"; : > \"$layer\"; : > \"$manifest\"; echo \"$tag\"; echo \"$layer\"; echo \"$manifest\"",
        check=True).stdout.split()
    assert len(broken) == 3 and broken[2].endswith("/data"), broken

    again, executor = apply(env.config, env.work)
    if again.error is not None:
        fill = next((entry for entry in executor.log if entry.name == "registry-fill"), None)
        failures = [line for line in (fill.stderr if fill else "").splitlines() if "fail" in line.lower()]
        empty = host.ssh(f"find {STORAGE}/docker -type f -size -72c ! -size 71c -printf '%s %p\\n' | head -n 20").stdout
        raise AssertionError(f"{again.error}\n{failures}\nshort files:\n{empty}\nregistry log:\n{registry_log(env)}")
    assert again.exports["imageLock"] == env.first.exports["imageLock"]
    fill = next(entry for entry in executor.log if entry.name == "registry-fill")
    counted = re.search(r"(\d+) of \d+ images already present", fill.stderr)
    assert counted, fill.stderr
    present = int(counted.group(1))
    assert present >= int(watched["survivors"]) - 2 >= 1, "images stored before the stop were copied again"
    log = host.ssh("grep -h 'repair-storage:' /var/log/journal/airgap-registry.service.log || true").stdout
    assert f"repair-storage: {broken[0]}: empty, removed" in log, log
    assert f"repair-storage: {broken[1]}: written again (sha256:" in log, log
    assert f"repair-storage: {broken[2]}: empty, removed" in log, log
    assert host.ssh(f"cat {broken[1]}").stdout.strip() == "sha256:" + broken[1].split("/")[-2]
    assert int(host.ssh(f"stat -c %s {broken[2]}").stdout) > 0, "the fill wrote the manifest again"
    test_every_image_has_its_source_digest_over_tls_with_auth(env)


@pytest.mark.parametrize("runner", ["host", "admin"])
def test_fill_from_an_oci_layout_carried_across_the_gap(env: Env, runner: str) -> None:
    """The images arrive as an OCI layout on the admin machine: copied to the registry host and
    filled there, or pushed from the admin machine; either way the digests are the source's."""
    host = env.host
    host.ssh(f"systemctl stop airgap-registry.service; rm -rf {STORAGE}/docker")
    config = copy.deepcopy(env.config)
    registry = config.values["airgap-infra:registry"]
    registry["fill"] = {**registry["fill"], "ociLayout": str(env.upstream.catalog.layout), "runner": runner,
                        "lockFile": f"out/sandbox/lock-{runner}.json"}
    config.values["airgap-infra:adminFileRoots"] = [str(env.upstream.catalog.layout.parent)]
    run, executor = apply(config, env.work)
    assert run.error is None, run.error
    kinds = {entry.name: entry.kind for entry in executor.log}
    fill_record = run.named("registry-fill")
    assert fill_record.type == ("command:remote:Command" if runner == "host" else "command:local:Command")
    if runner == "host":
        assert "registry-oci-layout" in kinds, "the layout is copied to the registry host"
        assert host.ssh(f"test -f {TRANSFER}/layout/index.json && echo ok").stdout.strip() == "ok"
    else:
        assert "registry-oci-layout" not in kinds
    fill = next(entry for entry in executor.log if entry.name == "registry-fill")
    assert "0 of" in fill.stderr, "the registry was empty: everything came from the layout"
    assert "127.0.0.2" not in json.dumps(fill.stderr)
    assert run.exports["imageLock"] == env.first.exports["imageLock"]
    test_every_image_has_its_source_digest_over_tls_with_auth(env)


def test_no_step_output_holds_a_secret(env: Env) -> None:
    secrets = env.config.values["airgap-infra:secrets"]
    for entry in env.executor.log:
        for value in secrets.values():
            for line in value.splitlines():
                if len(line) > 8:
                    assert line not in entry.stdout and line not in entry.stderr, entry.name


def test_trivy_databases_are_in_the_registry_as_oci_artifacts(env: Env) -> None:
    """Carried across as an OCI layout; in the registry with Trivy's media types, digests kept."""
    certs, auth = client_files(env)
    layout = json.loads((PROJECT_DIR / "sandbox/data/trivy-layout/index.json").read_text())
    expected = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in layout["manifests"]}
    lock = {e["source"]: e for e in env.first.exports["imageLock"]}
    layer_types = {trivy_artifacts.DB_REF: trivy_artifacts.DB_LAYER_TYPE,
                   trivy_artifacts.JAVA_DB_REF: trivy_artifacts.JAVA_DB_LAYER_TYPE}
    for ref, digest in expected.items():
        entry = lock[ref]
        assert entry["digest"] == digest and entry["artifactType"] == trivy_artifacts.CONFIG_TYPE
        result = skopeo_raw(env, entry["private"], certs=certs, auth=auth)
        assert result.returncode == 0, (result.stderr, registry_log(env))
        manifest = json.loads(result.stdout)
        assert digest == "sha256:" + hashlib.sha256(result.stdout).hexdigest()
        assert manifest["config"]["mediaType"] == trivy_artifacts.CONFIG_TYPE
        assert [layer["mediaType"] for layer in manifest["layers"]] == [layer_types[ref]]
