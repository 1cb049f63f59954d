"""nginx configuration: directives whose every argument is one plain token.

nginx splits arguments at white space, ends a directive at ';', opens and closes blocks with
'{' '}', starts a comment at '#', unquotes quotes and expands '$variables' in many directives. An
argument here may hold none of those: paths, names, addresses and ports only.
"""

from __future__ import annotations

import re

from . import FormatError

TOKEN = re.compile(r"[A-Za-z0-9._/:\[\]+=@~,*-]+", re.ASCII)


def token(value: str) -> str:
    """`value` if nginx reads it as one plain argument; FormatError otherwise."""
    if not isinstance(value, str) or not TOKEN.fullmatch(value):
        raise FormatError(f"{value!r} cannot be one nginx argument (no white space, quotes, ';', '{{', '}}', "
                          "'#', '$' or '\\\\')")
    return value


def directive(name: str, *arguments: str | int, indent: str = "    ") -> str:
    """One line `name arg …;`, every argument checked."""
    words = [token(name), *(token(str(argument)) for argument in arguments)]
    return f"{indent}{' '.join(words)};\n"
