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
CLI_FILE = re.compile(
    r"pulumi-v(?P<version>[0-9]+\.[0-9]+\.[0-9]+)-(?P<os>linux|darwin)-(?P<arch>x64|arm64)\.tar\.gz\Z")
# Python packages named pulumi-* that are not providers: they need no plugin.
NOT_PROVIDERS = {"pulumi", "pulumi-policy"}
PLUGIN_URL = "https://get.pulumi.com/releases/plugins/{file}"


def parse_plugin(path: str, sha256: str) -> dict:
    """kind, name, version, os, arch of a tarball named as Pulumi names them."""
    match = PLUGIN_FILE.match(PurePosixPath(path).name)
    if not match:
        raise BundleError(f"{path}: not named like a Pulumi plugin tarball "
                          "(pulumi-resource-<name>-v<version>-<os>-<arch>.tar.gz)")
    return {**match.groupdict(), "path": path, "sha256": sha256}


def pinned_providers(requirements: str) -> list[tuple[str, str]]:
    """(plugin name, version) of every provider SDK pinned with `==` in a requirements text
    (`pulumi-command==1.2.1` needs the `command` resource plugin at 1.2.1)."""
    found = []
    for line in requirements.splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        match = re.fullmatch(r"(pulumi[-_][A-Za-z0-9-_]+)\s*==\s*([0-9]+\.[0-9]+\.[0-9]+)", line)
        if match:
            package = match.group(1).lower().replace("_", "-")
            if package not in NOT_PROVIDERS:
                found.append((package[len("pulumi-"):], match.group(2)))
    return sorted(set(found))


def missing_plugins(plugins: list[dict], pinned: list[tuple[str, str]],
                    platforms: list[tuple[str, str]]) -> list[str]:
    """The tarball names a bundle lacks: one per pinned provider and platform."""
    have = {(p["kind"], p["name"], p["version"], p["os"], p["arch"]) for p in plugins}
    return [f"pulumi-resource-{name}-v{version}-{os_name}-{arch}.tar.gz"
            for name, version in pinned for os_name, arch in platforms
            if ("resource", name, version, os_name, arch) not in have]


def parse_platform(value: str) -> tuple[str, str]:
    match = re.fullmatch(r"(linux|darwin|windows)-(amd64|arm64)", value)
    if not match:
        raise BundleError(f"--plugin-platform {value!r}: give OS-ARCH, e.g. linux-amd64 or darwin-arm64")
    return match.group(1), match.group(2)


def cli_archive(path: str) -> dict:
    """version, os, arch of a Pulumi CLI archive named as Pulumi publishes it (pulumi-v3.x.y-linux-x64.tar.gz)."""
    match = CLI_FILE.match(PurePosixPath(path).name)
    if not match:
        raise BundleError(f"{path}: not named like a Pulumi CLI archive "
                          "(pulumi-v<version>-<linux|darwin>-<x64|arm64>.tar.gz)")
    return {**match.groupdict(), "path": path}


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
