"""Purging a component's data (`purge: true`): only below the data roots, on the host as well.

The settings accept data paths below `DATA_ROOTS` only, by their text; the host may have links
above them (a /srv linked to / makes /srv/etc the system's /etc), so the delete step resolves them
there and refuses a path that leaves the roots (programs/shell/purge.sh).
"""

from __future__ import annotations

from . import programs
from .shell import q

DATA_ROOTS = ("/srv", "/data", "/mnt", "/var/lib/airgap", "/var/opt/airgap", "/opt/airgap")
"""Where persistent data may live on a host: below a folder the administrator keeps for site data,
or below an `airgap` folder of the system's own trees, never beside what packages keep there
(/var/lib/dpkg, /opt/containerd)."""
PURGE = programs.load("shell/purge.sh")


def purge_lines(*paths: str, roots: tuple[str, ...] = DATA_ROOTS) -> str:
    """Remove `paths` once each is known to resolve below `roots` on the host."""
    return "\n".join([PURGE, " ".join(["airgap_purge", q(":".join(roots)), *(q(path) for path in paths)])])
