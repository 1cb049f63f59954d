"""MANIFEST.json: what a bundle holds, byte for byte, and what the inside holds after importing it.

    {
      "format": "airgap-infra-bundle/1",
      "kind": "full" | "delta",
      "created": "2024-01-01T00:00:00Z",
      "base": null | {"sha256": <hex of the base MANIFEST.json>, "created": …, "kind": …},
      "images":   [{"ref", "layoutName", "digest", "mediaType", "platforms", ["artifactType"]}],
      "packages": {"deb": [{"name", "version", "architecture", "sha256", "size", "path"}], "rpm": […]},
      "plugins":  [{"kind", "name", "version", "os", "arch", "path", "sha256"}],
      "files":    [{"path", "size", "sha256"} | {"path", "link"}],   every payload file in this bundle
      "carried":  [same shape],   a delta's files the inside already has (state = files + carried)
      "parts":    [{"path", "size", "sha256"}]                        when split for media
    }

`images`, `packages` and `plugins` always describe the whole state after import, so a delta's
manifest is as good a base for the next delta as a full one. Every list is sorted; the JSON is
written with sorted keys, so the same content gives the same bytes (bar `created`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

FORMAT = "airgap-infra-bundle/1"
MANIFEST_NAME = "MANIFEST.json"
SIGNATURE_NAME = "MANIFEST.json.asc"
PARTS_DIR = "parts"
# Top-level payload directories, in the order they are imported (metadata-free content first).
SECTIONS = ("images", "apt", "rpm", "files", "pulumi/plugins", "pulumi/cli", "wheels")
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
CHUNK = 1 << 20
HASH_WORKERS = max(2, min(8, os.cpu_count() or 2))


class BundleError(RuntimeError):
    """Something about a bundle that must stop the command; the message names the file."""


@dataclass(frozen=True)
class FileEntry:
    """A regular file at `path` in the bundle."""

    path: str
    size: int
    sha256: str
    """Hex sha256 of its content."""

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class LinkEntry:
    """A symbolic link at `path` in the bundle; `link` stays inside its tree."""

    path: str
    link: str

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "link": self.link}


Entry = FileEntry | LinkEntry


def by_path(entry: Entry) -> str:
    """Sort key of entries (a manifest's paths are unique)."""
    return entry.path


def read_entry(value: object, where: str) -> Entry:
    """One entry of a manifest's `files` or `carried`, checked: its path, and its size and
    sha256 or its link."""
    if not isinstance(value, dict) or not isinstance(value.get("path"), str):
        raise BundleError(f"{MANIFEST_NAME}: {where}: an entry without a path")
    path = check_path(value["path"], where)
    if "link" in value:
        link = value["link"]
        if not isinstance(link, str) or not link_stays_inside(path, link):
            raise BundleError(f"{MANIFEST_NAME}: {path}: link {link!r} leaves its section")
        return LinkEntry(path, link)
    size, digest = value.get("size"), value.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BundleError(f"{MANIFEST_NAME}: {path}: size {size!r} is not a byte count")
    if not isinstance(digest, str) or not HEX64.match(digest):
        raise BundleError(f"{MANIFEST_NAME}: {path}: sha256 {digest!r} is not 64 hex digits")
    return FileEntry(path, size, digest)


@dataclass(frozen=True)
class SourceFile:
    """A regular file to carry: its path in the bundle and where it is read from."""

    path: str
    source: Path


def section_of(path: str) -> str | None:
    for section in SECTIONS:
        if path == section or path.startswith(section + "/"):
            return section
    return None


def check_path(path: str, where: str = "files") -> str:
    """A payload path as the manifest may name it: relative, normalised, inside a section."""
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or "\0" in path
            or any(part in ("", ".", "..") for part in parts)):
        raise BundleError(f"{MANIFEST_NAME}: {where}: {path!r} is not a plain relative path")
    if section_of(path) in (None, path):
        raise BundleError(f"{MANIFEST_NAME}: {where}: {path!r} is outside {', '.join(SECTIONS)}")
    return path


