"""The read-only drift check a host runs for the offline engine (programs/drift/check.py): every
step's manifest compared with the host, one line per difference."""

from __future__ import annotations

from . import programs
from .shell import heredoc_delimiter

CHECK = programs.load("drift/check.py")


def check_command(*, sudo: bool) -> str:
    """One command for one SSH round trip: the check's text on stdin of the host's python3."""
    delimiter = heredoc_delimiter(CHECK, "AIRGAP_DRIFT")
    runner = "sudo -n python3 -" if sudo else "python3 -"
    return f"{runner} <<'{delimiter}'\n{CHECK}{delimiter}\n"


def parse(output: str) -> dict[str, list[str]]:
    """Step name → what drifted (`<subject>: <problem>`), from the check's output."""
    drifted: dict[str, list[str]] = {}
    for line in output.splitlines():
        fields = line.split("\t")
        if len(fields) == 4:
            step, _kind, subject, problem = fields
            drifted.setdefault(step, []).append(f"{subject}: {problem}")
    return drifted
