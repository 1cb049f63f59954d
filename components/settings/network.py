"""`network`: each managed host's egress lockdown, who may open SSH to it, and the isolation audit.

Every host the stack runs steps on is locked down unless `optOut` names it with a reason: its own
nftables table allows what the stack says it uses (components/egress.py derives that) plus the
DNS, NTP and mail servers and the `allow` entries given here, and drops the rest. The audit
probes `audit.mustFail` (which must not answer) and the host's own allowed endpoints (which must).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Le, MaxLen
from pydantic import AfterValidator, Field, Strict
from pydantic.dataclasses import dataclass

from .addresses import host_address
from .fields import DNS_NAME, MODEL_CONFIG, Address, HostName, Pattern, Port
from .mirrors import OnCalendar
from .rules import GIVEN, Root, Rules, exactly_one, host_exists, only_with, required_if, unique

# Comments in the nftables rules carry reasons: printable, no quotes, short (nft allows 128 bytes).
Reason = Annotated[str, Pattern(r"[A-Za-z0-9][A-Za-z0-9 ,.;:()'/_+-]{9,99}",
                                "is not a reason; say why in 10 to 100 characters "
                                "(letters, digits, spaces and , . ; : ( ) ' / _ + -)")]
SERVICES = ("registry", "harbor", "aptMirror", "rpmMirror", "fileServer")

# Docker's default address pools: what its bridges (and Compose's) hand to containers.
DOCKER_POOLS = ("172.17.0.0/16", "172.18.0.0/15", "172.20.0.0/14", "172.24.0.0/13", "192.168.0.0/16")

# Public endpoints an isolated host must not reach: registries, package mirrors, Mattermost's
# push proxy, telemetry and services, and public DNS resolvers (by address: names need a resolver).
DEFAULT_MUST_FAIL = (
    "registry-1.docker.io:443/tcp", "quay.io:443/tcp", "ghcr.io:443/tcp", "gcr.io:443/tcp",
    "registry.k8s.io:443/tcp", "deb.debian.org:80/tcp", "security.debian.org:443/tcp",
    "push.mattermost.com:443/tcp", "pdat.matterlytics.com:443/tcp", "notices.mattermost.com:443/tcp",
    "api.integrations.mattermost.com:443/tcp", "securityupdatecheck.mattermost.com:443/tcp",
    "8.8.8.8:53/udp", "1.1.1.1:53/udp", "9.9.9.9:53/tcp", "[2001:4860:4860::8888]:53/udp",
    "[2606:4700:4700::1111]:53/tcp",
)


def _network(value: str) -> str:
    """An address or a CIDR block, normalised (`10.0.0.5` stays an address); one host's address as
    every other address setting takes it (no zone id, no multicast, unspecified or broadcast)."""
    if "/" not in value:
        try:
            address = host_address(value)
        except ValueError as error:
            raise ValueError(f"{error}; write an address or a CIDR block, e.g. 10.20.0.0/24 or fd00::/64") from None
        if not _is_ip(address):
            raise ValueError(f"{value!r} is not an IP address or CIDR block; write e.g. 10.20.0.0/24 or fd00::/64")
        return address
    if "%" in value or not value.isascii():
        raise ValueError(f"{value!r} is not an IP address or CIDR block (no zone id, ASCII only)")
    try:
        block = ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"{value!r} is not an IP address or CIDR block ({error}); "
                         "write e.g. 10.20.0.0/24 or fd00::/64") from None
    if block.is_multicast:
        raise ValueError(f"{value!r} is a multicast block; give the block of the hosts themselves")
    return str(block)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _ip(value: str) -> str:
    address = host_address(value)
    if not _is_ip(address):
        raise ValueError(f"{value!r} is not an IP address; resolvers are reached by address")
    return address


def _destination(value: str) -> str:
    """Where an `allow` entry leads: an address, a CIDR block or a DNS name (resolved on the host);
    never every address (that is an opt-out, which says why)."""
    if re.fullmatch(DNS_NAME, value, re.ASCII) and not re.fullmatch(r"[0-9.]+", value):
        return value.lower()
    destination = _network(value)
    if destination in ("0.0.0.0/0", "::/0"):
        raise ValueError(f"{value!r} allows every address, which undoes the lockdown; list the destinations, or "
                         "opt the host out in network.optOut with the reason")
    return destination


PROBE = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(?P<port>[0-9]{1,5})/(?P<protocol>tcp|udp)")


def _probe(value: str) -> str:
    """`host:port/tcp|udp`, IPv6 addresses in brackets: `[2001:db8::1]:53/udp`."""
    match = PROBE.fullmatch(value)
    problem = None if match else "is not host:port/tcp or host:port/udp (IPv6 in brackets)"
    if match:
        host = match["host"].strip("[]")
        try:
            if ipaddress.ip_address(host).version == 4 and match["host"].startswith("["):
                problem = "puts an IPv4 address in brackets; they are for IPv6"
        except ValueError:
            if not re.fullmatch(DNS_NAME, host):
                problem = "names neither an address nor a DNS name"
        if not 1 <= int(match["port"]) <= 65535:
            problem = "has a port outside 1-65535"
    if problem:
        raise ValueError(f"{value!r} {problem}")
    return value.lower()


def _relay(value: str) -> str:
    """`host:port` of a mail relay: an IPv4 address or a DNS name, and a port."""
    host, _, port = value.rpartition(":")
    try:
        host = str(ipaddress.IPv4Address(host))
    except ValueError:
        if not re.fullmatch(DNS_NAME, host) or re.fullmatch(r"[0-9.]+", host):
            host = ""
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port of the mail relay (an IPv4 address or a DNS name, and a port)")
    return f"{host.lower()}:{int(port)}"


Network = Annotated[str, AfterValidator(_network)]
"""An IP address or a CIDR block, normalised."""
IpAddress = Annotated[str, AfterValidator(_ip)]
Destination = Annotated[str, AfterValidator(_destination)]
Probe = Annotated[str, AfterValidator(_probe)]
Relay = Annotated[str, AfterValidator(_relay)]
Seconds = Annotated[int, Strict(), Ge(10), Le(600)]


class _ServiceConfigured:
    """An `allow` entry's `service` names a service the stack configures."""

    FIELDS: ClassVar[dict[str, str]] = {"registry": "registry", "harbor": "harbor", "aptMirror": "apt_mirror",
                                        "rpmMirror": "rpm_mirror", "fileServer": "file_server"}

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        if model.service is not None and getattr(root, self.FIELDS[model.service]) is None:
            yield f"{path}.service: no {model.service} is configured; name a service the stack has"


