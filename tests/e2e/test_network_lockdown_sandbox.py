"""The egress lockdown applied for real, on sandbox hosts in network namespaces of their own.

One Ethernet segment (tests/harness/lan.py) holds the admin machine (10.77.0.1), the "internet"
(10.77.0.2 and fd77::2: the upstream package repositories and registry, and TCP/UDP echo on both
families) and three hosts: registry (.11), mirror (.12) and client (.13). The offline engine runs
in the admin's namespace, so every SSH connection, the confirmations' included, comes from there.

Before `up` every host reaches the internet. After it, none does, over TCP or UDP, IPv4 or IPv6,
while everything the stack set up works through the lockdown: the mirror and the registry filled
from their upstreams, the client installing through both mirrors, pulling through the registry
with dockerd and containerd (run in the client's namespace with the files the stack wrote there),
and fetching from the file server. The audit says exactly that. Rules that would cut SSH roll back
by themselves and fail the step saying why; restarts keep the rules; taking a host out of the
lockdown removes our table and nothing else. No test traffic leaves these namespaces.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import pickle
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.settings import DEFAULT_UPSTREAMS
from offline.stackfile import PROJECT_DIR, StackConfig, load_stack
from sandbox import keys
from sandbox.hosts import Sandbox, SandboxHost
from sandbox.upstream import start_upstream
from sandbox.upstream_repos import UpstreamRepos
from tests.e2e.stack import APT_INSTALL, DNF, prepare_dnf_client, rpm_version
from tests.harness.lan import EchoServer, Lan, LanMember, entered, reaches
from tests.harness.runtimes import PLATFORM, Containerd, Dockerd

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and sandbox hosts need root"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in ("ip", "nft", "dockerd", "containerd", "ctr")),
                       reason="needs ip, nft, dockerd, containerd and ctr on this machine"),
]

ADMIN, INTERNET, INTERNET6 = "10.77.0.1", "10.77.0.2", "fd77::2"
HOSTS = {"registry": 11, "mirror": 12, "client": 13}
ECHO = 7
ROLLBACK = 15
IMAGES = ["docker.io/library/alpine:3.19",
          "registry.k8s.io/pause@sha256:7ac6a9fe3f53882a0161654d8d4bd433311f740184b001f9303c141bbd88ddc9"]
INTERNET_ENDPOINTS = [(address, ECHO, protocol) for address in (INTERNET, INTERNET6) for protocol in ("tcp", "udp")]
# Docker's own table, as a host with Docker has one: the lockdown must leave it as it is.
DOCKER_LIKE = """\
table ip docker-like {
  chain forward {
    type filter hook forward priority filter; policy accept;
    counter
  }
}
"""


def address(host: str) -> str:
    return f"10.77.0.{HOSTS[host]}"


def lockdown_stack(**network: object) -> StackConfig:
    """The sandbox stack on the namespaced hosts and internet, every host locked down."""
    config = copy.deepcopy(load_stack("sandbox"))
    values = config.values

    def key(name: str) -> str:
        return f"airgap-infra:{name}"

    values[key("hosts")] = {
        name: {"address": address(name), "hostKey": keys.openssh_public(keys.host_key(address(name)))}
        for name in HOSTS}
    values[key("images")] = IMAGES
    values[key("registry")]["fill"]["upstreams"] = {r: f"{INTERNET}:5000/{r}" for r in DEFAULT_UPSTREAMS}
    values[key("registry")]["fill"]["lockFile"] = "image-lock.json"
    values[key("aptMirror")]["repos"][0]["url"] = f"http://{INTERNET}:8080/debian"
    values[key("rpmMirror")]["repos"][0]["baseurl"] = f"http://{INTERNET}:8080/rpm"
    values[key("fileServer")]["artifacts"][3]["url"] = f"http://{INTERNET}:8080/keys/debian.asc"
    values[key("trivyDb")] = {}
    values[key("ck8s")] = {}
    must_fail = [f"{INTERNET}:{ECHO}/tcp", f"{INTERNET}:{ECHO}/udp", f"[{INTERNET6}]:{ECHO}/tcp",
                 f"[{INTERNET6}]:{ECHO}/udp", f"{INTERNET}:8080/tcp", f"{INTERNET}:5000/tcp"]
    values[key("network")] = {
        "adminAddresses": [ADMIN, "fd77::1"],
        "rollbackSeconds": ROLLBACK,
        "allow": [{"service": "fileServer", "hosts": ["client"], "why": "the client fetches artifacts"}],
        "audit": {"mustFail": must_fail, "timeoutSeconds": 2},
        **network,
    }
    return config


@dataclass(frozen=True)
class Env:
    work: Path
    lan: Lan
    admin: LanMember
    members: dict[str, LanMember]
    hosts: dict[str, SandboxHost]
    before: dict[str, dict[tuple[str, int, str], bool]]
    config: StackConfig
    first: dict


def up(env_work: Path, admin: LanMember, config: StackConfig, mode: str = "up") -> dict:
    """`up` (or `preview`) of `config` by the engine on the admin machine: what happened (tests/e2e/admin.py),
    also kept as admin/outcome-N.json."""
    directory = env_work / "admin"
    directory.mkdir(exist_ok=True)
    (directory / "config.pickle").write_bytes(pickle.dumps(config))
    outcome = directory / f"outcome-{len(list(directory.glob('outcome-*.json'))) + 1}.json"
    result = admin.run([sys.executable, "-m", "tests.e2e.admin", str(directory), mode, str(outcome)],
                       cwd=PROJECT_DIR, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(outcome.read_text())


def reachable(member: LanMember) -> dict[tuple[str, int, str], bool]:
    """Which of the internet's echo endpoints answer `member` (all probed at once)."""
    with ThreadPoolExecutor(max_workers=len(INTERNET_ENDPOINTS)) as pool:
        found = pool.map(lambda e: reaches(member, e[0], e[1], e[2], timeout=2), INTERNET_ENDPOINTS)
        return dict(zip(INTERNET_ENDPOINTS, found, strict=True))


