"""URLs the program writes (service endpoints, mirror and file server addresses): built from their
parts, the host bracketed when it is an IPv6 address, never with credentials in them."""

from __future__ import annotations

import re
import urllib.parse

from . import FormatError
from .hosts import host_port, parse_host, url_host

DEFAULT_PORTS = {"http": 80, "https": 443}
# What a path may hold here: unreserved characters, '/', a few sub-delimiters, percent escapes.
PATH = re.compile(r"(?:/(?:[A-Za-z0-9._~+:@=,-]|%[0-9A-Fa-f]{2})*)*", re.ASCII)


def url(scheme: str, host: str, port: int | None = None, path: str = "") -> str:
    """`scheme://host[:port]path`; the port left out when it is the scheme's default."""
    if scheme not in DEFAULT_PORTS and scheme != "ssh":
        raise FormatError(f"{scheme!r} is not a scheme written here")
    if not PATH.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
        raise FormatError(f"{path!r} is not a URL path written here (letters, digits, / . _ ~ + : @ = , - %XX)")
    authority = url_host(host) if port is None or port == DEFAULT_PORTS.get(scheme) else host_port(host, port)
    return f"{scheme}://{authority}{path}"


def check_url(value: str) -> str:
    """`value` if it is an http(s) URL of a valid host and plain path, without credentials, query or
    fragment; FormatError saying what is wrong otherwise."""
    if not value.isascii() or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value):
        raise FormatError(f"{value!r} holds white space, control or non-ASCII characters")
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise FormatError(f"{value!r} is not a URL ({error})") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        raise FormatError(f"{value!r} is not an http:// or https:// URL")
    if "@" in parts.netloc:
        raise FormatError(f"{value!r} holds credentials (user:password@); give them as secrets, never in a URL")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise FormatError(f"{value!r} has a query or fragment; give a URL without query or fragment")
    host = parts.netloc.rsplit(":", 1)[0] if port is not None or parts.netloc.endswith(":") else parts.netloc
    bracketed = host.startswith("[") and host.endswith("]")
    parse_host(host[1:-1] if bracketed else host)
    if bracketed != (":" in host):
        raise FormatError(f"{value!r}: an IPv6 address goes in brackets, and nothing else does")
    if port == 0 or parts.netloc.endswith(":"):
        raise FormatError(f"{value!r} has an empty or zero port")
    if not PATH.fullmatch(parts.path) or "/../" in parts.path + "/" or "/./" in parts.path + "/":
        raise FormatError(f"{value!r} holds characters a URL path here may not ('..', quotes, a bare '%', …)")
    return value
