"""The mirrors applied for real: a mirror host (aptly, dnf reposync, nginx) fed by the signed
upstream fixture on 127.0.0.2:8080, and a client host that installs through them with
signatures checked. Then the update flow, a wrong key, and an update killed mid-download."""

from __future__ import annotations

import copy
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from offline.executor import Executor
from offline.program import ProgramRun
from offline.stackfile import StackConfig, load_stack
from sandbox.hosts import Sandbox, SandboxHost
from sandbox.upstream_repos import UpstreamRepos
from tests.e2e.stack import APT_INSTALL, DNF, apply, prepare_dnf_client, rpm_version

pytestmark = pytest.mark.e2e

MIRROR, CLIENT = "127.0.0.12", "127.0.0.13"
APT_ROOT = "/var/lib/airgap/apt-mirror"
RPM_ROOT = "/var/lib/airgap/rpm-mirror"


def mirrors_only(config: StackConfig, **apt_changes: str) -> StackConfig:
    """The sandbox stack without the registry: this module is about the mirrors."""
    config = copy.deepcopy(config)
    for key in ("registry", "fileServer", "trivyDb", "ck8s"):
        config.values[f"airgap-infra:{key}"] = {}
    config.values["airgap-infra:images"] = []
    config.values["airgap-infra:registryClients"] = []
    for repo in config.values["airgap-infra:aptMirror"]["repos"]:
        repo.update(apt_changes)
    return config


@dataclass(frozen=True)
class Env:
    work: Path
    upstream: UpstreamRepos
    mirror: SandboxHost
    client: SandboxHost
    config: StackConfig
    first: ProgramRun
    """The first apply, which every test builds on."""
    executor: Executor
    engine: dict = field(default_factory=dict)
    """What the engine records at each `up` that passes it, for the next such `up` to compare against."""


@pytest.fixture(scope="module")
def env(work: Path, upstream_repos: UpstreamRepos, sandbox: Sandbox) -> Env:
    mirror = sandbox.up("mirror", MIRROR)
    client = sandbox.up("client", CLIENT)
    prepare_dnf_client(client)
    config = mirrors_only(load_stack("sandbox"))
    run, executor = apply(config, work)
    return Env(work, upstream_repos, mirror, client, config, run, executor)


def installed_hello(client: SandboxHost) -> str:
    return client.ssh("airgap-hello").stdout.strip()


def test_apply_publishes_both_mirrors(env: Env) -> None:
    run = env.first
    assert run.error is None, run.error
    reports = {r["repo"]: r for r in run.exports["aptMirror"]["reports"]}
    assert reports["upstream-debian"]["status"] == "updated"
    assert {a["package"] for a in reports["upstream-debian"]["added"]} >= {"airgap-hello", "airgap-data"}
    rpm_reports = {r["repo"]: r for r in run.exports["rpmMirror"]["reports"]}
    assert "airgap-hello-1.0-1.noarch.rpm" in rpm_reports["upstream-rpm"]["added"]
    assert "BEGIN PGP PUBLIC KEY BLOCK" in run.exports["aptMirror"]["publicKey"]


def test_client_installs_through_the_signed_apt_mirror(env: Env) -> None:
    client = env.client
    sources = client.ssh("cat /etc/apt/sources.list.d/airgap-upstream-debian.sources").stdout
    assert "Signed-By: /etc/apt/keyrings/airgap-upstream-debian.asc" in sources
    assert "trusted" not in sources
    assert client.ssh("ls /etc/apt/sources.list.d/airgap-moved/").stdout.strip(), "the host's own sources moved aside"
    client.ssh(f"{APT_INSTALL} airgap-tools >/dev/null")
    assert installed_hello(client) == "airgap-hello 1.0"


def test_client_installs_through_the_rpm_mirror_with_signatures_checked(env: Env) -> None:
    client = env.client
    repo = client.ssh("cat /etc/yum.repos.d/airgap-upstream-rpm.repo").stdout
    assert "gpgcheck=1" in repo and "repo_gpgcheck=1" in repo and "sslcacert=" in repo
    # an empty installroot has no /bin/sh: these two packages need none
    client.ssh(f"{DNF} install airgap-docs airgap-data")
    assert rpm_version(client, "airgap-data") == "1.0"


