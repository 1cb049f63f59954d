"""The mirrors fed by bundles instead of the network: a bundle of the upstream fixture's signed
trees is made on the connected side, checked and imported on the mirror host (as from removable
media mounted there), and the stack mirrors from the imported trees with every signature still
checked; a later delta bundle brings the next revision, which the scheduled update publishes.
No upstream server runs in this module: nothing can be fetched from anywhere else."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from offline.executor import Executor
from offline.program import ProgramRun
from offline.stackfile import PROJECT_DIR, StackConfig, load_stack
from sandbox.hosts import Sandbox, SandboxHost
from sandbox.upstream_repo_trees import cached_repos
from tests.e2e.stack import APT_INSTALL, DNF, apply, prepare_dnf_client, rpm_version

pytestmark = pytest.mark.e2e

MIRROR, CLIENT = "127.0.0.21", "127.0.0.22"
INSIDE = "/srv/airgap"


def bundle(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bundle", *map(str, args)], cwd=PROJECT_DIR,
                          env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)}, capture_output=True, text=True,
                          timeout=600)


def make_bundle(out: Path, revision: int, *extra: object) -> None:
    trees = cached_repos(revision)
    made = bundle("create", "--out", out, "--apt-tree", f"upstream-debian={trees.debian}",
                  "--rpm-tree", f"upstream-rpm={trees.rpm}", *extra)
    assert made.returncode == 0, made.stderr


def carry_in(out: Path, mirror: SandboxHost) -> None:
    """Verify, then import onto the mirror host's disk."""
    checked = bundle("verify", out)
    assert checked.returncode == 0, checked.stderr
    imported = bundle("import", out, "--into", mirror.root / INSIDE.lstrip("/"))
    assert imported.returncode == 0, imported.stderr


def from_bundles(config: StackConfig, mirror: SandboxHost, client: SandboxHost) -> StackConfig:
    """The sandbox stack's mirrors, reading the imported trees, on this module's hosts."""
    config = copy.deepcopy(config)
    for key in ("registry", "fileServer", "trivyDb", "ck8s"):
        config.values[f"airgap-infra:{key}"] = {}
    config.values["airgap-infra:images"] = []
    config.values["airgap-infra:registryClients"] = []
    hosts = config.values["airgap-infra:hosts"]
    for name, host in (("mirror", mirror), ("client", client)):
        hosts[name] = {**hosts[name], "address": host.address, "hostKey": host.host_key}
    apt = config.values["airgap-infra:aptMirror"]["repos"][0]
    del apt["url"]
    apt["tree"] = f"{INSIDE}/apt/upstream-debian"
    rpm = config.values["airgap-infra:rpmMirror"]["repos"][0]
    del rpm["baseurl"]
    rpm["tree"] = f"{INSIDE}/rpm/upstream-rpm"
    return config


@dataclass(frozen=True)
class Env:
    work: Path
    """Holds the bundles (b0, b1) beside the executor's files."""
    mirror: SandboxHost
    client: SandboxHost
    config: StackConfig
    first: ProgramRun
    executor: Executor


@pytest.fixture(scope="module")
def env(work: Path, sandbox: Sandbox) -> Env:
    mirror = sandbox.up("mirror", MIRROR)
    client = sandbox.up("client", CLIENT)
    prepare_dnf_client(client)
    make_bundle(work / "b0", 0)
    carry_in(work / "b0", mirror)
    config = from_bundles(load_stack("sandbox"), mirror, client)
    run, executor = apply(config, work)
    return Env(work, mirror, client, config, run, executor)


def test_the_stack_mirrors_the_imported_trees(env: Env) -> None:
    run = env.first
    assert run.error is None, run.error
    scripts = "".join(str(record.inputs.get("create", "")) for record in run.records)
    assert re.search(r"serve_tree '?/srv/airgap/apt/upstream-debian'?\n", scripts)
    assert "127.0.0.2:" not in scripts and "8080" not in scripts, "no upstream URL is given to the hosts"
    reports = {r["repo"]: r for r in run.exports["aptMirror"]["reports"]}
    assert {a["package"] for a in reports["upstream-debian"]["added"]} >= {"airgap-hello", "airgap-data"}
    rpm = {r["repo"]: r for r in run.exports["rpmMirror"]["reports"]}
    assert "airgap-hello-1.0-1.noarch.rpm" in rpm["upstream-rpm"]["added"]
    assert env.mirror.ssh("pgrep -f '^python3 - /srv/airgap' || true").stdout.strip() == "", \
        "the tree is served only while aptly reads it"


