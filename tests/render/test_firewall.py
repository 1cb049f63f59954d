"""Egress lockdown renderers: tables of endpoints → rules, names, probes and steps; then the rules
of every shipped stack through nft itself (checked, loaded in a namespace of their own and read
back element by element), the unit through systemd-analyze, the scripts through sh and bash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from components import egress
from components.egress import Endpoint
from components.network_lockdown import lockdown_spec
from components.render import firewall as render
from components.render.shell import step_script
from components.render.ssh_read import Hop
from offline.stackfile import load_stack
from tests.components.settings.stack_edits import loaded_settings

NFT = shutil.which("nft")
needs_nft = pytest.mark.skipif(NFT is None or os.geteuid() != 0,
                               reason="nft (Debian: nftables) and root, for a network namespace of its own")

CLIENT = render.Lockdown(
    host="client",
    egress=(
        Endpoint("10.77.0.12", "tcp", 8443, "mirror clients", "apt mirror"),
        Endpoint("10.77.0.12", "tcp", 8444, "mirror clients", "rpm mirror"),
        Endpoint("10.77.0.11", "tcp", 5443, "registry clients", "registry"),
        Endpoint("10.77.0.0/24", "tcp", 8443, "network.allow", "the lan's proxies"),
        Endpoint("fd77::11", "tcp", 5443, "registry clients", "registry"),
        Endpoint("10.77.0.53", "udp", 53, "network.dns"),
        Endpoint("10.77.0.53", "tcp", 53, "network.dns"),
        Endpoint("transfer.corp.example", "tcp", 5000, "registry fill", "docker.io"),
        Endpoint("transfer.corp.example", "tcp", 5000, "registry fill", "quay.io"),
    ),
    ssh_sources=("10.77.0.1", "fd77::/64"),
    container_networks=("172.17.0.0/16", "fd00:d0c::/64"),
)


def element_lines(rules: str, set_name: str) -> list[str]:
    block = rules.split(f"set {set_name} {{", 1)[1].split("\n    }", 1)[0]
    return [line.strip() for line in block.splitlines() if " comment " in line]


def test_one_element_per_destination_with_what_needs_it():
    rules = render.ruleset(CLIENT)
    assert element_lines(rules, "egress_v4") == [
        '10.77.0.0/24 . tcp . 8443 comment "network.allow: the lan\'s proxies; mirror clients: apt mirror",',
        '10.77.0.11 . tcp . 5443 comment "registry clients: registry",',
        '10.77.0.12 . tcp . 8444 comment "mirror clients: rpm mirror",',
        '10.77.0.53 . tcp . 53 comment "network.dns",',
        '10.77.0.53 . udp . 53 comment "network.dns",',
    ], "a block swallows what it holds (interval sets refuse overlaps); the label goes with it"
    assert element_lines(rules, "egress_v6") == ['fd77::11 . tcp . 5443 comment "registry clients: registry",']
    assert element_lines(rules, "containers_v4") == ['172.17.0.0/16 comment "network.containerNetworks",']
    assert element_lines(rules, "ssh_v6") == ['fd77::/64 comment "network.adminAddresses",']
    assert "#   transfer.corp.example . tcp . 5000  registry fill: docker.io, quay.io" in rules
    assert "transfer.corp.example" not in rules.split("table inet airgap {", 1)[1], "names are resolved on the host"


def test_the_table_replaces_only_itself_and_drops_by_default():
    rules = render.ruleset(CLIENT)
    assert rules.splitlines()[-1] == "}"
    assert "table inet airgap\ndelete table inet airgap\n\ntable inet airgap {" in rules
    assert "flush" not in rules, "never `flush ruleset`: Docker's and kube-proxy's tables stay"
    for chain, counter in (("output", "egress_dropped"), ("forward", "forward_dropped")):
        body = rules.split(f"chain {chain} {{", 1)[1].split("\n    }", 1)[0]
        assert f"hook {chain} priority filter; policy drop;" in body
        assert body.splitlines()[-1].strip() == f'counter name "{counter}" drop'
    assert "\t" not in rules, "spaces only: the plan shows the rules as a block"


def test_ssh_is_filtered_only_with_admin_addresses():
    assert "chain input" in render.ruleset(CLIENT)
    assert "tcp sport 22 ip daddr @ssh_v4 accept" in render.ruleset(CLIENT), "replies of sessions conntrack met late"
    open_ssh = render.ruleset(render.Lockdown(host="x", egress=CLIENT.egress))
    assert "chain input" not in open_ssh and "ssh_dropped" not in open_ssh
    assert "tcp sport 22 accept" in open_ssh
    other_port = render.ruleset(render.Lockdown(host="x", egress=(), ssh_port=2222, ssh_sources=("10.0.0.1",)))
    assert "tcp dport 2222 ip saddr @ssh_v4 accept" in other_port


@pytest.mark.parametrize("labels,comment", [
    (["a: x", "a: y", "b"], "a: x, y; b"),
    (['allow: the "proxy"\\n'], "allow: the 'proxy''n"),
    ([f"allow: {'x' * 200}"], f"allow: {'x' * 110}..."),
])
def test_comments_are_short_and_never_quote(labels, comment):
    assert render._comment(labels) == comment
    assert len(render._comment(labels).encode()) <= render.COMMENT_BYTES


def test_names_are_resolved_on_the_host_from_their_own_file():
    names = render.names_file(CLIENT).splitlines()
    assert names[0].startswith("# name protocol port")
    assert names[1:] == ["transfer.corp.example tcp 5000 registry fill: docker.io, quay.io"]


def test_probes_skip_what_the_host_may_reach_and_probe_what_it_needs():
    probes = json.loads(render.probes(CLIENT, ["10.77.0.40:8443/tcp", "10.77.0.40:8443/udp", "8.8.8.8:53/udp",
                                               "transfer.corp.example:5000/tcp", "[fd77::11]:5443/tcp"], 3))
    assert probes["mustFail"] == ["10.77.0.40:8443/udp", "8.8.8.8:53/udp"]
    assert [s["probe"] for s in probes["skipped"]] == ["10.77.0.40:8443/tcp", "transfer.corp.example:5000/tcp",
                                                      "[fd77::11]:5443/tcp"]
    assert "network.allow: the lan's proxies" in probes["skipped"][0]["why"]
    answer = {item["probe"]: item["needed_by"] for item in probes["mustAnswer"]}
    assert answer["10.77.0.12:8443/tcp"] == "mirror clients: apt mirror", "folded into a block, still probed"
    assert answer["[fd77::11]:5443/tcp"] == "registry clients: registry"
    assert answer["transfer.corp.example:5000/tcp"] == "registry fill: docker.io, quay.io"
    assert not [probe for probe in answer if "/24" in probe], "a block cannot be probed"


def test_the_token_names_the_rules_and_the_names():
    token = render.commit_token(CLIENT)
    assert len(token) == 16
    assert render.commit_token(render.Lockdown(host="client", egress=CLIENT.egress[:-1],
                                               ssh_sources=CLIENT.ssh_sources,
                                               container_networks=CLIENT.container_networks)) != token
    body = render.install_lines(CLIENT, must_fail=["8.8.8.8:53/udp"], timeout=3, schedule="hourly",
                                rollback_seconds=45)
    assert body.splitlines()[-1] == f"/usr/local/sbin/airgap-firewall apply {token} 45"


def test_steps_and_scripts_parse(tmp_path):
    body = render.install_lines(CLIENT, must_fail=["8.8.8.8:53/udp"], timeout=3, schedule="hourly",
                                rollback_seconds=45)
    for name, text, shell in [
        ("install", step_script(body), "bash"),
        ("remove", step_script(render.remove_lines()), "bash"),
        ("confirm", render.confirm_script(Hop("10.0.0.5", 22, "root", "ssh-ed25519 AAAA"), host="client",
                                          token="0" * 16, armed="armed x y", rollback_seconds=60,
                                          ssh_sources=("10.0.0.1",), sudo=True,
                                          bastion=Hop("10.0.0.2", 2222, "jump", "ssh-ed25519 BBBB")), "sh"),
        ("audit", render.audit_command(CLIENT, must_fail=["8.8.8.8:53/udp"], timeout=3, sudo=False), "sh"),
    ]:
        path = tmp_path / name
        path.write_text(text)
        result = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_the_audit_command_carries_its_probes_quoted():
    command = render.audit_command(CLIENT, must_fail=["8.8.8.8:53/udp"], timeout=3, sudo=True)
    shown = subprocess.run(["sh", "-c", command.split("set --", 1)[0] + 'printf "%s" "$PROBES"'],
                           capture_output=True, text=True, check=True).stdout
    assert json.loads(shown) == json.loads(render.probes(CLIENT, ["8.8.8.8:53/udp"], 3))
    assert "SUDO=yes" in command


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or NFT is None,
                    reason="systemd-analyze and nft (it looks up ExecStart on this machine)")
def test_the_boot_unit_verifies(tmp_path):
    unit = tmp_path / render.UNIT
    unit.write_text(render.unit())
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "PartOf=nftables.service" in render.unit(), "restarting nftables.service (flush ruleset) reloads ours"


def shipped_specs() -> list[render.Lockdown]:
    """The lockdown of every locked-down host of the shipped stacks, and CLIENT."""
    found = []
    for stack in ("dev", "prod"):
        settings = loaded_settings(load_stack(stack))
        found += [lockdown_spec(settings, host) for host in egress.locked_down_hosts(settings)]
    return [*found, CLIENT]


@needs_nft
@pytest.mark.parametrize("spec", shipped_specs(), ids=lambda spec: spec.host)
def test_nft_loads_the_rules_and_reads_back_every_element(spec, tmp_path):
    rules = tmp_path / "rules.nft"
    rules.write_text(render.ruleset(spec))
    # A network namespace of its own: the machine's ruleset is never touched.
    script = f"nft -c -f {rules} && nft -f {rules} && nft -f {rules} && nft -j list table inet airgap"
    result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)["nftables"]
    sets = {item["set"]["name"]: item["set"].get("elem", []) for item in listed if "set" in item}
    loaded = {(s, json.dumps(e, sort_keys=True)) for s, elems in sets.items() for e in elems}
    for element in render.elements(spec.egress):
        version = element.network.version
        assert any(s == f"egress_v{version}" and element.address.split("/")[0] in e and str(element.port) in e
                   and json.dumps(render._comment(element.labels))[1:-1] in e for s, e in loaded), element
    chains = {item["chain"]["name"]: item["chain"] for item in listed if "chain" in item}
    assert chains["output"]["policy"] == chains["forward"]["policy"] == "drop"
