#!/usr/bin/env python3
"""What a sandbox host holds of the stack, printed as one JSON document (read-only).

Sent to a host's python3 on stdin by `convergence.py`, so that observing a host costs one SSH round
trip. Every file below the places the stack manages is named with its sha256, mode and owner, and
every symbolic link with its target; the trees the mirrors and the file server serve are read as a
client sees them (links followed); the stack's units are named with their state. What legitimately
differs between two applies of one stack (times) is left out here, each with its reason.
"""

import bz2
import grp
import gzip
import hashlib
import json
import lzma
import os
import pwd
import stat
import subprocess
import sys

# Configuration and programs the steps write (and what clients had before them).
MANAGED = (
    "/etc/airgap", "/etc/nginx/sites-enabled", "/etc/nginx/conf.d", "/etc/apache2/sites-enabled",
    "/etc/apt/sources.list", "/etc/apt/sources.list.d", "/etc/apt/keyrings", "/etc/apt/apt.conf.d",
    "/etc/yum.repos.d", "/etc/pki/rpm-gpg", "/etc/pki/airgap", "/etc/docker", "/etc/containerd",
    "/etc/systemd/system", "/usr/local/sbin", "/var/lib/airgap/transfer",
)
# What nginx serves: the apt mirror's published repositories, the RPM mirror's repositories (links
# to dated snapshots, read through the link) and the file server's artifacts.
SERVED = ("/var/lib/airgap/apt-mirror/aptly/public", "/var/lib/airgap/rpm-mirror/public", "/var/lib/airgap/files")
MANIFESTS = "/var/lib/airgap/manifests"
# Release files carry the time they were made (Date:) and their signatures that time: what they
# vouch for, the indexes, is compared instead.
DATED_INDEXES = {"Release", "InRelease", "Release.gpg"}
# Update reports are the history of updates, with their times.
REPORTS = "airgap-reports"
# A compressed index is compared by what it holds: gzip headers carry the time they were packed.
UNPACK = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}
SERVICES = ("nginx.service", "apache2.service", "docker-registry.service", "docker.service", "containerd.service")


def owner(info: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        user = str(info.st_uid)
    try:
        group = grp.getgrgid(info.st_gid).gr_name
    except KeyError:
        group = str(info.st_gid)
    return f"{user}:{group}"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def regular(path: str, info: os.stat_result, *, unpack: bool = False) -> str:
    with open(path, "rb") as handle:
        data = handle.read()
    kind = "file"
    extension = os.path.splitext(path)[1]
    if unpack and extension in UNPACK:
        data, kind = UNPACK[extension](data), "unpacked"
    return f"{kind} {digest(data)} {info.st_mode & 0o7777:o} {owner(info)}"


def managed(root: str, out: dict) -> None:
    """Files and links below `root`, links not followed."""
    if os.path.islink(root) or os.path.isfile(root):
        entry(root, out)
        return
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            entry(os.path.join(directory, name), out)


def entry(path: str, out: dict) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        out[path] = f"link {os.readlink(path)}"
    elif stat.S_ISREG(info.st_mode):
        out[path] = regular(path, info)


def served(root: str, out: dict) -> None:
    """What a client of `root` can fetch: links followed, each file under the path it is served at."""
    for directory, dirs, files in os.walk(root, followlinks=True):
        # nginx refuses dot-paths (staging, temporary files) and leaves them out of its indexes.
        dirs[:] = sorted(d for d in dirs if d != REPORTS and not d.startswith("."))
        if directory != root:  # a client sees folders too, in the index of their parent
            out[directory] = "dir"
        for name in sorted(n for n in files if not n.startswith(".")):
            path = os.path.join(directory, name)
            if name in DATED_INDEXES and "/dists/" in path:
                continue
            try:
                info = os.stat(path)
            except FileNotFoundError:  # a dangling link serves nothing
                continue
            if stat.S_ISREG(info.st_mode):
                out[path] = regular(path, info, unpack="/dists/" in path)


def manifests(out: dict) -> None:
    """Each step's manifest without the modification times it records (when a file was written)."""
    if not os.path.isdir(MANIFESTS):
        return
    for name in sorted(os.listdir(MANIFESTS)):
        if name.startswith("."):
            continue
        lines = []
        with open(os.path.join(MANIFESTS, name)) as handle:
            for line in handle:
                fields = line.rstrip("\n").split("\t")
                lines.append("\t".join(fields[:6] if fields[0] == "file" else fields))
        out[os.path.join(MANIFESTS, name)] = "manifest " + " | ".join(lines)


def units() -> dict:
    """Whether each unit of the stack runs (whether it is enabled shows in the links of
    /etc/systemd/system, among the files)."""
    names = set(SERVICES)
    if os.path.isdir("/etc/systemd/system"):
        names.update(n for n in os.listdir("/etc/systemd/system") if n.startswith("airgap-") and "." in n)
    ordered = sorted(names)
    answer = subprocess.run(["systemctl", "is-active", *ordered], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, timeout=120).stdout.split()
    if len(answer) != len(ordered):  # one question per unit, then
        answer = [subprocess.run(["systemctl", "is-active", unit], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 text=True, timeout=60).stdout.strip() or "unknown" for unit in ordered]
    return dict(zip(ordered, answer, strict=True))


def main() -> int:
    files: dict = {}
    for root in MANAGED:
        if os.path.lexists(root):
            managed(root, files)
    for root in SERVED:
        if os.path.isdir(root):
            served(root, files)
    manifests(files)
    json.dump({"files": files, "units": units()}, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