def test_the_client_installs_through_both_with_signatures_checked(env: Env) -> None:
    client = env.client
    client.ssh(f"{APT_INSTALL} airgap-tools >/dev/null")
    assert client.ssh("airgap-hello").stdout.strip() == "airgap-hello 1.0"
    client.ssh(f"{DNF} install airgap-docs airgap-data")
    assert rpm_version(client, "airgap-data") == "1.0"


def test_a_tampered_tree_is_refused_by_the_mirror(env: Env) -> None:
    """The imported tree keeps the upstream's signatures: a Release edited after the bundle was
    checked (InRelease and Release both, so aptly has no good one to fall back on) fails aptly's
    check, and the published mirror stays as it was."""
    mirror = env.mirror
    dists = mirror.root / INSIDE.lstrip("/") / "apt/upstream-debian/dists/bookworm"
    originals = {name: (dists / name).read_bytes() for name in ("InRelease", "Release")}
    published = mirror.ssh("cat /var/lib/airgap/apt-mirror/state/upstream-debian.published").stdout
    try:
        for name, original in originals.items():
            assert b"Suite: bookworm" in original
            (dists / name).write_bytes(original.replace(b"Suite: bookworm", b"Suite: bookwork", 1))
        refused = mirror.ssh("/usr/local/sbin/airgap-apt-mirror-update", check=False, timeout=300)
        assert refused.returncode != 0
        assert "signature" in refused.stderr.lower(), refused.stderr[-2000:]
        assert mirror.ssh("cat /var/lib/airgap/apt-mirror/state/upstream-debian.published").stdout == published
    finally:
        for name, original in originals.items():
            (dists / name).write_bytes(original)


def test_a_delta_bundle_brings_the_next_revision(env: Env) -> None:
    mirror, client, work = env.mirror, env.client, env.work
    make_bundle(work / "b1", 1, "--delta-against", work / "b0" / "MANIFEST.json")
    delta = json.loads((work / "b1" / "MANIFEST.json").read_text())
    carried = {entry["path"] for entry in delta["files"]}
    assert any("airgap-hello" in path and "1.1" in path for path in carried)
    assert not any("airgap-hello_1.0" in path or "airgap-hello-1.0" in path for path in carried), \
        "what the inside has is not carried again"
    carry_in(work / "b1", mirror)
    # the scheduled update: what the timer runs
    report = json.loads(mirror.ssh("/usr/local/sbin/airgap-apt-mirror-update", timeout=300).stdout)
    assert report["status"] == "updated"
    assert {"package": "airgap-hello", "arch": "all", "version": "1.1"} in report["added"]
    client.ssh(f"apt-get update -q >/dev/null && {APT_INSTALL} airgap-hello >/dev/null")
    assert client.ssh("airgap-hello").stdout.strip() == "airgap-hello 1.1"
    rpm_report = json.loads(mirror.ssh("/usr/local/sbin/airgap-rpm-mirror-update", timeout=300).stdout)
    assert rpm_report["status"] == "updated" and "airgap-data-1.1-1.noarch.rpm" in rpm_report["added"]
    client.ssh(f"{DNF} --setopt=*.metadata_expire=0 upgrade airgap-data")
    assert rpm_version(client, "airgap-data") == "1.1"


def test_nothing_new_imported_changes_nothing(env: Env) -> None:
    mirror = env.mirror
    apt = json.loads(mirror.ssh("/usr/local/sbin/airgap-apt-mirror-update").stdout)
    rpm = json.loads(mirror.ssh("/usr/local/sbin/airgap-rpm-mirror-update").stdout)
    assert apt["status"] == "unchanged" and rpm["status"] == "unchanged"
    run, executor = apply(env.config, env.work)
    assert run.error is None, run.error
