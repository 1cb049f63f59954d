"""The OpenSSH client's inputs: `known_hosts` lines, `user@host` destinations, `-o` options and
the `ProxyCommand` that jumps through a bastion.

`ProxyCommand` is handed to `sh -c` after ssh has expanded its `%` tokens, so it is written here
as shell words (each quoted), `%` doubled, with `%h:%p` the only tokens left for ssh. Hosts are
addresses or DNS names (formats/hosts.py); an IPv6 target is written `[%h]:%p` for `-W`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from . import FormatError
from .hosts import is_ipv6, parse_host

KEY_LINE = re.compile(r"[a-z0-9@.-]+ [A-Za-z0-9+/]+={0,2}", re.ASCII)
WORD = re.compile(r"[A-Za-z0-9._/+:@,=-]+", re.ASCII)
USER = re.compile(r"[^\x00-\x1f\x7f]+")


def known_host(address: str, port: int, host_key: str) -> str:
    """A `known_hosts` line pinning `host_key` (`<type> <base64>`) for `address` on `port`."""
    host = str(parse_host(address))
    if not KEY_LINE.fullmatch(host_key):
        raise FormatError(f"{host_key!r} is not `<type> <base64>`")
    name = host if port == 22 else f"[{host}]:{int(port)}"
    return f"{name} {host_key}"


def destination(user: str, address: str) -> str:
    """`user@host` for the command line (ssh takes an IPv6 address without brackets here)."""
    if not isinstance(user, str) or not USER.fullmatch(user) or user.startswith("-"):
        raise FormatError(f"{user!r} is not a login name ssh can take")
    return f"{user}@{parse_host(address)}"


def arguments(words: Sequence[str]) -> list[str]:
    """Client arguments (`-F /dev/null`, `-o Name=value`, …), each a plain word: no blanks, quotes,
    '%' or line breaks, so the shell and ssh's token expansion leave them as they are."""
    for word in words:
        if not isinstance(word, str) or not WORD.fullmatch(word):
            raise FormatError(f"{word!r} is not a plain ssh argument")
    return list(words)


def proxy_command(client: Sequence[str], bastion_user: str, bastion_address: str, bastion_port: int,
                  target_address: str) -> str:
    """`ssh <client arguments> -p <port> -W %h:%p user@bastion`, as the shell ssh starts reads it."""
    forward = "[%h]:%p" if is_ipv6(target_address) else "%h:%p"
    head = ["ssh", *arguments(client), "-p", str(int(bastion_port))]
    bastion = shlex.quote(destination(bastion_user, bastion_address)).replace("%", "%%")
    return " ".join(head) + f" -W {forward} {bastion}"