@dataclass(frozen=True, config=MODEL_CONFIG)
class AllowSettings:
    """One more endpoint locked-down hosts may reach, and why."""

    RULES: ClassVar[Rules] = (
        exactly_one("to", "service", why="to: an address, CIDR block or DNS name; service: one of the stack's"),
        required_if("port", when={"to": GIVEN}),
        only_with("port", when={"to": GIVEN}, why="a service's port is its own"),
        host_exists("hosts[*]"),
        _ServiceConfigured(),
    )

    why: Reason
    """Shown beside the rule on each host: who needs it."""
    to: Destination | None = None
    """An IP address, a CIDR block, or a DNS name (resolved on the host when the rules load)."""
    port: Port | None = None
    protocol: Literal["tcp", "udp"] = "tcp"
    service: Literal["registry", "harbor", "aptMirror", "rpmMirror", "fileServer"] | None = None
    """One of the stack's services, at the address and port its clients use (e.g. fileServer for nodes
    that fetch artifacts)."""
    hosts: tuple[HostName, ...] = ()
    """The hosts it applies to; empty: every locked-down host."""


@dataclass(frozen=True, config=MODEL_CONFIG)
class AuditSettings:
    """What each locked-down host probes at every `up` and on its timer."""

    must_fail: Annotated[tuple[Probe, ...], MaxLen(64)] = DEFAULT_MUST_FAIL
    """Endpoints that must not answer (`host:port/tcp|udp`). A host the stack allows to reach one
    (a mirror host and its upstream) skips it and says so."""
    schedule: OnCalendar = "hourly"
    """When the host's own timer runs the audit (systemd OnCalendar)."""
    timeout_seconds: Annotated[int, Strict(), Ge(1), Le(30)] = 3
    """How long a probe waits for an answer."""


