"""A host's egress lockdown as text: the nftables rules, the names resolved on the host, the boot
unit, the probes of its audit, and the steps that apply, confirm and remove it (no Pulumi here).

The rules are one table of our own, `inet airgap` (IPv4 and IPv6), that a reload replaces as a
whole and nothing else: `table inet airgap` + `delete table inet airgap` + the table, in one
transaction, never `flush ruleset` (which would take Docker's and kube-proxy's rules with it). It
hooks output (the host's own traffic) and forward (its containers'), both `policy drop`, each
accepting loopback, replies, the host's containers and the destinations of named sets:
`egress_v4`/`egress_v6`, one element a line with what needs it, and `named_v4`/`named_v6`, which
the host fills from the names it resolves; with admin addresses, an input chain takes SSH only
from them. Every drop is counted. Netfilter runs every base chain of every table: an accept here is not final for
Docker's chains, nor theirs for ours.

Applying is a "commit confirmed" (programs/firewall/airgap-firewall.sh): the step loads the rules
with a rollback armed; a fresh SSH connection from the admin machine (programs/firewall/confirm.sh)
confirms them; unconfirmed, they revert by themselves after `rollback_seconds`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..egress import Endpoint, is_address
from . import programs
from .shell import put_file, q
from .ssh_read import Hop
from .systemd import remove_scheduled_lines, scheduled_lines

CONF = "/etc/airgap/firewall"
STATE = "/var/lib/airgap/network"
PROGRAM = "/usr/local/sbin/airgap-firewall"
AUDIT_PROGRAM = "/usr/local/lib/airgap/network-audit.py"
UNIT = "airgap-firewall.service"
AUDIT_UNIT = "airgap-network-audit"
REPORT = f"{STATE}/audit.json"
COMMENT_BYTES = 120  # nft keeps at most 128 bytes of a comment

FIREWALL_PROGRAM = programs.load("firewall/airgap-firewall.sh")
AUDIT = programs.load("firewall/network_audit.py")
# IPv6 needs neighbour discovery (and the multicast reports it relies on) to reach anything at all.
ICMPV6_NEEDED = "nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert, mld2-listener-report"


@dataclass(frozen=True)
class Lockdown:
    """Everything the rules of one host are made from."""

    host: str
    egress: tuple[Endpoint, ...]
    """Where the host may go (addresses and blocks become set elements, names go to the names file)."""
    ssh_port: int = 22
    ssh_sources: tuple[str, ...] = ()
    """Where SSH may come from; empty: anywhere (no input chain)."""
    container_networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Element:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    protocol: str
    port: int
    labels: tuple[str, ...]

    @property
    def address(self) -> str:
        single = self.network.prefixlen == self.network.max_prefixlen
        return str(self.network.network_address) if single else str(self.network)


def _comment(labels: Iterable[str]) -> str:
    """What needs an element, for its comment: `component: detail, detail; component`, short and
    without quotes."""
    grouped: dict[str, list[str]] = {}
    for label in labels:
        component, _, detail = label.partition(": ")
        details = grouped.setdefault(component, [])
        if detail and detail not in details:
            details.append(detail)
    text = "; ".join(f"{c}: {', '.join(d)}" if d else c for c, d in grouped.items())
    text = "".join(ch if ch.isprintable() and ch not in '"\\' else "'" for ch in text)
    encoded = text.encode()
    return text if len(encoded) <= COMMENT_BYTES else encoded[:COMMENT_BYTES - 3].decode(errors="ignore") + "..."


def elements(endpoints: Iterable[Endpoint]) -> list[Element]:
    """One element per destination (address or block, protocol, port), those a block already
    covers folded into it, every label kept; in address order."""
    merged: dict[tuple, list[str]] = {}
    for endpoint in endpoints:
        if not is_address(endpoint.address):
            continue
        key = (ipaddress.ip_network(endpoint.address, strict=False), endpoint.protocol, endpoint.port)
        merged.setdefault(key, []).append(endpoint.label)
    # Interval sets refuse overlapping elements: a block swallows what it contains.
    kept: dict[tuple, list[str]] = {}
    for key in sorted(merged, key=lambda k: k[0].prefixlen):  # the widest blocks first
        network, protocol, port = key
        holder = next((k for k in kept if k[1:] == key[1:] and k[0].version == network.version
                       and network.subnet_of(k[0])), None)
        kept.setdefault(holder or key, []).extend(merged[key])
    found = [Element(network, protocol, port, tuple(labels)) for (network, protocol, port), labels in kept.items()]
    return sorted(found, key=lambda e: (e.network.version, e.network, e.protocol, e.port))


def named(endpoints: Iterable[Endpoint]) -> list[tuple[str, str, int, str]]:
    """(name, protocol, port, comment) of the destinations named by DNS, merged like `elements`."""
    merged: dict[tuple[str, str, int], list[str]] = {}
    for endpoint in endpoints:
        if not is_address(endpoint.address):
            merged.setdefault((endpoint.address, endpoint.protocol, endpoint.port), []).append(endpoint.label)
    return [(name, protocol, port, _comment(labels)) for (name, protocol, port), labels in sorted(merged.items())]


def _set(name: str, kind: str, members: Sequence[tuple[str, str]]) -> str:
    lines = [f"    set {name} {{", f"        type {kind}", "        flags interval"]
    if members:
        lines.append("        elements = {")
        lines += [f'            {member} comment "{comment}",' for member, comment in members]
        lines.append("        }")
    lines.append("    }")
    return "\n".join(lines)


def _networks(texts: Iterable[str], version: int) -> list[str]:
    """The addresses and blocks of one IP version, sorted, without those another one holds."""
    found = sorted({n for n in (ipaddress.ip_network(t, strict=False) for t in texts) if n.version == version},
                   key=lambda n: n.prefixlen)  # the widest blocks first
    kept: list = []
    for network in found:
        if not any(network.subnet_of(other) for other in kept):
            kept.append(network)
    return [str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n) for n in sorted(kept)]


def ruleset(spec: Lockdown) -> str:
    """The nftables rules of one host: its own table, replaced whole at every load."""
    allowed = elements(spec.egress)
    by_version = {version: [(f"{e.address} . {e.protocol} . {e.port}", _comment(e.labels))
                             for e in allowed if e.network.version == version] for version in (4, 6)}
    names = named(spec.egress)
    header = [
        "#!/usr/sbin/nft -f",
        f"# Egress lockdown of host {spec.host!r} (airgap-infra, network settings): what leaves this host, or",
        "# its containers, goes to the destinations below and nowhere else; every drop is counted.",
        "# Loading this file replaces the table inet airgap and nothing else.",
    ]
    if names:
        header.append(f"# Reached by name: resolved on the host when the rules load ({CONF}/names), into named_v4/v6:")
        header += [f"#   {name} . {protocol} . {port}  {comment}" for name, protocol, port, comment in names]
    sets = [
        _set("egress_v4", "ipv4_addr . inet_proto . inet_service", by_version[4]),
        _set("egress_v6", "ipv6_addr . inet_proto . inet_service", by_version[6]),
        _set("named_v4", "ipv4_addr . inet_proto . inet_service", []),
        _set("named_v6", "ipv6_addr . inet_proto . inet_service", []),
        _set("containers_v4", "ipv4_addr", [(n, "network.containerNetworks")
                                            for n in _networks(spec.container_networks, 4)]),
        _set("containers_v6", "ipv6_addr", [(n, "network.containerNetworks")
                                            for n in _networks(spec.container_networks, 6)]),
    ]
    counters = ["egress_dropped", "forward_dropped"]
    # What our sshd sends: a session opened before conntrack ran in this namespace (the very one
    # that loads these rules, the first time) shows up as "new" and would hang until the rollback.
    ssh_replies = ([f'        tcp sport {spec.ssh_port} ip daddr @ssh_v4 accept comment "our SSH server\'s replies"',
                    f'        tcp sport {spec.ssh_port} ip6 daddr @ssh_v6 accept comment "our SSH server\'s replies"']
                   if spec.ssh_sources else
                   [f'        tcp sport {spec.ssh_port} accept comment "our SSH server\'s replies"'])
    chains = [
        "    chain output {",
        "        type filter hook output priority filter; policy drop;",
        '        oif "lo" accept',
        "        ct state established,related accept",
        *ssh_replies,
        '        ip daddr @containers_v4 accept comment "the host\'s own containers"',
        '        ip6 daddr @containers_v6 accept comment "the host\'s own containers"',
        "        ip daddr . meta l4proto . th dport @egress_v4 accept",
        "        ip6 daddr . meta l4proto . th dport @egress_v6 accept",
        "        ip daddr . meta l4proto . th dport @named_v4 accept",
        "        ip6 daddr . meta l4proto . th dport @named_v6 accept",
        f'        icmpv6 type {{ {ICMPV6_NEEDED} }} accept comment "IPv6 neighbour discovery"',
        '        udp sport 68 udp dport 67 accept comment "DHCP: the host keeps its lease"',
        '        udp sport 546 udp dport 547 accept comment "DHCPv6"',
        '        counter name "egress_dropped" drop',
        "    }",
        "",
        "    chain forward {",
        "        type filter hook forward priority filter; policy drop;",
        "        ct state established,related accept",
        '        ct status dnat accept comment "published ports, services (Docker, kube-proxy)"',
        '        ip saddr @containers_v4 ip daddr @containers_v4 accept comment "between containers"',
        '        ip6 saddr @containers_v6 ip6 daddr @containers_v6 accept comment "between containers"',
        "        ip daddr . meta l4proto . th dport @egress_v4 accept",
        "        ip6 daddr . meta l4proto . th dport @egress_v6 accept",
        "        ip daddr . meta l4proto . th dport @named_v4 accept",
        "        ip6 daddr . meta l4proto . th dport @named_v6 accept",
        '        counter name "forward_dropped" drop',
        "    }",
    ]
    if spec.ssh_sources:
        counters.append("ssh_dropped")
        sets += [
            _set("ssh_v4", "ipv4_addr", [(n, "network.adminAddresses") for n in _networks(spec.ssh_sources, 4)]),
            _set("ssh_v6", "ipv6_addr", [(n, "network.adminAddresses") for n in _networks(spec.ssh_sources, 6)]),
        ]
        chains += [
            "",
            "    chain input {",
            "        type filter hook input priority filter; policy accept;",
            '        iif "lo" accept',
            "        ct state established,related accept",
            f"        tcp dport {spec.ssh_port} ip saddr @ssh_v4 accept",
            f"        tcp dport {spec.ssh_port} ip6 saddr @ssh_v6 accept",
            f'        tcp dport {spec.ssh_port} counter name "ssh_dropped" drop '
            'comment "SSH only from network.adminAddresses"',
            "    }",
        ]
    body = [*(f"    counter {name} {{\n    }}" for name in counters), *sets, "", *chains]
    return "\n".join([*header, "table inet airgap", "delete table inet airgap", "", "table inet airgap {",
                      "\n".join(body), "}", ""])


def names_file(spec: Lockdown) -> str:
    """The names the host resolves when the rules load: `name protocol port what needs it`."""
    lines = ["# name protocol port what-needs-it: resolved when the rules load (airgap-firewall apply)"]
    lines += [f"{name} {protocol} {port} {comment}" for name, protocol, port, comment in named(spec.egress)]
    return "\n".join(lines) + "\n"


def commit_token(spec: Lockdown) -> str:
    """Names one version of a host's rules: the host checks that its rules and names files hash to it."""
    return hashlib.sha256((ruleset(spec) + names_file(spec)).encode()).hexdigest()[:16]


