"""apt.conf lines (`/etc/apt/apt.conf.d/*`): `Scope::Host::Option "value";`.

apt splits a key at '::' and ends a value at '"' or ';'; a host in a key is a DNS name or an IPv4
address (an IPv6 address is all colons), and a quoted value holds no '"', ';' or line break.
"""

from __future__ import annotations

import ipaddress
import re

from . import FormatError
from .hosts import parse_host

VALUE = re.compile(r"[A-Za-z0-9._/+:=@,~-]+", re.ASCII)


def host_key(host: str) -> str:
    """`host` if apt can scope an option to it; FormatError for an IPv6 address."""
    if isinstance(parse_host(host), ipaddress.IPv6Address):
        raise FormatError(f"{host!r}: apt cannot scope an option to an IPv6 address; give the service a hostname")
    return str(parse_host(host))


def quoted(value: str) -> str:
    if not VALUE.fullmatch(value):
        raise FormatError(f"{value!r} cannot be an apt.conf value here")
    return f'"{value}"'


def ca_info(scheme: str, host: str, path: str) -> str:
    """`Acquire::<scheme>::<host>::CaInfo "<path>";`: the CA apt trusts for that host alone."""
    if scheme not in ("http", "https"):
        raise FormatError(f"{scheme!r} is not an apt transport here")
    return f"Acquire::{scheme}::{host_key(host)}::CaInfo {quoted(path)};\n"