class _OptOutNamesHosts:
    """Each key of `optOut` is a host under `hosts`."""

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        for name in model.opt_out:
            if name not in root.hosts:
                yield f"{path}.optOut.{name}: no host named {name!r}; known: {', '.join(sorted(root.hosts)) or 'none'}"


class _NamesNeedResolvers:
    """A locked-down host that reaches an endpoint by name needs a DNS server it may reach."""

    def check(self, model: Any, path: str, root: Any) -> Iterator[str]:
        from ..egress import locked_down_hosts, named_destinations  # egress reads these settings

        if model.dns:
            return
        for host in locked_down_hosts(root):
            names = named_destinations(root, host)
            if names:
                yield (f"{path}.dns: required: host {host!r} reaches {', '.join(names)} by name; list the DNS "
                       "servers it resolves with, or give those endpoints by address")


class _FillsStayInside:
    """A registry filled on a locked-down host fetches every image from inside the gap."""

    def check(self, model: Any, path: str, root: Any) -> Iterator[str]:
        from ..egress import public_fill_sources

        for section, host, registry, image, index in public_fill_sources(root):
            yield (f"images[{index}]: {image} would be fetched from the public registry {registry}, which host "
                   f"{host!r} may not reach under the network lockdown; map {registry} to a registry inside the gap "
                   f"in {section}.fill.upstreams, fill from {section}.fill.ociLayout, or opt the host out in "
                   "network.optOut")


class _BastionsByAddress:
    """With SSH restricted by source, a locked-down host's bastion is named by its address: the
    rules take SSH from addresses, and a name would leave the host reachable only after a rollback."""

    def check(self, model: Any, path: str, root: Any) -> Iterator[str]:
        from ..egress import is_address, locked_down_hosts

        if not model.admin_addresses:
            return
        for host in locked_down_hosts(root):
            bastion = root.hosts[host].bastion if host in root.hosts else None  # a missing host is reported apart
            if bastion is not None and bastion in root.hosts and not is_address(root.hosts[bastion].address):
                yield (f"hosts.{bastion}.address: {root.hosts[bastion].address!r} is a name, and host {host!r} "
                       f"behind it takes SSH only from addresses ({path}.adminAddresses); give the bastion's "
                       f"address, or opt {host!r} out in {path}.optOut")


@dataclass(frozen=True, config=MODEL_CONFIG)
class NetworkSettings:
    """Egress lockdown of the managed hosts (on unless a host opts out), SSH sources and the audit."""

    RULES: ClassVar[Rules] = (
        _OptOutNamesHosts(),
        unique("admin_addresses[*]"),
        _NamesNeedResolvers(),
        _FillsStayInside(),
        _BastionsByAddress(),
    )

    admin_addresses: Annotated[tuple[Network, ...], MaxLen(64)] = ()
    """Where SSH to the hosts comes from (the admin machine, and a bastion's inner address when it
    differs from its `hosts` address). Empty: SSH is not restricted by source."""
    dns: Annotated[tuple[IpAddress, ...], MaxLen(8)] = ()
    """DNS servers the hosts resolve with (udp and tcp 53)."""
    ntp: Annotated[tuple[Address, ...], MaxLen(8)] = ()
    """NTP servers (udp 123)."""
    smtp: Relay | None = None
    """`host:port` of the internal mail relay the hosts may send through."""
    allow: Annotated[tuple[AllowSettings, ...], MaxLen(256)] = ()
    container_networks: Annotated[tuple[Network, ...], MaxLen(32)] = DOCKER_POOLS
    """Address blocks of the hosts' containers (Docker bridges, pods): traffic between them is
    forwarded; to anything else it gets what the host itself gets."""
    opt_out: Mapping[HostName, Reason] = Field(default_factory=dict)
    """Hosts left without a lockdown, each with the reason (reported by the policy pack)."""
    rollback_seconds: Seconds = 60
    """New rules revert by themselves after this long unless a fresh SSH connection from the admin
    machine confirms them."""
    audit: AuditSettings = AuditSettings()