def unit() -> str:
    """Loads the confirmed rules at boot, before the network comes up; restarted with nftables.service
    (whose /etc/nftables.conf flushes the whole ruleset), so a restart of either keeps them."""
    return f"""[Unit]
Description=airgap-infra egress lockdown (nftables table inet airgap)
DefaultDependencies=no
Wants=network-pre.target
Before=network-pre.target shutdown.target
After=nftables.service
PartOf=nftables.service
Conflicts=shutdown.target
ConditionPathExists={CONF}/active.nft

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f {CONF}/active.nft
ExecReload=/usr/sbin/nft -f {CONF}/active.nft

[Install]
WantedBy=sysinit.target
"""


def probes(spec: Lockdown, must_fail: Sequence[str], timeout: int) -> str:
    """What the audit probes on this host (JSON): the must-fail endpoints (those this host may reach
    skipped, with why), and its own endpoints, which must answer."""
    allowed = elements(spec.egress)
    names = {(name, protocol, port): comment for name, protocol, port, comment in named(spec.egress)}
    fail, skipped = [], []
    for probe in must_fail:
        host, port, protocol = _split_probe(probe)
        covering = names.get((host, protocol, port)) if not is_address(host) else next(
            (_comment(e.labels) for e in allowed if e.protocol == protocol and e.port == port
             and e.network.version == ipaddress.ip_address(host).version
             and ipaddress.ip_address(host) in e.network), None)
        if covering is None:
            fail.append(probe)
        else:
            skipped.append({"probe": probe, "why": f"this host may reach it: {covering}"})
    single: dict[tuple[str, str, int], list[str]] = {}
    for endpoint in spec.egress:  # each address or name of its own (a block cannot be probed)
        if not is_address(endpoint.address) or "/" not in endpoint.address:
            single.setdefault((endpoint.address, endpoint.protocol, endpoint.port), []).append(endpoint.label)
    answer = [{"probe": _probe_text(address, port, protocol), "needed_by": _comment(labels)}
              for (address, protocol, port), labels in single.items()]
    return json.dumps({"host": spec.host, "timeout": timeout, "mustFail": fail, "mustAnswer": answer,
                       "skipped": skipped}, indent=1, sort_keys=True) + "\n"


