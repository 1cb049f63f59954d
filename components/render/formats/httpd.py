"""Apache httpd configuration: directive arguments that are one plain token each.

httpd splits arguments at white space, unquotes quotes, ends a section tag at '>', starts a
comment at '#' and expands `${VAR}`; an argument here holds none of those.
"""

from __future__ import annotations

import re

from . import FormatError

TOKEN = re.compile(r"[A-Za-z0-9._/:\[\]+=@~,-]+", re.ASCII)


def token(value: str | int) -> str:
    """`value` if httpd reads it as one plain argument; FormatError otherwise."""
    text = str(value)
    if not TOKEN.fullmatch(text):
        raise FormatError(f"{text!r} cannot be one httpd argument (no white space, quotes, '<', '>', '#', '$')")
    return text
