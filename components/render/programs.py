"""The text of the programs that run on hosts, read from the project's `programs/` folder.

Programs are real files there, so shellcheck and ruff check them like the rest of the code. A
renderer never formats a value into a program's text: values reach a program as its arguments
(function calls with quoted words) or as quoted assignments put before it (`with_settings`).

A line `#embed <name>` inside a quoted heredoc stands for the whole text of program `<name>`:
a bash program pipes the Python it needs to python3 that way, and a host still receives one
script.
"""

from __future__ import annotations

import functools
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "programs"
EMBED = "#embed "


@functools.cache
def load(name: str) -> str:
    """The text of `programs/<name>`, every `#embed` line replaced by the program it names."""
    lines = (ROOT / name).read_text().splitlines(keepends=True)
    text = []
    for number, line in enumerate(lines):
        if not line.startswith(EMBED):
            text.append(line)
            continue
        embedded = load(line[len(EMBED):].strip())
        # The line after `#embed` ends the heredoc: the embedded text must not hold it as a line.
        end = lines[number + 1].rstrip("\n") if number + 1 < len(lines) else None
        if end is None or end in embedded.splitlines():
            raise ValueError(f"programs/{name}:{number + 1}: the heredoc around {line.strip()!r} needs an end "
                             f"line the embedded program does not hold (got {end!r})")
        text.append(embedded if embedded.endswith("\n") else embedded + "\n")
    return "".join(text)


def with_settings(name: str, **settings: str | int) -> str:
    """Program `name` with each setting assigned before its text, the value quoted
    (`ROOT='/srv/apt mirror'`); the assignments follow the `#!` line, which stays first."""
    for key in settings:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{key!r} is not a shell variable name")
    assignments = "".join(f"{key}={shlex.quote(str(value))}\n" for key, value in settings.items())
    text = load(name)
    if text.startswith("#!"):
        shebang, _, rest = text.partition("\n")
        return f"{shebang}\n{assignments}{rest}"
    return assignments + text
