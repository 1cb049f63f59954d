"""dnf/yum `.repo` files: one `[id]` section of `key=value` lines.

dnf reads a new key or section on every new line, continues a value on a line that starts with
blanks, and substitutes `$releasever`-style variables in values; a value here is one line of
printable ASCII without '$', and the section id has no ']'.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from . import FormatError

SECTION = re.compile(r"[A-Za-z0-9._:-]+", re.ASCII)
KEY = re.compile(r"[a-z_]+", re.ASCII)
VALUE = re.compile(r"[\x21-\x23\x25-\x7e](?:[\x20-\x23\x25-\x7e]*[\x21-\x23\x25-\x7e])?", re.ASCII)


def value(text: str | int) -> str:
    """One value: printable ASCII on one line, no '$', no surrounding blanks."""
    text = str(text)
    if not VALUE.fullmatch(text):
        raise FormatError(f"{text!r} cannot be a .repo value (one line of printable ASCII, no '$')")
    return text


def repo_file(section: str, settings: Sequence[tuple[str, str | int]]) -> str:
    """`[section]` and its `key=value` lines."""
    if not SECTION.fullmatch(section):
        raise FormatError(f"{section!r} cannot be a .repo section id")
    lines = [f"[{section}]"]
    for key, text in settings:
        if not KEY.fullmatch(key):
            raise FormatError(f"{key!r} is not a .repo key")
        lines.append(f"{key}={value(text)}")
    return "\n".join(lines) + "\n"