def _split_probe(probe: str) -> tuple[str, int, str]:
    where, _, protocol = probe.rpartition("/")
    host, _, port = where.rpartition(":")
    return host.strip("[]"), int(port), protocol


def _probe_text(host: str, port: int, protocol: str) -> str:
    return f"[{host}]:{port}/{protocol}" if ":" in host else f"{host}:{port}/{protocol}"


def install_lines(spec: Lockdown, *, must_fail: Sequence[str], timeout: int, schedule: str,
                  rollback_seconds: int) -> str:
    """The lockdown step: program, unit, rules, names and probes in place, the audit's timer, then
    the rules loaded with their rollback armed (stdout: `armed TOKEN ARMING` or `confirmed TOKEN`)."""
    rules, names = ruleset(spec), names_file(spec)
    audit = ["/usr/bin/python3", AUDIT_PROGRAM, "--probes-file", f"{CONF}/probes.json", "--report", REPORT]
    return "\n".join([
        put_file(PROGRAM, FIREWALL_PROGRAM, mode="0755", tag="program"),
        put_file(AUDIT_PROGRAM, AUDIT, tag="program"),
        put_file(f"/etc/systemd/system/{UNIT}", unit(), tag="units"),
        f"install -d -m 0755 {q(CONF)}",
        put_file(f"{CONF}/rules.nft", rules, tag="rules"),
        put_file(f"{CONF}/names", names, tag="rules"),
        put_file(f"{CONF}/probes.json", probes(spec, must_fail, timeout), tag="probes"),
        scheduled_lines(AUDIT_UNIT, f"airgap-infra network audit of {spec.host}", audit, schedule),
        f"{q(PROGRAM)} apply {q(commit_token(spec))} {int(rollback_seconds)}",
    ])