@pytest.fixture(scope="module")
def env(work: Path, sandbox: Sandbox) -> Iterator[Env]:
    with Lan("lockdown") as lan, contextlib.ExitStack() as services:
        admin, internet = lan.join("lockdown-admin", 1), lan.join("lockdown-internet", 2)
        members = {name: lan.join(f"lockdown-{name}", index) for name, index in HOSTS.items()}
        with entered(internet):  # the upstream fixtures serve "the internet" from its namespace
            services.enter_context(UpstreamRepos(revision=0, address=INTERNET, port=8080))
            upstream = services.enter_context(contextlib.closing(start_upstream("test", address=INTERNET, port=5000)))
        EchoServer(internet, [INTERNET, INTERNET6], ECHO)
        hosts: dict[str, SandboxHost] = {}
        try:
            for name in HOSTS:
                trust = {f"{INTERNET}:5000": upstream.ca_pem} if name == "registry" else None
                hosts[name] = sandbox.up(name, address(name), netns=members[name].name, ssh_from=admin.name,
                                         trust=trust)
            prepare_dnf_client(hosts["client"])
            docker_like = work / "docker-like.nft"
            docker_like.write_text(DOCKER_LIKE)
            assert members["client"].run(["nft", "-f", str(docker_like)]).returncode == 0
            before = {name: reachable(member) for name, member in members.items()}
            config = lockdown_stack()
            first = up(work, admin, config)
            yield Env(work, lan, admin, members, hosts, before, config, first)
        finally:
            for host in hosts.values():  # stopped before their namespaces go
                host.stop()
    assert lan.leftovers() == []


def status(host: SandboxHost) -> list[str]:
    return host.ssh("/usr/local/sbin/airgap-firewall status").stdout.split()


def tables(env: Env, name: str) -> list[str]:
    listed = env.members[name].run(["nft", "list", "tables"], capture_output=True, text=True)
    return sorted(listed.stdout.splitlines())


def test_before_lockdown_every_host_reaches_the_internet(env: Env) -> None:
    for name, reached in env.before.items():
        assert all(reached.values()), (name, reached)


def test_up_locks_every_host_down_and_the_admin_confirms_it(env: Env) -> None:
    assert env.first["error"] is None, env.first["error"]
    for name, host in env.hosts.items():
        state, token, _, _, *why = status(host)
        assert state == "confirmed", (name, status(host))
        assert " ".join(why) == f"over a fresh SSH connection from {ADMIN}"
        confirm = next(e for e in env.first["log"] if e["name"] == f"network-lockdown-{name}-confirm")
        assert f"confirming rules {token}" in confirm["stderr"]
    assert tables(env, "client") == ["table inet airgap", "table ip docker-like"], "Docker's table is still there"


def test_the_stack_ran_behind_the_lockdown(env: Env) -> None:
    """Every host's rules stood before any other step ran there: the fills and updates went through them."""
    order = [e["name"] for e in env.first["log"] if e["name"] != "local-run"]
    for name, first_step in (("registry", "registry-fill"), ("mirror", "apt-mirror-update"),
                             ("client", "mirror-clients-client")):
        assert order.index(f"network-lockdown-{name}-confirm") < order.index(first_step), order
    assert [image["source"] for image in env.first["exports"]["imageLock"]] == sorted(IMAGES)
    reports = {r["repo"]: r["status"] for r in env.first["exports"]["aptMirror"]["reports"]}
    assert reports == {"upstream-debian": "updated"}


def test_after_up_no_host_reaches_the_internet(env: Env) -> None:
    for name, member in env.members.items():
        assert not any(reachable(member).values()), name


