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
from dataclasses import dataclass
from typing import Iterable

q = shlex.quote

# Functions every step may call. `CHANGED` collects the tags of files that changed on this run,
# so a step restarts a service only when something it reads was replaced.
PRELUDE = r"""set -euo pipefail
umask 022
CHANGED=""
AIRGAP_WORK=$(mktemp -d /tmp/airgap-work.XXXXXX)  # private (0700): staged files, secrets
AIRGAP_TMP=("$AIRGAP_WORK")
trap 'rm -rf "${AIRGAP_TMP[@]}"' EXIT
airgap_install_file() {  # PATH MODE OWNER TAG; content on stdin
  # Staged outside the target directory and compared first, so an unchanged file leaves the
  # file and its directory untouched (not even an mtime).
  local path=$1 mode=$2 owner=$3 tag=$4 staged
  staged=$(mktemp "$AIRGAP_WORK/file.XXXXXX")
  cat > "$staged"
  chmod "$mode" "$staged"; chown "$owner" "$staged"
  if [ -f "$path" ] && cmp -s "$staged" "$path" \
     && [ "$(stat -c '%a %U:%G' "$path")" = "$(stat -c '%a %U:%G' "$staged")" ]; then
    return 0
  fi
  install -d -m 0755 "$(dirname "$path")"
  cp -p "$staged" "$path.airgap-new"
  mv -f "$path.airgap-new" "$path"
  CHANGED="$CHANGED $tag"
}
airgap_secret_file() {  # PATH MODE OWNER TAG; next base64 line of the step's stdin
  local line decoded
  if ! IFS= read -r line; then
    echo "airgap: no secret on stdin for $1" >&2; exit 1
  fi
  decoded=$(mktemp "$AIRGAP_WORK/secret.XXXXXX")  # mktemp creates it 0600
  if ! printf '%s' "$line" | base64 -d > "$decoded"; then
    echo "airgap: secret for $1 is not base64" >&2; exit 1
  fi
  airgap_install_file "$@" < "$decoded"  # a redirect, not a pipe: CHANGED must survive
}
airgap_secret_tmp() {  # VAR: next stdin secret into a private temp file (removed on exit); VAR=its path
  local line tmp
  if ! IFS= read -r line; then
    echo "airgap: no secret on stdin for $1" >&2; exit 1
  fi
  tmp=$(mktemp "$AIRGAP_WORK/secret.XXXXXX")
  if ! printf '%s' "$line" | base64 -d > "$tmp"; then
    echo "airgap: secret for $1 is not base64" >&2; exit 1
  fi
  printf -v "$1" '%s' "$tmp"
}
airgap_changed() {  # TAG...: true when any of these tags changed on this run
  local tag
  for tag in "$@"; do
    case " $CHANGED " in *" $tag "*) return 0 ;; esac
  done
  return 1
}
"""


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
    script = f"#!/bin/bash\n{PRELUDE}\n{body.rstrip()}\n"
    delimiter = heredoc_delimiter(script, "AIRGAP_STEP")
    return (
        "set -e\n"
        "umask 077\n"
        "step=$(mktemp /tmp/airgap-step.XXXXXX)\n"
        "trap 'rm -f \"$step\"' EXIT\n"
        f"cat > \"$step\" <<'{delimiter}'\n"
        f"{script}"
        f"{delimiter}\n"
        + ("sudo -n bash \"$step\"\n" if sudo else "bash \"$step\"\n")
    )
