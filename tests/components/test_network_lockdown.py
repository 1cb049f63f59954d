"""NetworkLockdown and NetworkAudit under the mock runtime: one apply step and one confirmation
per locked-down host, the confirmation run from the admin machine after the apply with the key
as a secret on stdin, every component waiting for the lockdown, nothing for opted-out hosts but
their reasons, and the audit's output."""

from __future__ import annotations

import hashlib
import re

from components.render import firewall as render
from offline.program import ProgramRun, is_secret, plain_parts, run_program
from offline.stackfile import load_stack


def program(stack: str) -> ProgramRun:
    return run_program(load_stack(stack)).raise_error()


def test_each_locked_down_host_gets_its_rules_and_a_confirmation_after_them():
    run = program("prod")
    applied = {r.name: r for r in run.by_type("command:remote:Command") if r.name.startswith("network-lockdown-")}
    confirms = {r.name: r for r in run.by_type("command:local:Command") if r.name.startswith("network-lockdown-")}
    assert sorted(applied) == ["network-lockdown-chat", "network-lockdown-registry"]
    assert sorted(confirms) == ["network-lockdown-chat-confirm", "network-lockdown-registry-confirm"]
    for name, step in applied.items():
        inputs = plain_parts(step.inputs)
        token = re.search(r"^/usr/local/sbin/airgap-firewall apply ([0-9a-f]{16}) 60$", inputs["create"], re.M)
        assert token, name
        assert "sudo -n bash" in inputs["create"], "prod's hosts log in as deploy and run steps through sudo"
        assert "airgap-firewall remove" in inputs["delete"] and "flush" not in inputs["delete"]
        confirm = confirms[f"{name}-confirm"]
        assert step.urn in confirm.dependencies, "the confirmation runs after the rules are loaded"
        assert is_secret(confirm.inputs["stdin"]), "the SSH key reaches the confirmation as a secret"
        script = plain_parts(confirm.inputs)["create"]
        assert f"RULES={token.group(1)}\n" in script and "SUDO='sudo -n '\n" in script
        assert "PRIVATE KEY" not in script
        assert "BASTION_ADDRESS=10.40.0.5\n" in script, "a host behind the bastion is reached through it"


def test_every_component_waits_for_the_lockdown():
    run = program("dev")
    lockdown = {r.urn for r in run.records if r.name.startswith("network-lockdown-")}
    registry = next(r for r in run.records if r.type == "airgap:index:Registry")
    assert lockdown <= set(registry.dependencies)


def test_opted_out_hosts_get_nothing_but_their_reason():
    run = program("sandbox")
    component = next(r for r in run.records if r.type == "airgap:index:NetworkLockdown")
    assert [r.name for r in run.records if r.parent == component.urn] == []
    reason = "sandbox host in this machine's own network namespace"
    assert component.inputs["managedHosts"] == {
        name: {"address": address, "lockdown": False, "optOut": reason}
        for name, address in (("client", "127.0.0.13"), ("mirror", "127.0.0.12"), ("registry", "127.0.0.11"))}
    assert run.exports["networkAudit"] == {name: {"lockdown": "off", "reason": reason}
                                           for name in ("client", "mirror", "registry")}


def test_the_rules_a_plan_shows_are_the_rules_the_host_gets():
    run = program("dev")
    step = plain_parts(run.named("network-lockdown-airgap").inputs)["create"]
    rules = step.split("airgap_install_file /etc/airgap/firewall/rules.nft 0644 root:root rules <<'AIRGAP_EOF'\n")[1]
    rules = rules.split("\nAIRGAP_EOF\n")[0] + "\n"
    assert "transfer-mirror.dev.example.internal . tcp . 5000  registry fill: docker.io, quay.io" in rules
    assert '10.20.0.2 . udp . 53 comment "network.dns",' in rules
    token = re.search(r"airgap-firewall apply ([0-9a-f]{16})", step)
    assert token is not None
    names = step.split("airgap_install_file /etc/airgap/firewall/names 0644 root:root rules <<'AIRGAP_EOF'\n")[1]
    names = names.split("\nAIRGAP_EOF\n")[0] + "\n"
    assert hashlib.sha256((rules + names).encode()).hexdigest()[:16] == token.group(1), \
        "the host checks its files against the token the confirmation names"
    assert render.PROGRAM in step