def remove_lines() -> str:
    """The lockdown gone: our table (and nothing else), units, program and files."""
    return "\n".join([
        f"if [ -x {q(PROGRAM)} ]; then {q(PROGRAM)} remove; "
        "elif nft list table inet airgap >/dev/null 2>&1; then nft delete table inet airgap; fi",
        remove_scheduled_lines(AUDIT_UNIT),
        f"rm -f {q(PROGRAM)} {q(AUDIT_PROGRAM)} {q('/etc/systemd/system/' + UNIT)}",
    ])


def confirm_script(target: Hop, *, host: str, token: str, armed: str, rollback_seconds: int,
                   ssh_sources: Sequence[str], sudo: bool, bastion: Hop | None = None,
                   connect_timeout: int = 10) -> str:
    """The confirmation, run on the admin machine (programs/firewall/confirm.sh); the SSH key arrives
    on stdin."""
    known = [_known_host(target)] + ([_known_host(bastion)] if bastion else [])
    return programs.with_settings(
        "firewall/confirm.sh", HOST=host, ADDRESS=target.address, PORT=target.port, LOGIN=target.user,
        KNOWN_HOSTS="\n".join(known), BASTION_ADDRESS=bastion.address if bastion else "",
        BASTION_PORT=bastion.port if bastion else 22, BASTION_LOGIN=bastion.user if bastion else "",
        RULES=token, ARMED=armed.strip(), ROLLBACK=rollback_seconds, CONNECT_TIMEOUT=connect_timeout,
        SUDO="sudo -n " if sudo else "", SSH_FROM=", ".join(ssh_sources) or "anywhere")


def _known_host(hop: Hop) -> str:
    name = hop.address if hop.port == 22 else f"[{hop.address}]:{hop.port}"
    return f"{name} {hop.host_key}"


def audit_command(spec: Lockdown, *, must_fail: Sequence[str], timeout: int, sudo: bool) -> str:
    """The audit as one remote command (programs/firewall/audit.sh): this run's probes, the report
    on stdout as one JSON line."""
    return programs.with_settings("firewall/audit.sh", PROBES=probes(spec, must_fail, timeout),
                                  SUDO="yes" if sudo else "")
