"""The scanner hook: the site's own malware scanner over a bundle's payload, before acceptance.

The command is a template (`clamscan -r --no-summary {path}`) split like a shell would split it,
with `{path}` replaced in each word: no shell runs it, so no path can inject anything. Exit 0
accepts; anything else (ClamAV's 1 = found, 2 = error) refuses the bundle.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from .manifest import BundleError

DEFAULT_TIMEOUT = 6 * 3600


def scanner_command(template: str, path: Path) -> list[str]:
    words = shlex.split(template)
    if not words:
        raise BundleError("--scanner: empty command")
    if not any("{path}" in word for word in words):
        words.append("{path}")  # a scanner with nothing to scan would accept everything
    return [word.replace("{path}", str(path)) for word in words]


def run_scanner(template: str, path: Path, *, timeout: float = DEFAULT_TIMEOUT, log=print) -> None:
    command = scanner_command(template, path)
    log(f"scanning {path} with {shlex.join(command)}")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise BundleError(f"scanner {command[0]!r} is not installed") from None
    except subprocess.TimeoutExpired:
        raise BundleError(f"scanner {command[0]} did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()
        detail = "; ".join(output[-5:]) or "no output"
        raise BundleError(f"scanner {command[0]} refused the payload (exit {result.returncode}): {detail}")