def link_stays_inside(path: str, target: str) -> bool:
    """A relative link whose target stays in the link's own tree (apt/<name>, rpm/<name>, …)."""
    if target.startswith("/") or not target:
        return False
    section = section_of(path) or ""
    depth = len(section.split("/")) + (1 if section in ("apt", "rpm") else 0)
    root = PurePosixPath(*path.split("/")[:depth])
    resolved = os.path.normpath(str(PurePosixPath(path).parent / target))
    return resolved == str(root) or resolved.startswith(str(root) + "/")


# --- hashing ------------------------------------------------------------------------------

def sha256_file(path: Path) -> tuple[int, str]:
    """(size, hex sha256) of a file, read once."""
    with open(path, "rb") as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return handle.tell(), digest.hexdigest()


def copy_hashing(source: Path, target: Path) -> tuple[int, str]:
    """Copy `source` to `target` (new file, source's mode bits) and return (size, hex sha256) of
    the bytes written: one read serves both, so what is checked is what was copied."""
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    with open(source, "rb") as reader, open(target, "xb") as writer:
        while True:
            count = reader.readinto(buffer)
            if not count:
                break
            digest.update(view[:count])
            writer.write(view[:count])
            size += count
        os.fchmod(writer.fileno(), os.fstat(reader.fileno()).st_mode & 0o777)
    return size, digest.hexdigest()


