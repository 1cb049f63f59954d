"""deb822 paragraphs (apt's `.sources` files): `Field: value` lines, each value on one line.

A line break in a value starts a new field (`Trusted: yes`) or a new paragraph; a value with
several words (`Components: main contrib`) is split at white space. So a value here is one line
of printable ASCII without surrounding blanks, and each word of a multi-word field has no blanks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from . import FormatError

FIELD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*", re.ASCII)
PRINTABLE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?", re.ASCII)
WORD = re.compile(r"[\x21-\x7e]+", re.ASCII)


def field_value(value: str) -> str:
    """One field's value: a single line of printable ASCII, not starting with '#'."""
    if not isinstance(value, str) or not PRINTABLE.fullmatch(value) or value.startswith("#"):
        raise FormatError(f"{value!r} cannot be a deb822 value (one line of printable ASCII, no surrounding blanks)")
    return value


def words(values: Sequence[str]) -> str:
    """A multi-word value: each word without blanks."""
    for item in values:
        if not isinstance(item, str) or not WORD.fullmatch(item):
            raise FormatError(f"{item!r} cannot be one word of a deb822 value (no blanks, printable ASCII)")
    return field_value(" ".join(values))


def paragraph(fields: Sequence[tuple[str, str | Sequence[str]]]) -> str:
    """`Field: value` lines; a sequence value is written as words."""
    lines = []
    for name, value in fields:
        if not FIELD.fullmatch(name):
            raise FormatError(f"{name!r} is not a deb822 field name")
        lines.append(f"{name}: {field_value(value) if isinstance(value, str) else words(value)}\n")
    return "".join(lines)
