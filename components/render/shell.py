"""Shell building blocks shared by every rendered remote step.

A step is a bash script that is safe to run again (check-then-act). Everything interpolated is
quoted with `shlex.quote` here, in the renderer; the remote helper only ships the text.

Files are written from quoted heredocs (no expansion inside), replaced atomically, and only when
their content differs, so a re-run touches nothing and a service restarts only when one of its
files changed. Secrets never appear in the text: they arrive on the step's stdin, one base64 line
each, in the order the step declares them (see `SecretFile`).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from . import programs

q = shlex.quote

# Every step starts with it: strict mode, a private work directory, the functions steps call.
PRELUDE = programs.load("shell/prelude.sh")


@dataclass(frozen=True)
class SecretFile:
    """A file whose content is a secret: delivered on stdin, never in the script text."""

    path: str
    """Absolute path on the host."""
    mode: str = "0600"
    """Octal mode, e.g. `0640`."""
    owner: str = "root:root"
    """`user:group` owning the file."""
    tag: str = "secret"
    """Change tag, for `airgap_changed` (e.g. the service that reads it)."""


def heredoc_delimiter(content: str, stem: str = "AIRGAP_EOF") -> str:
    """A heredoc delimiter that is not a line of `content`: `stem`, or `stem_N` for the least N
    that is not. It does not depend on the rest of the content, so a changed file changes only its
    own lines in a reviewed plan."""
    lines = set(content.splitlines())
    delimiter, n = stem, 0
    while delimiter in lines:
        n += 1
        delimiter = f"{stem}_{n}"
    return delimiter


def put_file(path: str, content: str, *, mode: str = "0644", owner: str = "root:root", tag: str = "file") -> str:
    """Lines that write `content` (plain, non-secret) to `path` if it differs."""
    if not content.endswith("\n"):
        content += "\n"
    delimiter = heredoc_delimiter(content)
    return (
        f"airgap_install_file {q(path)} {q(mode)} {q(owner)} {q(tag)} <<'{delimiter}'\n"
        f"{content}{delimiter}\n"
    )


def take_secrets(files: Iterable[SecretFile]) -> str:
    """Lines that read each secret file, in order, from stdin."""
    return "".join(
        f"airgap_secret_file {q(f.path)} {q(f.mode)} {q(f.owner)} {q(f.tag)}\n" for f in files
    )


def step_script(body: str, *, sudo: bool = False) -> str:
    """The whole command text of a step: `body` after the prelude, run by bash (as root through
    `sudo -n` when the login user is not root).

    The login shell on the host only writes the script to a private temporary file and runs it
    with bash; stdin stays free for secrets, and no argument-length limit applies to the script.
    """
    script = f"{PRELUDE}\n{body.rstrip()}\nairgap_manifest\n"
    delimiter = heredoc_delimiter(script, "AIRGAP_STEP")
    return (
        "set -e\n"
        "umask 077\n"
        "step=$(mktemp /tmp/airgap-step.XXXXXX)\n"
        "trap 'rm -f \"$step\"' EXIT\n"
        f"cat > \"$step\" <<'{delimiter}'\n"
        f"{script}"
        f"{delimiter}\n"
        + (SUDO_LAUNCH if sudo else LAUNCH)
    )


LAUNCH = 'bash "$step"\n'
SUDO_LAUNCH = 'sudo -n bash "$step"\n'


def named_step(script: str, name: str) -> str:
    """`script` (from step_script) run with the step's name: on the host, the name of the manifest
    in which the step records the files and units it keeps."""
    if not script.endswith((LAUNCH, SUDO_LAUNCH)):
        raise ValueError(f"{name}: not a step script (step_script makes them)")
    return f"{script[:-1]} {q(name)}\n"
