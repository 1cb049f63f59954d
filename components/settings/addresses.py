"""Addresses in the settings: where the program reaches a host and where clients reach a service.

An address is an IPv4 address, an IPv6 address without a zone id, or a DNS name
(render/formats/hosts.py holds the grammar every writer shares). Addresses that name no single
machine are refused: the unspecified address (`0.0.0.0`, `::`: every address a host has, so a
service bound there listens everywhere), multicast and broadcast addresses, IPv6 link-local
addresses (they mean nothing without the zone id that is not accepted).
"""

from __future__ import annotations

import ipaddress

from ..render.formats import FormatError
from ..render.formats.hosts import dns_name, host_port, parse_host, split_host_port, url_host

LOOPBACK_NAMES = ("localhost",)


def host_address(value: str) -> str:
    """`value` normalised (an IP address compressed, a name lowercased); ValueError saying why not."""
    parsed = parse_host(value)
    if isinstance(parsed, str):
        return parsed
    if parsed.is_unspecified:
        raise ValueError(f"{value!r} is the unspecified address (every address of a host); give the host's own address")
    if parsed.is_multicast:
        raise ValueError(f"{value!r} is a multicast address; give one host's own address")
    if parsed == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"{value!r} is the broadcast address; give one host's own address")
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.is_link_local:
            raise ValueError(f"{value!r} is link-local and needs a zone id, which is not accepted; give a global or "
                             "unique-local address, or a DNS name")
    return str(parsed)


def ip_address(value: str) -> str:
    """An address as `host_address` accepts it that is an IP address, not a name (DNS servers)."""
    address = host_address(value)
    if isinstance(parse_host(address), str):
        raise ValueError(f"{value!r} is not an IP address (a DNS server is given by address)")
    return address


def service_name(value: str) -> str:
    """A DNS name clients use for a service (it goes into certificates): lowercased."""
    return dns_name(value)


def relay(value: str) -> str:
    """`host:port` (`[v6]:port`), the host an address as `host_address` accepts it."""
    host, port = split_host_port(value)
    return host_port(host_address(host), port)


def endpoint(value: str) -> str:
    """`host` or `host:port` (an IPv6 address in brackets either way)."""
    try:
        return relay(value)
    except FormatError:
        pass
    bracketed = value.startswith("[") and value.endswith("]")
    try:
        host = host_address(value[1:-1] if bracketed else value)
    except FormatError:
        raise FormatError(f"{value!r} is not host or host:port (an IPv6 address goes in brackets)") from None
    if bracketed != (":" in host):
        raise FormatError(f"{value!r} is not host or host:port (an IPv6 address goes in brackets)")
    return url_host(host)


def is_loopback(address: str) -> bool:
    """Whether `address` (an address or name as the settings hold it) is this machine's own."""
    parsed = parse_host(address)
    if isinstance(parsed, str):
        return parsed in LOOPBACK_NAMES or parsed.endswith(".localhost")
    mapped = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None
    return (mapped or parsed).is_loopback
