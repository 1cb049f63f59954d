"""Packages in published trees, read from the trees' own indexes.

Debian: every `dists/…/binary-<arch>/Packages` (or `.gz`, `.xz`) below the tree, as apt reads
it: `Package`, `Version`, `Architecture`, `Filename` (relative to the archive root, the parent
of `dists/`), `Size`, `SHA256`. RPM: every `repodata/repomd.xml` below the tree, its `primary`
data (gz, xz, bz2 or zstd, as createrepo_c writes it): name, epoch:version-release, arch,
`checksum type="sha256"` and `location href`.

`path` in the results is the package's bundle path (`apt/<name>/pool/…`), so a package can be
checked against the file the bundle carries.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from .manifest import BundleError

RPM_NS = {"repo": "http://linux.duke.edu/metadata/repo", "common": "http://linux.duke.edu/metadata/common"}


def _decompressed(path: Path) -> bytes:
    data = path.read_bytes()
    name = path.name
    try:
        if name.endswith(".gz"):
            return gzip.decompress(data)
        if name.endswith(".xz"):
            return lzma.decompress(data)
        if name.endswith(".bz2"):
            return bz2.decompress(data)
        if name.endswith(".zst"):
            # No zstd in this Python's standard library; the zstd tool is where createrepo_c is.
            result = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, timeout=300, check=False)
            if result.returncode != 0:
                raise BundleError(f"{path}: zstd -dc failed: {result.stderr.decode(errors='replace').strip()}")
            return result.stdout
    except (OSError, EOFError, lzma.LZMAError) as error:
        raise BundleError(f"{path}: cannot be decompressed ({error})") from None
    return data


def parse_deb822(text: str) -> list[dict[str, str]]:
    """Paragraphs of a Packages file; continuation lines are joined to their field."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, last = {}, None
        elif line[0] in " \t" and last:
            current[last] += "\n" + line.strip()
        elif ":" in line:
            last, _, value = line.partition(":")
            current[last] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def _packages_indexes(tree: Path) -> list[Path]:
    """One Packages index per binary directory, the uncompressed one when it is there."""
    chosen = []
    for directory in sorted({p.parent for p in tree.rglob("Packages*") if "dists" in p.relative_to(tree).parts}):
        for name in ("Packages", "Packages.gz", "Packages.xz", "Packages.bz2"):
            if (directory / name).is_file():
                chosen.append(directory / name)
                break
    return chosen


def deb_packages(tree: Path, prefix: str) -> list[dict]:
    """Every binary package the apt tree's indexes list (once, however many suites list it)."""
    found = {}
    for index in _packages_indexes(tree):
        parts = index.relative_to(tree).parts
        archive_root = Path(*parts[:parts.index("dists")])
        for paragraph in parse_deb822(_decompressed(index).decode("utf-8", errors="replace")):
            if not paragraph.get("Package") or not paragraph.get("Filename"):
                continue
            if not paragraph.get("SHA256"):
                raise BundleError(f"{index}: {paragraph['Package']} has no SHA256 field")
            path = "/".join(filter(None, [prefix, archive_root.as_posix() if parts.index("dists") else "",
                                          paragraph["Filename"]]))
            package = {
                "name": paragraph["Package"], "version": paragraph.get("Version", ""),
                "architecture": paragraph.get("Architecture", ""), "sha256": paragraph["SHA256"].lower(),
                "size": int(paragraph.get("Size", "0") or 0), "path": path,
            }
            found[(path, package["sha256"])] = package
    return sorted(found.values(), key=lambda p: (p["name"], p["architecture"], p["version"], p["path"]))


def rpm_packages(tree: Path, prefix: str) -> list[dict]:
    """Every package the primary metadata of each repository below `tree` lists."""
    found = {}
    for repomd in sorted(tree.rglob("repodata/repomd.xml")):
        repo_root = repomd.parent.parent
        relative_root = repo_root.relative_to(tree).as_posix()
        try:
            document = ElementTree.parse(repomd)
        except ElementTree.ParseError as error:
            raise BundleError(f"{repomd}: not readable XML ({error})") from None
        primary = document.find("repo:data[@type='primary']/repo:location", RPM_NS)
        if primary is None:
            raise BundleError(f"{repomd}: no primary metadata listed")
        primary_file = repo_root / primary.get("href", "")
        try:
            root = ElementTree.fromstring(_decompressed(primary_file))
        except (OSError, ElementTree.ParseError) as error:
            raise BundleError(f"{primary_file}: cannot be read ({error})") from None
        for package in root.findall("common:package", RPM_NS):
            version = package.find("common:version", RPM_NS)
            checksum = package.find("common:checksum", RPM_NS)
            location = package.find("common:location", RPM_NS)
            if version is None or checksum is None or location is None:
                raise BundleError(f"{primary_file}: a package without version, checksum or location")
            if checksum.get("type") != "sha256":
                raise BundleError(f"{primary_file}: {package.findtext('common:name', '', RPM_NS)} has a "
                                  f"{checksum.get('type')} checksum; only sha256 is accepted")
            epoch = version.get("epoch", "0")
            evr = f"{version.get('ver')}-{version.get('rel')}"
            path = "/".join(filter(None, [prefix, relative_root if relative_root != "." else "", location.get("href")]))
            size = package.find("common:size", RPM_NS)
            entry = {
                "name": package.findtext("common:name", "", RPM_NS),
                "version": evr if epoch in ("0", "", None) else f"{epoch}:{evr}",
                "architecture": package.findtext("common:arch", "", RPM_NS),
                "sha256": (checksum.text or "").strip().lower(),
                "size": int(size.get("package", "0")) if size is not None else 0,
                "path": path,
            }
            found[(path, entry["sha256"])] = entry
    return sorted(found.values(), key=lambda p: (p["name"], p["architecture"], p["version"], p["path"]))
