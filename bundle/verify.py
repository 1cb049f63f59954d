"""Checking a bundle against its manifest: every size, every sha256, the signature, nothing extra.

A plain bundle is checked in place (files hashed on several threads); a split one is read once
as a tar stream across its parts, each part's size and sha256 and each member's checked. With a
`stage` directory, every checked byte is also written there as it is hashed, which is how
`import` gets a copy that is exactly what was verified, in one read of the media.

Problems are collected, not raised one by one, so a report names every missing, extra,
truncated or altered file at once.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from . import signing
from .manifest import (
    CHUNK,
    MANIFEST_NAME,
    PARTS_DIR,
    SIGNATURE_NAME,
    BundleError,
    Entry,
    FileEntry,
    LinkEntry,
    Manifest,
    copy_hashing,
    parallel_map,
    sha256_file,
)
from .parts import PartsReader

TAR_BUFFER = 1 << 20


@dataclass
class Verified:
    loaded: Loaded
    problems: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0

    @property
    def manifest(self) -> Manifest:
        return self.loaded.manifest

    @property
    def signer(self) -> str | None:
        return self.loaded.signer

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Loaded:
    """A manifest read once: the bytes that were checked are the bytes that are used."""

    manifest: Manifest
    raw: bytes
    signature: bytes | None
    signer: str | None


def load_manifest(bundle: Path, public_key: Path | None) -> Loaded:
    """The manifest, its signature checked first when a key is given (the signer's fingerprint)."""
    path = bundle / MANIFEST_NAME
    if not path.is_file() or path.is_symlink():
        raise BundleError(f"{path}: missing; {bundle} is not a bundle")
    raw = path.read_bytes()
    signature_path = bundle / SIGNATURE_NAME
    signature = signature_path.read_bytes() if signature_path.is_file() else None
    signer = None
    if public_key is not None:
        if signature is None:
            raise BundleError(f"{SIGNATURE_NAME}: missing; the bundle is unsigned, "
                              "and --public-key asks for a signature")
        with tempfile.TemporaryDirectory(prefix="bundle-manifest-") as scratch:
            (Path(scratch) / MANIFEST_NAME).write_bytes(raw)
            (Path(scratch) / SIGNATURE_NAME).write_bytes(signature)
            signer = signing.verify(Path(scratch) / MANIFEST_NAME, Path(scratch) / SIGNATURE_NAME, public_key)
    return Loaded(Manifest.from_bytes(raw, MANIFEST_NAME), raw, signature, signer)


def walk(root: Path) -> dict[str, str]:
    """Relative path → `file`, `link` or `other` for everything but directories, links not followed."""
    found = {}
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        for name in dirnames + filenames:
            path = here / name
            if path.is_symlink():
                found[path.relative_to(root).as_posix()] = "link"
            elif name in filenames:
                found[path.relative_to(root).as_posix()] = "file" if path.is_file() else "other"
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
    return found


def _size_problem(path: str, actual: int, expected: int) -> str:
    state = "truncated" if actual < expected else "grown"
    return f"{path}: {actual} bytes, the manifest says {expected} ({state})"


def verify_bundle(bundle: Path, public_key: Path | None = None, *, stage: Path | None = None,
                  loaded: Loaded | None = None) -> Verified:
    """Check everything; with `stage`, also leave a verified copy of the payload there.

    `loaded` is what `load_manifest` returned, when the caller has already read it."""
    loaded = loaded or load_manifest(bundle, public_key)
    manifest = loaded.manifest
    result = Verified(loaded)
    if stage is not None:
        stage.mkdir(parents=True, exist_ok=True)
    if manifest.parts:
        _verify_parts(bundle, manifest, result, stage)
    else:
        _verify_tree(bundle, manifest, result, stage)
    return result


def _verify_tree(bundle: Path, manifest: Manifest, result: Verified, stage: Path | None) -> None:
    found = walk(bundle)
    expected = {entry.path: entry for entry in manifest.files}
    allowed = {MANIFEST_NAME, SIGNATURE_NAME}
    for path, kind in sorted(found.items()):
        if path not in expected and path not in allowed:
            result.problems.append(f"{path}: not in the manifest (extra {'file' if kind == 'file' else kind})")
    to_hash: list[FileEntry] = []
    for path, entry in sorted(expected.items()):
        present = found.get(path)
        if present is None:
            result.problems.append(f"{path}: missing")
        elif isinstance(entry, LinkEntry):
            target = os.readlink(bundle / path) if present == "link" else None
            if target != entry.link:
                result.problems.append(f"{path}: should be a link to {entry.link} (altered)")
            elif stage is not None:
                (stage / path).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(entry.link, stage / path)
        elif present != "file":
            result.problems.append(f"{path}: not a regular file (altered)")
        else:
            size = (bundle / path).stat().st_size
            if size != entry.size:
                result.problems.append(_size_problem(path, size, entry.size))
            else:
                to_hash.append(entry)
    if stage is not None:
        for directory in sorted({str(Path(entry.path).parent) for entry in to_hash}):
            (stage / directory).mkdir(parents=True, exist_ok=True)

    def check(entry: FileEntry) -> str | None:
        source = bundle / entry.path
        if stage is not None:
            size, digest = copy_hashing(source, stage / entry.path)
        else:
            size, digest = sha256_file(source)
        if size != entry.size:
            return _size_problem(entry.path, size, entry.size)
        if digest != entry.sha256:
            return f"{entry.path}: sha256 differs from the manifest (altered)"
        return None

    # Largest first: a big blob started last would leave the other threads idle at the end.
    ordered = sorted(to_hash, key=lambda entry: -entry.size)
    result.problems += sorted(filter(None, parallel_map(check, ordered)))
    result.files = len(to_hash)
    result.bytes = sum(entry.size for entry in to_hash)


def _verify_parts(bundle: Path, manifest: Manifest, result: Verified, stage: Path | None) -> None:
    found = walk(bundle)
    part_paths = {part.path for part in manifest.parts}
    for path, kind in sorted(found.items()):
        if path not in part_paths and path not in (MANIFEST_NAME, SIGNATURE_NAME):
            result.problems.append(f"{path}: not in the manifest (extra {'file' if kind == 'file' else kind})")
    for part in manifest.parts:
        present = found.get(part.path)
        if present is None:
            result.problems.append(f"{part.path}: missing")
        elif present != "file":
            result.problems.append(f"{part.path}: not a regular file (altered)")
        elif (size := (bundle / part.path).stat().st_size) != part.size:
            result.problems.append(_size_problem(part.path, size, part.size))
    if result.problems:
        return  # a missing or cut part cannot be read through; the names above say enough

    expected = {entry.path: entry for entry in manifest.files}
    seen: set[str] = set()
    reader = PartsReader(bundle, manifest.parts)
    try:
        # A stream ("r|") only reads from its file object; typeshed asks for a seekable one.
        with tarfile.open(fileobj=cast(IO[bytes], reader), mode="r|", bufsize=TAR_BUFFER) as archive:
            for member in archive:
                where = _parts_holding(manifest.parts, member.offset_data, member.size)
                problem = _check_member(archive, member, expected.get(member.name), seen, stage, where)
                if problem:
                    result.problems.append(problem)
                elif member.isfile():
                    result.files += 1
                    result.bytes += member.size
    except (tarfile.TarError, EOFError, OSError) as error:
        result.problems.append(f"{PARTS_DIR}/: not a readable tar stream ({error})")
    finally:
        reader.finish()
        reader.close()
    result.problems += reader.problems
    for path in sorted(set(expected) - seen):
        result.problems.append(f"{path}: missing from the parts")


def _parts_holding(parts: list[FileEntry], offset: int, size: int) -> str:
    """The part (or `first–last` parts) a member's data lies in: stream offsets, not read-ahead."""
    ends = list(itertools.accumulate(part.size for part in parts))
    first = bisect.bisect_right(ends, offset)
    last = bisect.bisect_right(ends, offset + max(size, 1) - 1)
    first, last = min(first, len(parts) - 1), min(last, len(parts) - 1)
    return parts[first].path if first == last else f"{parts[first].path}–{parts[last].path.rsplit('.', 1)[1]}"


def _check_member(archive: tarfile.TarFile, member: tarfile.TarInfo, entry: Entry | None,
                  seen: set[str], stage: Path | None, where: str) -> str | None:
    name = member.name
    if entry is None:
        return f"{name}: in {where} but not in the manifest (extra)"
    if name in seen:
        return f"{name}: twice in the parts (altered)"
    seen.add(name)
    if isinstance(entry, LinkEntry):
        if not member.issym() or member.linkname != entry.link:
            return f"{name}: should be a link to {entry.link} (altered, in {where})"
        if stage is not None:
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(entry.link, stage / name)
        return None
    source = archive.extractfile(member) if member.isfile() else None
    if source is None:
        return f"{name}: not a regular file (altered, in {where})"
    if member.size != entry.size:
        return _size_problem(name, member.size, entry.size) + f", in {where}"
    digest = hashlib.sha256()
    target = None
    if stage is not None:
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        target = open(stage / name, "xb")
    try:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            if target is not None:
                target.write(chunk)
        if target is not None:
            os.fchmod(target.fileno(), member.mode & 0o755 | 0o644)
    finally:
        if target is not None:
            target.close()
    if digest.hexdigest() != entry.sha256:
        return f"{name}: sha256 differs from the manifest (altered, in {where})"
    return None
