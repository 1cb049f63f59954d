#!/usr/bin/env python3
"""What drifted on this host (airgap-infra): every step's manifest compared with the host, read-only.

Each step that keeps files or units records them when it succeeds, in
/var/lib/airgap/manifests/<step> (tab-separated: `file PATH SHA256 MODE OWNER SIZE MTIME` and
`unit NAME`). This prints one tab-separated line per difference, `STEP KIND SUBJECT PROBLEM`,
and nothing when the host is as the steps left it. Files up to 1 MiB are always hashed; larger
ones (served artifacts) only when their size or modification time moved, so a check stays cheap.
"""

import grp
import hashlib
import os
import pwd
import subprocess
import sys

MANIFESTS = "/var/lib/airgap/manifests"
ALWAYS_HASHED = 1 << 20


def owner_of(stat: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(stat.st_uid).pw_name
    except KeyError:
        user = str(stat.st_uid)
    try:
        group = grp.getgrgid(stat.st_gid).gr_name
    except KeyError:
        group = str(stat.st_gid)
    return f"{user}:{group}"


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_problems(path: str, want_sha: str, mode: str, owner: str, size: str, mtime: str) -> list:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return ["missing"]
    problems = []
    moved = str(stat.st_size) != size or str(int(stat.st_mtime)) != mtime
    if (moved or stat.st_size <= ALWAYS_HASHED) and sha256(path) != want_sha:
        problems.append("content changed")
    if format(stat.st_mode & 0o7777, "o") != mode:
        problems.append(f"mode {stat.st_mode & 0o7777:o}, not {mode}")
    if owner_of(stat) != owner:
        problems.append(f"owner {owner_of(stat)}, not {owner}")
    return problems


def unit_state(unit: str) -> str:
    result = subprocess.run(["systemctl", "is-active", unit], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, timeout=60)
    return result.stdout.strip() or "unknown"


def main(argv: list) -> int:
    directory = argv[1] if len(argv) > 1 else MANIFESTS
    try:
        steps = sorted(name for name in os.listdir(directory) if not name.startswith("."))
    except FileNotFoundError:
        return 0
    for step in steps:
        with open(os.path.join(directory, step)) as handle:
            for line in handle:
                fields = line.rstrip("\n").split("\t")
                if fields[0] == "file" and len(fields) == 7:
                    for problem in file_problems(*fields[1:]):
                        print("\t".join((step, "file", fields[1], problem)))
                elif fields[0] == "unit" and len(fields) == 2:
                    state = unit_state(fields[1])
                    if state != "active":
                        print("\t".join((step, "unit", fields[1], state)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