def test_the_wrong_key_is_refused(env: Env) -> None:
    """The same client, trusting the wrong key (and nothing cached from before), is refused."""
    client, upstream = env.client, env.upstream
    key = "/etc/apt/keyrings/airgap-upstream-debian.asc"
    client.ssh(f"cp {key} /root/good.asc")
    client.ssh(f"cat > {key}", input=upstream.wrong_key)
    try:
        client.ssh("rm -rf /var/lib/apt/lists/*")
        refused = client.ssh("apt-get update -q -o APT::Update::Error-Mode=any", check=False)
        assert refused.returncode != 0
        assert "NO_PUBKEY" in refused.stdout + refused.stderr
    finally:
        client.ssh(f"cp /root/good.asc {key} && apt-get update -q >/dev/null")
    rpm_key = "/etc/pki/rpm-gpg/RPM-GPG-KEY-airgap-upstream-rpm"
    client.ssh(f"cp {rpm_key} /root/good-rpm.asc")
    client.ssh(f"cat > {rpm_key}", input=upstream.wrong_key)
    fresh = DNF.replace("/root/rpmroot", "/root/wrongroot").replace("/var/cache/dnf", "/var/cache/dnf-wrong")
    try:
        refused = client.ssh(f"mkdir -p /root/wrongroot && {fresh} makecache", check=False)
        assert refused.returncode != 0
        assert "signature" in (refused.stdout + refused.stderr).lower()
    finally:
        client.ssh(f"cp /root/good-rpm.asc {rpm_key}")


def test_a_new_upstream_version_reaches_the_client_with_a_report(env: Env) -> None:
    mirror, client, upstream = env.mirror, env.client, env.upstream
    run, _ = apply(env.config, env.work, env.engine)   # `up` as the engine records it
    assert run.error is None, run.error
    upstream.publish(1)
    # the scheduled update: what the timer runs
    report = json.loads(mirror.ssh("/usr/local/sbin/airgap-apt-mirror-update").stdout)
    assert report["status"] == "updated"
    assert {"package": "airgap-hello", "arch": "all", "version": "1.1"} in report["added"]
    assert set(report["previous"]).isdisjoint(report["current"])
    snapshots = mirror.ssh("aptly -config=/etc/airgap/apt-mirror/aptly.conf snapshot list -raw").stdout.split()
    assert set(report["previous"]) <= set(snapshots), "the previous snapshot still exists"
    client.ssh(f"apt-get update -q >/dev/null && {APT_INSTALL} airgap-hello >/dev/null")
    assert installed_hello(client) == "airgap-hello 1.1"

    rpm_report = json.loads(mirror.ssh("/usr/local/sbin/airgap-rpm-mirror-update").stdout)
    assert rpm_report["status"] == "updated" and "airgap-data-1.1-1.noarch.rpm" in rpm_report["added"]
    previous = f"{RPM_ROOT}/snapshots/upstream-rpm/{rpm_report['previous']}"
    assert mirror.ssh(f"test -d {previous} && echo kept").stdout.strip() == "kept"
    client.ssh(f"{DNF} --setopt=*.metadata_expire=0 upgrade airgap-data")
    assert rpm_version(client, "airgap-data") == "1.1"


def test_the_next_up_exposes_what_the_scheduled_update_did(env: Env) -> None:
    """The update above ran as the timer runs it, outside `up`; the next `up` reports it."""
    run, executor = apply(env.config, env.work, env.engine)
    assert run.error is None, run.error
    assert "apt-mirror-update" not in [e.name for e in executor.log], "nothing changed: the step did not run"
    report = {r["repo"]: r for r in run.exports["aptMirror"]["reports"]}["upstream-debian"]
    assert report["status"] == "updated"
    # upstream keeps 1.0 beside 1.1, so aptly reports 1.1 as added (an upgrade when 1.0 goes)
    assert {"package": "airgap-hello", "arch": "all", "version": "1.1"} in report["added"]
    rpm = {r["repo"]: r for r in run.exports["rpmMirror"]["reports"]}["upstream-rpm"]
    assert "airgap-data-1.1-1.noarch.rpm" in rpm["added"]


