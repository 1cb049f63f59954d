"""The rendered lockdown doing its job in network namespaces (tests/harness/lan.py): a host, its
"container" behind a Docker-like bridge, an admin machine and an "internet" with TCP and UDP echo
on IPv4 and IPv6. The host lets out exactly what its rules allow, its container the same, SSH
comes only from the admin, published ports still work through a Docker-like NAT table that a
reload never touches; the host program applies, confirms, rolls back and removes; the audit
reports what it sees. No packet leaves the namespaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.egress import Endpoint
from components.render import firewall as render
from tests.harness.lan import EchoServer, Lan, LanMember, attach_container, reaches

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None,
                                reason="root, nft (Debian: nftables) and ip, for network namespaces")

ALLOWED, OTHER = 7, 9  # echo ports on the internet: one the rules allow (per family and protocol), one not
# Docker's own way into and out of its containers: masquerade out, a published port in.
DOCKER_LIKE = """\
table inet dockerlike {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "eth0" masquerade
    }
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "eth0" tcp dport 8080 dnat ip to 172.17.0.2:7
    }
}
table inet other {
    chain input {
        type filter hook input priority filter - 10; policy accept;
        counter
    }
}
"""


@dataclass(frozen=True)
class Net:
    lan: Lan
    admin: LanMember
    internet: LanMember
    host: LanMember
    container: LanMember
    work: Path

    def nft(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = self.host.run(["nft", *args], capture_output=True, text=True)
        assert not check or result.returncode == 0, result.stderr
        return result

    def tables(self) -> list[str]:
        return sorted(self.nft("list", "tables").stdout.split("\n")[:-1])


def spec(internet: LanMember) -> render.Lockdown:
    return render.Lockdown(
        host="host",
        egress=(Endpoint(internet.address, "tcp", ALLOWED, "apt mirror", "upstream"),
                Endpoint(internet.address6, "udp", ALLOWED, "network.dns")),
        ssh_sources=("10.77.0.1",),
        container_networks=("172.17.0.0/16", "fd00:d0c::/64"),
    )


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    with Lan("fwr") as lan:
        admin, internet, host = lan.join("fwr-admin", 1), lan.join("fwr-internet", 2), lan.join("fwr-host", 11)
        container = lan.adopt(attach_container(host, "fwr-container"))
        for port in (ALLOWED, OTHER):
            EchoServer(internet, [internet.address, internet.address6], port)
        EchoServer(host, [host.address], 22)  # stands for sshd
        EchoServer(container, [container.address], ALLOWED)  # published as host:8080
        work = tmp_path_factory.mktemp("firewall")
        (work / "docker-like.nft").write_text(DOCKER_LIKE)
        result = host.run(["nft", "-f", str(work / "docker-like.nft")], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        yield Net(lan, admin, internet, host, container, work)
    assert lan.leftovers() == []


def load(net: Net, lockdown: render.Lockdown) -> None:
    rules = net.work / "rules.nft"
    rules.write_text(render.ruleset(lockdown))
    net.nft("-f", str(rules))


def destinations(net: Net) -> dict[tuple[str, int, str], bool]:
    """The internet's echo endpoints: both families, both ports, both protocols."""
    return {(address, port, protocol): False for address in (net.internet.address, net.internet.address6)
            for port in (ALLOWED, OTHER) for protocol in ("tcp", "udp")}


def answered(member: LanMember, net: Net) -> dict[tuple[str, int, str], bool]:
    """Which of the internet's echo endpoints answer `member` (probed all at once)."""
    keys = list(destinations(net))
    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        found = pool.map(lambda key: reaches(member, key[0], key[1], key[2], timeout=1), keys)
        return dict(zip(keys, found, strict=True))


def counter(net: Net, name: str) -> int:
    listed = json.loads(net.nft("-j", "list", "counter", "inet", "airgap", name).stdout)
    return next(item["counter"]["packets"] for item in listed["nftables"] if "counter" in item)


