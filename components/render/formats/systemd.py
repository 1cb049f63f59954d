"""systemd unit files: sections of `Key=value` lines, every value one line with `%` specifiers
escaped, and command lines written word by word as systemd unquotes them.

systemd expands `%x` specifiers in most values and `$VAR` in command lines, continues a line
that ends in a backslash, and reads a new `Key=` or `[Section]` on every new line; a value here
can do none of that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from . import FormatError

KEY = re.compile(r"[A-Za-z][A-Za-z0-9]*", re.ASCII)
PLAIN_WORD = re.compile(r"[A-Za-z0-9._/+:=@,-]+", re.ASCII)


def _one_line(value: str) -> str:
    if not isinstance(value, str) or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise FormatError(f"{value!r} holds a line break or control character; a unit value is one line")
    return value


def value(text: str) -> str:
    """A unit value: one line, no surrounding blanks, no trailing backslash, `%` escaped."""
    _one_line(text)
    if text != text.strip() or text.endswith("\\"):
        raise FormatError(f"{text!r}: a unit value may not start or end with blanks or end with '\\\\'")
    return text.replace("%", "%%")


def word(text: str) -> str:
    """One word of a command line: as it is when plain, else double-quoted with escapes."""
    _one_line(text)
    if not text:
        raise FormatError("an empty word in a command line")
    escaped = text.replace("%", "%%").replace("$", "$$")
    if PLAIN_WORD.fullmatch(text):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command(words: Sequence[str]) -> str:
    """`ExecStart=` value: an absolute program, then its arguments, each one word."""
    if not words or not words[0].startswith("/"):
        raise FormatError(f"{list(words)!r}: a command line starts with an absolute program path")
    return " ".join(word(w) for w in words)


def unit(sections: Iterable[tuple[str, Iterable[tuple[str, str]]]]) -> str:
    """The unit text: each `[Section]` with its `Key=value` lines (values already written by
    `value` or `command`), sections separated by a blank line."""
    parts = []
    for section, settings in sections:
        if not KEY.fullmatch(section):
            raise FormatError(f"{section!r} is not a unit section name")
        lines = [f"[{section}]\n"]
        for key, text in settings:
            if not KEY.fullmatch(key):
                raise FormatError(f"{key!r} is not a unit setting name")
            lines.append(f"{key}={_one_line(text)}\n")
        parts.append("".join(lines))
    return "\n".join(parts)
