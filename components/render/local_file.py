"""Writing a file on the admin machine (where the program runs): the one script every component
uses for it. The content arrives on the step's stdin and replaces the file atomically (written
beside it, then renamed), so a reader never sees half a file."""

from __future__ import annotations

from .shell import q, step_script


def write_file_script(path: str) -> str:
    """Write stdin to `path` (relative to the project directory), creating its directory."""
    return step_script(
        f"install -d -m 0755 \"$(dirname {q(path)})\"\n"
        f"cat > {q(path + '.tmp')}\n"
        f"mv -f {q(path + '.tmp')} {q(path)}"
    )