def test_the_host_lets_out_exactly_what_its_rules_allow(net: Net) -> None:
    assert all(answered(net.host, net).values()), "before the lockdown the host reaches the internet"
    load(net, spec(net.internet))
    allowed = {(net.internet.address, ALLOWED, "tcp"), (net.internet.address6, ALLOWED, "udp")}
    assert answered(net.host, net) == {key: key in allowed for key in destinations(net)}
    assert counter(net, "egress_dropped") > 0


def test_its_container_gets_the_same_through_the_forward_hook(net: Net) -> None:
    load(net, spec(net.internet))
    allowed = {(net.internet.address, ALLOWED, "tcp"), (net.internet.address6, ALLOWED, "udp")}
    assert answered(net.container, net) == {key: key in allowed for key in destinations(net)}
    assert counter(net, "forward_dropped") > 0
    assert reaches(net.internet, net.host.address, 8080), "a published port (Docker's DNAT) still answers"
    assert reaches(net.host, net.container.address, ALLOWED), "the host reaches its own containers"


def test_ssh_comes_only_from_the_admin_addresses(net: Net) -> None:
    load(net, spec(net.internet))
    assert reaches(net.admin, net.host.address, 22)
    before = counter(net, "ssh_dropped")
    assert not reaches(net.internet, net.host.address, 22)
    assert counter(net, "ssh_dropped") > before


def test_a_reload_replaces_our_table_and_nothing_else(net: Net) -> None:
    others = [t for t in net.tables() if t != "table inet airgap"]
    assert others == ["table inet dockerlike", "table inet other"]
    for _ in range(2):
        load(net, spec(net.internet))
        assert net.tables() == sorted([*others, "table inet airgap"])
    narrower = render.Lockdown(host="host", egress=spec(net.internet).egress[:1], ssh_sources=("10.77.0.1",))
    load(net, narrower)
    assert not reaches(net.host, net.internet.address6, ALLOWED, "udp"), "an element gone is gone"
    assert reaches(net.internet, net.host.address, 8080), "Docker's NAT still works"


# --- the host program: apply, confirm, rollback, remove ----------------------------------------------------

@dataclass(frozen=True)
class Program:
    net: Net
    conf: Path
    state: Path
    path: Path

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        env = {"PATH": os.environ["PATH"], "AIRGAP_FIREWALL_CONF": str(self.conf),
               "AIRGAP_FIREWALL_STATE": str(self.state)}
        return self.net.host.run([str(self.path), *args], capture_output=True, text=True, env=env)

    def write(self, lockdown: render.Lockdown) -> str:
        self.conf.mkdir(parents=True, exist_ok=True)
        (self.conf / "rules.nft").write_text(render.ruleset(lockdown))
        (self.conf / "names").write_text(render.names_file(lockdown))
        return render.commit_token(lockdown)

    def status(self) -> list[str]:
        return self("status").stdout.split()


@pytest.fixture
def program(net: Net, tmp_path: Path) -> Iterator[Program]:
    net.nft("delete", "table", "inet", "airgap", check=False)
    path = tmp_path / "airgap-firewall"
    path.write_text(render.FIREWALL_PROGRAM)
    path.chmod(0o755)
    yield Program(net, tmp_path / "conf", tmp_path / "state", path)
    net.nft("delete", "table", "inet", "airgap", check=False)


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_unconfirmed_rules_roll_back_by_themselves(program: Program, net: Net) -> None:
    first = program.write(spec(net.internet))
    applied = program("apply", first, "2")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.split()[:2] == ["armed", first]
    assert "table inet airgap" in net.tables()
    assert wait_for(lambda: program.status()[0] == "rolled-back", 10)
    assert "table inet airgap" not in net.tables(), "nothing was confirmed before: no table of ours"
    assert net.tables() == ["table inet dockerlike", "table inet other"]
    assert program("confirm", first).returncode == 3, "nothing armed: nothing to confirm"


