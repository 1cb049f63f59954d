"""File server content: artifacts verified by sha256 on arrival, with a `SHA256SUMS` index.

Each artifact comes from a URL the host can reach or from a file copied from the admin machine
(staged under `.incoming/<sha256>`, content-addressed, never served: nginx hides dot-paths;
moved into place once verified).
An artifact already in place with the right checksum is left alone; a new one is written to a
temporary file beside its target and renamed into place only if its sha256 matches, so a
mismatch fails the step and the previous file stays served. An artifact the stack no longer
lists stops being served: what the previous index named and the new one does not is removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import programs
from .formats import checksums
from .purge import purge_lines
from .shell import put_file, q

STAGING = ".incoming"


@dataclass(frozen=True)
class Artifact:
    path: str
    sha256: str
    url: str | None = None
    staged: bool = False
    """Copied from the admin machine to `<root>/.incoming/<sha256>`."""


ARTIFACTS = programs.load("file_server/artifact.sh")


def sha256sums(artifacts: list[Artifact]) -> str:
    """`sha256sum -c` format, sorted by path."""
    return checksums.sha256sums((a.sha256, a.path) for a in sorted(artifacts, key=lambda a: a.path))


def install_body(root: str, artifacts: list[Artifact]) -> str:
    """Install step: each artifact verified into place, then the index (programs/file_server/artifact.sh)."""
    lines = [
        ARTIFACTS,
        f"install -d -m 0755 {q(root)}",
    ]
    for artifact in sorted(artifacts, key=lambda a: a.path):
        staged = f"{root}/{STAGING}/{artifact.sha256}" if artifact.staged else ""
        lines.append("airgap_artifact " + " ".join(q(v) for v in (root, artifact.path, artifact.sha256,
                                                                   artifact.url or "", staged)))
    lines += [
        "airgap_artifacts_arrived",
        " ".join(["airgap_artifacts_prune", q(root), *(q(a.path) for a in sorted(artifacts, key=lambda a: a.path))]),
        put_file(f"{root}/SHA256SUMS", sha256sums(artifacts) or "\n", tag="index"),
    ]
    if artifacts:  # sha256sum -c refuses an index without a line
        lines.append(f"(cd {q(root)} && sha256sum --quiet -c SHA256SUMS)")
    return "\n".join(lines)


def uninstall_body(root: str, *, purge: bool) -> str:
    if purge:
        return purge_lines(root)
    return f"echo {q(f'file server removed; files kept in {root}')} >&2"