def test_nothing_new_upstream_changes_nothing(env: Env) -> None:
    mirror = env.mirror
    published = f"readlink {RPM_ROOT}/public/upstream-rpm; cat {APT_ROOT}/state/upstream-debian.published"
    before = mirror.ssh(published).stdout
    apt_report = json.loads(mirror.ssh("/usr/local/sbin/airgap-apt-mirror-update").stdout)
    rpm_report = json.loads(mirror.ssh("/usr/local/sbin/airgap-rpm-mirror-update").stdout)
    assert apt_report["status"] == "unchanged" and rpm_report["status"] == "unchanged"
    assert mirror.ssh(published).stdout == before


def test_an_interrupted_update_never_serves_a_half_state(env: Env) -> None:
    """The mirror reads the upstream through a slow path; the update is killed while it
    downloads; clients keep the published state meanwhile; a re-run completes."""
    mirror, client, upstream = env.mirror, env.client, env.upstream
    slow = mirrors_only(load_stack("sandbox"), url=upstream.slow_debian_url.rstrip("/"))
    run, _ = apply(slow, env.work)   # the mirror now reads through the slow path
    assert run.error is None, run.error
    upstream.publish(2)
    done = threading.Event()
    outcome = {}

    def update():
        outcome["result"] = mirror.ssh("/usr/local/sbin/airgap-apt-mirror-update", check=False, timeout=120)
        done.set()

    worker = threading.Thread(target=update)
    worker.start()
    try:
        # The Packages index is logged once fetched; then airgap-data 1.2 crawls in at the slow rate.
        assert upstream.wait_for_request("/slow/debian/dists/bookworm/main/binary-amd64/Packages", timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and upstream.responses_in_flight() < 1 and not done.is_set():
            time.sleep(0.05)
        assert upstream.responses_in_flight() >= 1, "no download in flight to interrupt"
        # mid-download: clients still get the published state, whole
        client.ssh("apt-get update -q -o APT::Update::Error-Mode=any >/dev/null")
        assert "1.2" not in client.ssh("apt-cache policy airgap-hello").stdout
        mirror.ssh("pkill -KILL -f airgap-apt-mirror-update; pkill -KILL -x aptly", check=False)
    finally:
        worker.join(timeout=130)
    assert done.is_set() and outcome["result"].returncode != 0
    client.ssh("apt-get update -q -o APT::Update::Error-Mode=any >/dev/null")
    assert "1.2" not in client.ssh("apt-cache policy airgap-hello").stdout
    rerun = mirror.ssh("/usr/local/sbin/airgap-apt-mirror-update", timeout=120)
    assert json.loads(rerun.stdout)["status"] == "updated"
    client.ssh(f"apt-get update -q >/dev/null && {APT_INSTALL} airgap-hello >/dev/null")
    assert installed_hello(client) == "airgap-hello 1.2"
    run, _ = apply(env.config, env.work)   # back to the normal path
    assert run.error is None, run.error


def test_second_apply_changes_nothing(env: Env) -> None:
    client, mirror = env.client, env.mirror
    state = ("find /etc/apt /etc/yum.repos.d /etc/pki/rpm-gpg /etc/nginx /etc/airgap -printf '%p %s %T@\\n' | sort; "
             "systemctl show -p MainPID nginx")
    before = client.ssh(state).stdout, mirror.ssh(state).stdout
    run, _ = apply(env.config, env.work)
    assert run.error is None, run.error
    assert (client.ssh(state).stdout, mirror.ssh(state).stdout) == before


def test_the_rpm_mirror_served_by_httpd_instead(env: Env) -> None:
    """`server: httpd` takes over the port from nginx; the client keeps installing, signatures
    checked; switching back hands the port to nginx again."""
    client, mirror = env.client, env.mirror
    config = copy.deepcopy(env.config)
    config.values["airgap-infra:rpmMirror"]["server"] = "httpd"
    run, _ = apply(config, env.work)
    assert run.error is None, run.error
    assert "apache2" in mirror.ssh("ss -ltnp | grep ':8444 ' || true").stdout
    client.ssh(f"{DNF} --setopt=*.metadata_expire=0 reinstall airgap-docs")
    run, _ = apply(env.config, env.work)
    assert run.error is None, run.error
    assert "nginx" in mirror.ssh("ss -ltnp | grep ':8444 ' || true").stdout
    client.ssh(f"{DNF} --setopt=*.metadata_expire=0 reinstall airgap-docs")
