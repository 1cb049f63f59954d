"""`SHA256SUMS` in `sha256sum -c` format: `<64 hex>  <path>` a line.

sha256sum escapes a name holding a line break or a backslash (and then starts the line with
'\\'); a path here holds neither, nor any other control character, so each line is one entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import FormatError

DIGEST = re.compile(r"[0-9a-f]{64}", re.ASCII)


def line(sha256: str, path: str) -> str:
    if not DIGEST.fullmatch(sha256):
        raise FormatError(f"{sha256!r} is not a sha256 (64 lowercase hex digits)")
    if not path or "\\" in path or any(ord(c) < 32 or ord(c) == 127 for c in path):
        raise FormatError(f"{path!r} cannot be a SHA256SUMS name (no backslash or control characters)")
    return f"{sha256}  {path}\n"


def sha256sums(entries: Iterable[tuple[str, str]]) -> str:
    """One line per (sha256, path), in the order given."""
    return "".join(line(sha256, path) for sha256, path in entries)