def test_the_client_installs_pulls_and_fetches_through_the_lockdown(env: Env) -> None:
    client, exports = env.hosts["client"], env.first["exports"]
    client.ssh(f"{APT_INSTALL} airgap-tools >/dev/null")
    assert client.ssh("airgap-hello").stdout.strip() == "airgap-hello 1.0"
    client.ssh(f"{DNF} install airgap-docs airgap-data")
    assert rpm_version(client, "airgap-data") == "1.0"
    client.ssh("cat > /root/stack-ca.crt", input=exports["caCertificate"])
    for path, artifact in exports["fileServer"]["artifacts"].items():
        got = client.ssh(f"curl -fsS --cacert /root/stack-ca.crt {artifact['url']} | sha256sum").stdout.split()[0]
        assert got == artifact["sha256"], path


@pytest.fixture(scope="module")
def runtimes(env: Env) -> Iterator[tuple[Dockerd, Containerd]]:
    """dockerd and containerd in the client's namespace, with the files the stack wrote on the client."""
    client, member = env.hosts["client"], env.members["client"]
    with contextlib.ExitStack() as stack:
        dockerd = stack.enter_context(contextlib.closing(Dockerd(member)))
        containerd = stack.enter_context(contextlib.closing(Containerd(member)))
        shutil.copytree(client.root / "etc/docker/certs.d", dockerd.certs_dir, dirs_exist_ok=True)
        shutil.copytree(client.root / "etc/containerd/certs.d", containerd.hosts_dir, dirs_exist_ok=True)
        password = env.config.values["airgap-infra:secrets"]["registryReaderPassword"]
        login = base64.b64encode(f"reader:{password}".encode()).decode()
        (dockerd.state_dir / "cli").mkdir(parents=True, exist_ok=True)
        (dockerd.state_dir / "cli/config.json").write_text(json.dumps({"auths": {f"{address('registry')}:5443":
                                                                                 {"auth": login}}}))
        dockerd.start((client.root / "etc/docker/daemon.json").read_text())
        containerd.start()
        member.pids()  # remember what runs inside (dockerd's own containerd) for the leftovers check
        yield dockerd, containerd


def containerd_pull(containerd: Containerd, env: Env, ref: str):
    password = env.config.values["airgap-infra:secrets"]["registryReaderPassword"]
    return containerd.ctr("images", "pull", "--user", f"reader:{password}", "--hosts-dir",
                          env.members["client"].inside(containerd.hosts_dir), "--platform", PLATFORM,
                          "--snapshotter", "native", ref)


def test_dockerd_and_containerd_pull_through_the_registry_behind_the_lockdown(env, runtimes) -> None:
    dockerd, containerd = runtimes
    lock = {image["source"]: image["digest"] for image in env.first["exports"]["imageLock"]}
    private = f"{address('registry')}:5443/docker.io/library/alpine:3.19"
    pulled = dockerd.pull(private)
    assert pulled.returncode == 0, pulled.stderr
    assert dockerd.image_digest(private) == lock["docker.io/library/alpine:3.19"]
    pulled = containerd_pull(containerd, env, "docker.io/library/alpine:3.19")
    assert pulled.returncode == 0, pulled.stderr
    assert containerd.image_digest("docker.io/library/alpine:3.19") == lock["docker.io/library/alpine:3.19"]
    public = dockerd.pull(f"{INTERNET}:5000/docker.io/library/alpine:3.19")
    assert public.returncode != 0, "straight from the internet: refused by the lockdown"


def test_the_audit_reports_exactly_that(env: Env) -> None:
    audit = env.first["exports"]["networkAudit"]
    assert sorted(audit) == sorted(HOSTS)
    for name, report in audit.items():
        assert report["lockdown"] == "on" and report["table"] == "loaded", name
        assert report["failures"] == [] and report["ok"] is True, (name, report["failures"])
        assert report["commit"].startswith("confirmed "), name
        assert {e["result"] for e in report["mustFail"]} <= {"blocked", "no answer"}, name
        assert all(e["result"] == "answered" for e in report["mustAnswer"]), name
        assert report["dropped"]["egress_dropped"]["packets"] > 0, name
    skipped = {name: sorted(e["probe"] for e in report["skipped"]) for name, report in audit.items()}
    assert skipped == {"client": [], "mirror": [f"{INTERNET}:8080/tcp"], "registry": [f"{INTERNET}:5000/tcp"]}
    client = {e["probe"] for e in audit["client"]["mustAnswer"]}
    assert client == {f"{address('mirror')}:8443/tcp", f"{address('mirror')}:8444/tcp",
                      f"{address('mirror')}:8445/tcp", f"{address('registry')}:5443/tcp"}
    # The host's own timer runs the same audit and keeps the report.
    env.hosts["client"].ssh("systemctl start airgap-network-audit.service")
    kept = json.loads(env.hosts["client"].ssh("cat /var/lib/airgap/network/audit.json").stdout)
    assert kept["ok"] is True and kept["host"] == "client"


