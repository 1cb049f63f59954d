"""Pulumi plugin tarballs carried in a bundle, and the commands that install them offline.

Tarballs keep the names Pulumi publishes them under
(`pulumi-resource-command-v1.2.1-linux-amd64.tar.gz`), from which kind, name, version and
platform are read. Each is installed with its checksum, so the CLI refuses a tarball that
differs from the one the bundle verified:

    pulumi plugin install resource command 1.2.1 \
        --file …/pulumi-resource-command-v1.2.1-linux-amd64.tar.gz --checksum <sha256>
"""

from __future__ import annotations

import platform
import re
import shlex
from pathlib import PurePosixPath

from .manifest import BundleError

PLUGIN_FILE = re.compile(
    r"pulumi-(?P<kind>resource|language|analyzer|converter|tool)-(?P<name>[a-z0-9][a-z0-9-]*?)"
    r"-v(?P<version>[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.-]+)?)"
    r"-(?P<os>linux|darwin|windows)-(?P<arch>amd64|arm64|x64|arm)\.(?:tar\.gz|tgz)\Z")
_MACHINE_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def parse_plugin(path: str, sha256: str) -> dict:
    """kind, name, version, os, arch of a tarball named as Pulumi names them."""
    match = PLUGIN_FILE.match(PurePosixPath(path).name)
    if not match:
        raise BundleError(f"{path}: not named like a Pulumi plugin tarball "
                          "(pulumi-resource-<name>-v<version>-<os>-<arch>.tar.gz)")
    return {**match.groupdict(), "path": path, "sha256": sha256}


def this_platform() -> tuple[str, str]:
    return platform.system().lower(), _MACHINE_ARCH.get(platform.machine().lower(), platform.machine().lower())


def install_commands(plugins: list[dict], root: str, *, pulumi: str = "pulumi",
                     platform_filter: tuple[str, str] | None = None) -> list[list[str]]:
    """One `pulumi plugin install` command a plugin (of this machine's platform, by default)."""
    os_name, arch = platform_filter or this_platform()
    chosen = [p for p in plugins if p["os"] == os_name and p["arch"] == arch]
    return [[pulumi, "plugin", "install", p["kind"], p["name"], p["version"],
             "--file", f"{root.rstrip('/')}/{p['path']}", "--checksum", p["sha256"]]
            for p in sorted(chosen, key=lambda p: (p["kind"], p["name"], p["version"]))]


def shell_line(command: list[str]) -> str:
    return shlex.join(command)