def test_confirmed_rules_stay_and_the_confirmed_ones_come_back(program: Program, net: Net) -> None:
    first = program.write(spec(net.internet))
    assert program("apply", first, "2").returncode == 0
    assert program("confirm", first).stdout.strip() == f"confirmed {first}"
    time.sleep(3)
    assert program.status()[:2] == ["confirmed", first]
    assert reaches(net.host, net.internet.address6, ALLOWED, "udp")
    assert program("apply", first, "2").stdout.strip() == f"confirmed {first}", "nothing new: nothing armed"

    narrower = render.Lockdown(host="host", egress=spec(net.internet).egress[:1], ssh_sources=("10.77.0.1",))
    second = program.write(narrower)
    assert program("apply", second, "2").returncode == 0
    assert not reaches(net.host, net.internet.address6, ALLOWED, "udp")
    assert wait_for(lambda: program.status()[0] == "rolled-back", 10)
    assert reaches(net.host, net.internet.address6, ALLOWED, "udp"), "the confirmed rules are back"
    assert (program.conf / "active.nft").read_text().startswith(render.ruleset(spec(net.internet)))


def test_a_stale_or_unresolvable_apply_changes_nothing(program: Program, net: Net) -> None:
    token = program.write(spec(net.internet))
    refused = program("apply", "0" * 16, "2")
    assert refused.returncode == 1 and "the rules here are not 0000000000000000" in refused.stderr
    named = render.Lockdown(host="host", egress=(Endpoint("nowhere.invalid", "tcp", 443, "file server", "x"),))
    token = program.write(named)
    refused = program("apply", token, "2")
    assert refused.returncode == 1 and "nowhere.invalid does not resolve on this host" in refused.stderr
    assert "table inet airgap" not in net.tables()


def test_remove_takes_our_table_and_leaves_the_others(program: Program, net: Net) -> None:
    token = program.write(spec(net.internet))
    assert program("apply", token, "30").returncode == 0
    started = time.monotonic()
    assert program("confirm", token).returncode == 0
    assert time.monotonic() - started < 5, "the waiting rollback does not hold the lock the confirmation takes"
    removed = program("remove")
    assert removed.returncode == 0, removed.stderr
    assert net.tables() == ["table inet dockerlike", "table inet other"]
    assert not program.conf.exists()
    assert all(answered(net.host, net).values())


# --- the audit ------------------------------------------------------------------------------------------------

def audit(net: Net, lockdown: render.Lockdown) -> dict:
    v4, v6 = net.internet.address, f"[{net.internet.address6}]"
    must_fail = [f"{address}:{OTHER}/{protocol}" for address in (v4, v6) for protocol in ("tcp", "udp")]
    must_fail.append(f"{v4}:{ALLOWED}/tcp")
    probes = render.probes(lockdown, must_fail, 1)
    program = net.work / "network_audit.py"
    program.write_text(render.AUDIT)
    result = net.host.run(["python3", str(program), probes], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_audit_reports_the_leaks_and_then_the_isolation(net: Net) -> None:
    net.nft("delete", "table", "inet", "airgap", check=False)
    lockdown = spec(net.internet)
    open_host = audit(net, lockdown)
    assert open_host["ok"] is False and open_host["table"] == "absent"
    assert {e["probe"]: e["result"] for e in open_host["mustFail"]} == {
        f"{net.internet.address}:{OTHER}/tcp": "answered", f"{net.internet.address}:{OTHER}/udp": "answered",
        f"[{net.internet.address6}]:{OTHER}/tcp": "answered", f"[{net.internet.address6}]:{OTHER}/udp": "answered"}

    load(net, lockdown)
    locked = audit(net, lockdown)
    assert locked["failures"] == [] and locked["ok"] is True, locked["failures"]
    assert {e["result"] for e in locked["mustFail"]} == {"blocked", "no answer"}
    assert [e["probe"] for e in locked["skipped"]] == [f"{net.internet.address}:{ALLOWED}/tcp"]
    assert {e["probe"]: e["result"] for e in locked["mustAnswer"]} == {
        f"{net.internet.address}:{ALLOWED}/tcp": "answered", f"[{net.internet.address6}]:{ALLOWED}/udp": "not probed"}
    assert locked["dropped"]["egress_dropped"]["packets"] > 0
