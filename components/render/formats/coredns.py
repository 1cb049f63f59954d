"""CoreDNS server blocks (a Corefile fragment, e.g. node-local-dns's custom configuration).

A Corefile token ends at white space, a block opens and closes with '{' '}', a comment starts at
'#', quotes group words and `{$VAR}` reads the environment; a token here holds none of those. The
zone is a DNS name; upstream servers are IP addresses (IPv6 as `[addr]:53`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from . import FormatError
from .hosts import dns_name, host_port, parse_host

TOKEN = re.compile(r"[A-Za-z0-9._:/\[\]-]+", re.ASCII)


def token(value: str | int) -> str:
    text = str(value)
    if not TOKEN.fullmatch(text):
        raise FormatError(f"{text!r} cannot be one Corefile token (no blanks, braces, quotes, '#', '$')")
    return text


def upstream(address: str) -> str:
    """A `forward` target: an IP address (IPv6 bracketed, with port 53)."""
    parsed = parse_host(address)
    if isinstance(parsed, str):
        raise FormatError(f"{address!r}: a forward target here is an IP address")
    return host_port(str(parsed), 53) if isinstance(parsed, ipaddress.IPv6Address) else str(parsed)


def server_block(zone: str, port: int, directives: Sequence[Sequence[str | int]]) -> str:
    """`zone:port { directive … }`, one directive a line."""
    head = token(f"{dns_name(zone)}:{int(port)}")
    body = "".join("    " + " ".join(token(word) for word in directive) + "\n" for directive in directives)
    return f"{head} {{\n{body}}}\n"
