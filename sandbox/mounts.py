"""Mounts the machine sees, and what still uses a tree: what sandbox hosts leave behind if anything.

Read from /proc (mountinfo, each process's root), so a check finds what another run left too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path


class StillMounted(RuntimeError):
    """A tree was not removed because something is mounted inside it."""


def _mountinfo() -> list[tuple[str, str]]:
    """(mount point, super options) of every mount the machine sees."""
    rows = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, after = line.split(" - ", 1)
        point = before.split()[4]
        rows.append((_unescape(point), after.split()[-1]))
    return rows


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    return [point for point, _ in _mountinfo() if point == str(path) or point.startswith(prefix)]


def mounted_lowerdirs() -> set[str]:
    """The lower directories of every overlay mounted now."""
    lowers = set()
    for _, options in _mountinfo():
        for option in options.split(","):
            if option.startswith("lowerdir="):
                lowers.update(option[len("lowerdir="):].split(":"))
    return lowers


def remove_tree(path: Path) -> None:
    """rm -rf that refuses to descend into anything still mounted (a bound /dev, an overlay)."""
    mounted = mount_points_under(path)
    if mounted:
        raise StillMounted(f"not removing {path}: still mounted: {', '.join(mounted)}")
    shutil.rmtree(path)


def pids_rooted_under(path: Path) -> list[int]:
    """PIDs whose root directory is `path` or inside it (a chroot, an sshd privsep child)."""
    prefix = str(path).rstrip("/") + "/"
    pids = []
    for link in Path("/proc").glob("[0-9]*/root"):
        with contextlib.suppress(OSError):
            root = os.readlink(link)
            if root == str(path) or root.startswith(prefix):
                pids.append(int(link.parent.name))
    return pids
