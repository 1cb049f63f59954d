"""Run step text with some host commands replaced by stubs that log how they were called.

A renderer's calls reach programs/ functions with quoted arguments; running them against stubs
shows which commands a host would run, with which words, without a host.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

from components.render.shell import step_script

_LOG = """#!/bin/bash
{ printf '%s' "${0##*/}"; printf '\\t%s' "$@"; printf '\\n'; } >> "$STUB_LOG"
"""


def secret_line(value: str) -> str:
    """One stdin secret, as a step reads it."""
    return base64.b64encode(value.encode()).decode() + "\n"


def run(tmp_path: Path, body: str, stubs: dict[str, str], *, stdin: str = "",
        env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    """Run `body` as a step with each command named in `stubs` replaced by a stub that logs its
    words, then runs the bash text given for it. Returns the run and the calls, in order."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "stub-calls"
    log.write_text("")
    for name, behaviour in stubs.items():
        stub = bin_dir / name
        stub.write_text(_LOG + behaviour + "\n")
        stub.chmod(0o755)
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log), **(env or {})}
    result = subprocess.run(["sh", "-c", step_script(body)], input=stdin, capture_output=True, text=True,
                            env=environment, timeout=60)
    calls = [line.split("\t") for line in log.read_text().splitlines()]
    return result, calls


def call_line(body: str, function: str) -> str:
    """The one line of `body` that calls `function`."""
    lines = [line for line in body.splitlines() if line.startswith(function + " ")]
    assert len(lines) == 1, f"{function} is called {len(lines)} times"
    return lines[0]