def parallel_map(function, items, workers: int = HASH_WORKERS) -> list:
    """`function` over `items` on threads (hashlib and file I/O release the GIL), in order.

    Largest first would balance better, but items are usually sorted paths; order is kept."""
    items = list(items)
    if len(items) < 2:
        return [function(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


def tree_files(root: Path, prefix: str) -> list[SourceFile | LinkEntry]:
    """Everything below `root` as files to carry and links, sorted by path.

    Relative symbolic links that stay inside the tree are kept as links (Debian archives carry
    `dists/stable -> bookworm`); anything else that is not a regular file is refused.
    """
    found: list[SourceFile | LinkEntry] = []
    root = root.resolve()
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        here = Path(directory)
        for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
            source = here / name
            relative = source.relative_to(root).as_posix()
            path = f"{prefix}/{relative}"
            check_path(path, str(root))
            if source.is_symlink():
                target = os.readlink(source)
                if not link_stays_inside(path, target):
                    raise BundleError(f"{source}: a link to {target!r}, outside the tree; "
                                      "give a tree without it")
                found.append(LinkEntry(path, target))
            elif source.is_file():
                found.append(SourceFile(path, source))
            else:
                raise BundleError(f"{source}: not a regular file, directory or link")
        # Links to directories are recorded above and must not be walked into.
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
    return sorted(found, key=lambda item: item.path)


# --- the manifest -------------------------------------------------------------------------

@dataclass
class Manifest:
    kind: str = "full"
    created: str = ""
    base: dict | None = None
    images: list[dict] = field(default_factory=list)
    packages: dict[str, list[dict]] = field(default_factory=lambda: {"deb": [], "rpm": []})
    plugins: list[dict] = field(default_factory=list)
    files: list[Entry] = field(default_factory=list)
    carried: list[Entry] = field(default_factory=list)
    parts: list[FileEntry] = field(default_factory=list)

    def state(self) -> dict[str, Entry]:
        """Path → entry of everything the inside holds once this bundle is imported."""
        return {entry.path: entry for entry in [*self.carried, *self.files]}

    def payload_bytes(self) -> int:
        return sum(entry.size for entry in self.files if isinstance(entry, FileEntry))

    def to_bytes(self) -> bytes:
        document = {
            "format": FORMAT,
            "kind": self.kind,
            "created": self.created,
            "base": self.base,
            "images": sorted(self.images, key=lambda image: image["ref"]),
            "packages": {kind: sorted(found, key=package_key) for kind, found in sorted(self.packages.items())},
            "plugins": sorted(self.plugins, key=lambda plugin: plugin["path"]),
            "files": [entry.to_json() for entry in sorted(self.files, key=by_path)],
            "carried": [entry.to_json() for entry in sorted(self.carried, key=by_path)],
            "parts": [part.to_json() for part in self.parts],
        }
        return (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()

    def write(self, directory: Path) -> Path:
        path = directory / MANIFEST_NAME
        temporary = path.with_name(f".{MANIFEST_NAME}.{os.getpid()}")
        temporary.write_bytes(self.to_bytes())
        os.replace(temporary, path)
        return path

    @classmethod
    def from_bytes(cls, data: bytes, where: str = MANIFEST_NAME) -> Manifest:
        try:
            document = json.loads(data)
        except ValueError as error:
            raise BundleError(f"{where}: not JSON ({error})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise BundleError(f"{where}: not a bundle manifest (format is not {FORMAT!r})")
        kind = document.get("kind")
        if kind not in ("full", "delta"):
            raise BundleError(f"{where}: kind {kind!r} is neither full nor delta")

        def entries(name: str) -> list[Entry]:
            values = document.get(name) or []
            if not isinstance(values, list):
                raise BundleError(f"{where}: {name} is not a list")
            return [read_entry(value, name) for value in values]

        files, carried = entries("files"), entries("carried")
        counts = collections.Counter(entry.path for entry in [*files, *carried])
        duplicates = sorted(path for path, count in counts.items() if count > 1)
        if duplicates:
            raise BundleError(f"{where}: {duplicates[0]} is listed twice")
        parts = []
        for index, value in enumerate(document.get("parts") or []):
            expected = part_name(index)
            if not isinstance(value, dict) or value.get("path") != expected:
                raise BundleError(f"{where}: part {index} should be {expected}")
            size, digest = value.get("size"), value.get("sha256")
            if not isinstance(size, int) or not isinstance(digest, str) or not HEX64.match(digest):
                raise BundleError(f"{where}: {expected}: size or sha256 missing")
            parts.append(FileEntry(expected, size, digest))
        packages = document.get("packages") or {}
        return cls(kind=kind, created=str(document.get("created", "")), base=document.get("base"),
                   images=list(document.get("images") or []),
                   packages={"deb": list(packages.get("deb") or []), "rpm": list(packages.get("rpm") or [])},
                   plugins=_plugins(document.get("plugins") or [], {e.path: e for e in [*files, *carried]}, where),
                   files=files, carried=carried, parts=parts)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise BundleError(f"{path}: cannot be read ({error.strerror})") from None
        return cls.from_bytes(data, str(path))


def _plugins(values: list, state: dict[str, Entry], where: str) -> list[dict]:
    """Plugins as the manifest lists them, each read again from its file name and checked against
    the file list: their paths and checksums end up in commands an operator runs."""
    from .plugins import parse_plugin

    found = []
    for value in values:
        path = value.get("path") if isinstance(value, dict) else None
        entry = state.get(path) if isinstance(path, str) else None
        if (not isinstance(entry, FileEntry) or not entry.path.startswith("pulumi/plugins/")
                or entry.sha256 != value.get("sha256")):
            raise BundleError(f"{where}: plugin {path!r} is not a listed file of pulumi/plugins/ with that sha256")
        found.append(parse_plugin(entry.path, entry.sha256))
    return found


def package_key(package: dict) -> tuple:
    return (package.get("name", ""), package.get("architecture", ""), package.get("version", ""),
            package.get("path", ""))


def part_name(index: int) -> str:
    return f"{PARTS_DIR}/bundle.tar.{index:03d}"


def manifest_sha256(path: Path) -> str:
    return sha256_file(path)[1]
