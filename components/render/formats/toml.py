"""TOML files (containerd's `hosts.toml` and drop-ins): data serialised by `tomli-w`, which quotes
every string and table key, with an optional comment above it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tomli_w

from . import FormatError


def dumps(data: Mapping[str, Any], comment: str = "") -> str:
    """`data` as TOML, after `# comment` (one line of printable text) when given."""
    if comment and any(ord(c) < 32 or ord(c) == 127 for c in comment):
        raise FormatError(f"{comment!r}: a TOML comment is one line")
    return (f"# {comment}\n" if comment else "") + tomli_w.dumps(dict(data))