def test_restarts_keep_the_rules(env: Env, runtimes) -> None:
    dockerd, containerd = runtimes
    client, member = env.hosts["client"], env.members["client"]
    listed = member.run(["nft", "-s", "list", "table", "inet", "airgap"], capture_output=True, text=True).stdout
    daemon_json = dockerd.config_file.read_text()
    dockerd.stop()
    dockerd.start(daemon_json)
    containerd.stop()
    containerd.start()
    client.ssh("systemctl restart airgap-firewall.service")
    assert member.run(["nft", "-s", "list", "table", "inet", "airgap"], capture_output=True, text=True).stdout == listed
    # At boot the table is not there yet: the unit loads the confirmed rules.
    client.ssh("systemctl stop airgap-firewall.service")
    assert member.run(["nft", "list", "table", "inet", "airgap"]).returncode == 0, "stopping the unit keeps them"
    assert member.run(["nft", "delete", "table", "inet", "airgap"]).returncode == 0
    client.ssh("systemctl start airgap-firewall.service")
    assert member.run(["nft", "-s", "list", "table", "inet", "airgap"], capture_output=True, text=True).stdout == listed
    assert client.ssh("systemctl is-enabled airgap-firewall.service", check=False).stdout.strip() == "enabled"
    assert not any(reachable(member).values())
    assert dockerd.pull(f"{address('registry')}:5443/docker.io/library/alpine:3.19").returncode == 0


def test_rules_that_would_cut_ssh_roll_back_by_themselves(env: Env) -> None:
    confirmed = {name: status(host)[1] for name, host in env.hosts.items()}
    failed = up(env.work, env.admin, lockdown_stack(adminAddresses=["10.77.0.99"]))
    # The first confirmation that cannot get through fails the run, saying why, once its host has
    # put its previous rules back; as with `pulumi up`, nothing starts after a failure.
    assert failed["error"] is not None and "would cut SSH from the admin machine" in failed["error"]
    confirms = [e for e in failed["log"] if e["name"].endswith("-confirm")]
    assert confirms and all(e["exit_status"] == 1 for e in confirms)
    for confirm in confirms:
        assert "ssh: connect to host" in confirm["stderr"] and "timed out" in confirm["stderr"]
        assert "they take SSH only from 10.77.0.99: network.adminAddresses" in confirm["stderr"]
        assert "rolled-back" in confirm["stderr"] and "not confirmed in time" in confirm["stderr"]
        assert confirm["seconds"] < 10 + ROLLBACK + 30, "it waits out the rollback, no longer"
    # Every host the new rules reached reverts by itself, confirmation tried or not.
    for name, host in env.hosts.items():
        def reverted(host: SandboxHost = host) -> bool:
            now = host.ssh("/usr/local/sbin/airgap-firewall status", check=False)  # a new connection each time
            return now.returncode == 0 and now.stdout.split()[0] == "rolled-back"
        assert wait_for(reverted, ROLLBACK + 20), name
        assert status(host)[1] != confirmed[name], "the rolled-back rules are the new ones"
        ssh_sources = env.members[name].run(["nft", "list", "set", "inet", "airgap", "ssh_v4"], capture_output=True,
                                            text=True).stdout
        assert ADMIN in ssh_sources and "10.77.0.99" not in ssh_sources, "the confirmed rules are back"
    fixed = up(env.work, env.admin, env.config)
    assert fixed["error"] is None, fixed["error"]
    assert {name: status(host)[:2] for name, host in env.hosts.items()} == {
        name: ["confirmed", token] for name, token in confirmed.items()}


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(1)
    return predicate()


def test_taking_a_host_out_removes_exactly_our_table(env: Env) -> None:
    out = lockdown_stack(optOut={"client": "a workstation the admins manage by hand"})
    applied = up(env.work, env.admin, out)
    assert applied["error"] is None, applied["error"]
    assert [s["name"] for s in applied["steps"] if s["action"] == "delete"] == [
        "network-lockdown-client", "network-lockdown-client-confirm"]
    assert tables(env, "client") == ["table ip docker-like"]
    assert all(reachable(env.members["client"]).values()), "the client reaches the internet again"
    assert not any(reachable(env.members["mirror"]).values()), "the others stay locked down"
    assert applied["exports"]["networkAudit"]["client"] == {"lockdown": "off",
                                                            "reason": "a workstation the admins manage by hand"}
    leftover = env.hosts["client"].ssh("ls /etc/airgap/firewall /usr/local/sbin/airgap-firewall", check=False)
    assert leftover.returncode != 0, leftover.stdout
