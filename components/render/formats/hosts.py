"""Host names and addresses, as every format here may carry them: an IPv4 address, an IPv6 address
without a zone id, or a DNS name; ASCII only.

An IPv6 zone id (`fe80::1%eth0`) may hold almost any character, and every tool reads the rest of
the string differently, so none is accepted. A name that `inet_aton` reads as an address
(`127.1`, `0x7f000001`) is no name: the OpenSSH client, curl and glibc would connect to that
address, so it is refused too.
"""

from __future__ import annotations

import ipaddress
import re
import socket

from . import FormatError

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

# DNS labels of letters, digits and '-' (RFC 1123), at most 63 each and 253 in all.
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME = rf"(?=.{{1,253}}\Z){LABEL}(?:\.{LABEL})*"


def _reads_as_address(name: str) -> bool:
    try:
        socket.inet_aton(name)
    except OSError:
        return False
    return True


def dns_name(value: str) -> str:
    """`value` lowercased if it is a DNS name; FormatError otherwise."""
    if not isinstance(value, str) or not value.isascii() or not re.fullmatch(DNS_NAME, value, re.ASCII):
        raise FormatError(f"{value!r} is not a DNS name; use letters, digits, '-' and '.'")
    if _reads_as_address(value):
        raise FormatError(f"{value!r} reads as an IPv4 address, not a name; write the address in full")
    return value.lower()


def parse_host(value: str) -> IP | str:
    """An IP address, or a DNS name (lowercased); FormatError for anything else."""
    if not isinstance(value, str) or not value.isascii():
        raise FormatError(f"{value!r} is neither an IP address nor a DNS name (ASCII only)")
    if "%" in value:
        raise FormatError(f"{value!r}: an IPv6 zone id ('%…') is not accepted; give a global or unique-local "
                          "address, or a DNS name")
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    if not re.fullmatch(DNS_NAME, value, re.ASCII):
        raise FormatError(f"{value!r} is neither an IP address nor a DNS name")
    return dns_name(value)


def is_ipv6(host: str) -> bool:
    return isinstance(parse_host(host), ipaddress.IPv6Address)


def url_host(host: str) -> str:
    """`host` as it stands before a port or in a URL: an IPv6 address in brackets."""
    parsed = parse_host(host)
    return f"[{parsed}]" if isinstance(parsed, ipaddress.IPv6Address) else str(parsed)


def host_port(host: str, port: int) -> str:
    """`host:port`, `[v6]:port` for an IPv6 address."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise FormatError(f"{port!r} is not a port number (1-65535)")
    return f"{url_host(host)}:{port}"


def split_host_port(value: str) -> tuple[str, int]:
    """(host, port) from `host:port` or `[v6]:port`; FormatError unless both are valid."""
    match = re.fullmatch(r"\[([^\]]*)\]:([0-9]{1,5})|([^:\[\]]*):([0-9]{1,5})", value, re.ASCII)
    if not match:
        raise FormatError(f"{value!r} is not host:port (an IPv6 address in brackets: [2001:db8::1]:25)")
    host = match[1] if match[1] is not None else match[3]
    port = int(match[2] or match[4])
    if match[1] is not None and not is_ipv6(host):
        raise FormatError(f"{value!r}: only an IPv6 address goes in brackets")
    host_port(host, port)  # checks both
    return str(parse_host(host)), port
