"""`bundle create`: gather everything for the inside into one directory with its manifest.

1. Images are copied with skopeo into a working layout (kept with `--work`, so later runs fetch
   only what changed); the bundle's `images/` takes the named images and the blobs they use.
2. Trees and files are taken as they are: `--apt-tree` → `apt/<name>/`, `--rpm-tree` →
   `rpm/<name>/`, `--files` → `files/`, `--pulumi-plugins` → `pulumi/plugins/`, `--wheelhouse` →
   `wheels/`. Every package a tree's index lists must be there with the index's sha256.
3. Everything is hashed; for a delta, whatever the base manifest's state already has (same
   path, same sha256) is left out and listed as `carried`.
4. The payload is written (copied and hashed again, so a source that changed meanwhile is
   caught) as a directory tree, or as one tar stream cut into parts; then MANIFEST.json and its
   signature.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from . import images as image_layout, repos, signing
from .manifest import (
    BundleError,
    Entry,
    FileEntry,
    LinkEntry,
    Manifest,
    SourceFile,
    by_path,
    check_path,
    copy_hashing,
    manifest_sha256,
    parallel_map,
    sha256_file,
    tree_files,
)
from .parts import PartWriter
from .plugins import PLUGIN_URL, cli_archive, missing_plugins, parse_plugin, pinned_providers

WORK_LAYOUT = ".work-images"


@dataclass
class CreateOptions:
    out: Path
    images: list[str] = field(default_factory=list)
    upstreams: dict[str, str] = field(default_factory=dict)
    apt_trees: list[tuple[str, Path]] = field(default_factory=list)
    rpm_trees: list[tuple[str, Path]] = field(default_factory=list)
    files: Path | None = None
    plugins: Path | None = None
    pulumi_cli: list[Path] = field(default_factory=list)
    """Pulumi CLI archives (pulumi-v3.x.y-linux-x64.tar.gz), carried as `pulumi/cli/<name>`."""
    plugin_requirements: list[Path] = field(default_factory=list)
    """Requirements files whose pinned provider SDKs must each have their plugin tarball."""
    plugin_platforms: list[tuple[str, str]] = field(default_factory=lambda: [("linux", "amd64")])
    wheelhouse: Path | None = None
    split_size: int | None = None
    sign_key: str | None = None
    gnupghome: Path | None = None
    passphrase_file: Path | None = None
    delta_against: Path | None = None
    work: Path | None = None
    src_cert_dir: str | None = None
    authfile: str | None = None
    policy: str | None = None


def created_time() -> tuple[str, int]:
    """Now, or SOURCE_DATE_EPOCH for a reproducible manifest."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))
    text = datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return text, epoch


def _named_tree(kind: str, name: str, root: Path) -> tuple[str, Path]:
    if not root.is_dir():
        raise BundleError(f"--{kind}-tree {root}: not a directory")
    if not name or "/" in name or name.startswith("."):
        raise BundleError(f"--{kind}-tree {root}: {name!r} is not a usable name; give NAME=DIR")
    return f"{kind}/{name}", root


def create(options: CreateOptions, log=print) -> Manifest:
    out = options.out
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out}: not empty; give a new or empty directory")
    if options.sign_key and not options.gnupghome:
        raise BundleError("--sign-key needs --gnupghome (the keyring holding the secret key)")
    base, base_state = None, {}
    if options.delta_against is not None:
        base_manifest = Manifest.read(options.delta_against)
        base_state = base_manifest.state()
        base = {"sha256": manifest_sha256(options.delta_against), "created": base_manifest.created,
                "kind": base_manifest.kind}
    out.mkdir(parents=True, exist_ok=True)
    try:
        manifest = _create(options, base, base_state, log)
    except BaseException:
        # Half a bundle must not be mistaken for one: the directory was empty, so empty it again.
        for child in list(out.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        raise
    payload = manifest.payload_bytes()
    log(f"{out}: {manifest.kind} bundle, {len(manifest.images)} images, "
        f"{len(manifest.packages['deb'])} deb and {len(manifest.packages['rpm'])} rpm packages, "
        f"{len(manifest.files)} files ({payload} bytes)"
        + (f", {len(manifest.carried)} carried from the base" if base else "")
        + (f", {len(manifest.parts)} parts" if manifest.parts else "") + (", signed" if options.sign_key else ""))
    return manifest


def _create(options: CreateOptions, base: dict | None, base_state: dict[str, Entry], log) -> Manifest:
    out = options.out
    scratch = Path(tempfile.mkdtemp(prefix=".scratch-", dir=out))
    try:
        candidates, summaries, packages, plugin_paths = _gather(options, scratch, log)
        entries = _hash(candidates)
        _check_packages(packages, entries)
        files = {path: entry for path, entry in entries.items() if isinstance(entry, FileEntry)}
        plugins = [parse_plugin(path, files[path].sha256) for path in plugin_paths]
        _check_pinned_plugins(options, plugins, log)
        included = [e for e in entries.values() if base_state.get(e.path) != e]
        carried = [e for e in entries.values() if base_state.get(e.path) == e]
        sources = {c.path: c for c in candidates if isinstance(c, SourceFile)}
        created, epoch = created_time()
        if options.split_size:
            parts = _write_parts(out, included, sources, options.split_size, epoch)
        else:
            parts = []
            _write_tree(out, included, sources, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    manifest = Manifest(kind="delta" if base else "full", created=created, base=base, images=summaries,
                        packages=packages, plugins=plugins, files=included, carried=carried, parts=parts)
    path = manifest.write(out)
    if options.sign_key:
        assert options.gnupghome is not None, "create() refuses --sign-key without --gnupghome"
        signing.sign(path, options.sign_key, options.gnupghome, options.passphrase_file)
    return manifest


def _check_pinned_plugins(options: CreateOptions, plugins: list[dict], log) -> None:
    """Every provider SDK the program pins needs its plugin at that version inside the gap."""
    requirements = list(options.plugin_requirements)
    shipped = options.wheelhouse / "requirements.txt" if options.wheelhouse else None
    if not requirements and shipped is not None and shipped.is_file():
        requirements = [shipped]
    pinned = sorted({pin for path in requirements for pin in pinned_providers(_read_text(path))})
    if not pinned:
        if options.plugins is not None:
            log("note: no requirements name provider SDKs; plugin versions are not checked (--plugins-for)")
        return
    missing = missing_plugins(plugins, pinned, options.plugin_platforms)
    if missing:
        raise BundleError("the pinned providers' plugins are missing from --pulumi-plugins: "
                          + ", ".join(missing) + "; fetch each from "
                          + PLUGIN_URL.format(file="<name>") + " on the connected side")
    log(f"plugins: {len(pinned)} pinned providers, each at its version for "
        + ", ".join(f"{o}-{a}" for o, a in options.plugin_platforms))


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise BundleError(f"--plugins-for {path}: {error.strerror}") from None


def _gather(options: CreateOptions, scratch: Path, log):
    """Candidates (files to hash, and links), image summaries, packages, plugin paths."""
    candidates: list[SourceFile | LinkEntry] = []
    summaries: list[dict] = []
    if options.images:
        refs = image_layout.parse_refs(options.images)
        work = options.work or (scratch / WORK_LAYOUT)
        log(f"copying {len(refs)} images into {work}")
        image_layout.copy_into_layout(refs, work, options.upstreams, src_cert_dir=options.src_cert_dir,
                                      authfile=options.authfile, policy=options.policy, log=log)
        layout = image_layout.Layout(work)
        entries, summaries, blobs = image_layout.select(layout, refs)
        (scratch / "index.json").write_bytes(image_layout.assembled_index(entries))
        (scratch / "oci-layout").write_bytes(image_layout.OCI_LAYOUT_FILE)
        candidates += [SourceFile("images/oci-layout", scratch / "oci-layout"),
                       SourceFile("images/index.json", scratch / "index.json")]
        candidates += [SourceFile(f"images/blobs/sha256/{digest.partition(':')[2]}", layout.blob_path(digest))
                       for digest in blobs]
    trees = ([_named_tree("apt", name, root) for name, root in options.apt_trees]
             + [_named_tree("rpm", name, root) for name, root in options.rpm_trees])
    for flag, prefix, root in (("files", "files", options.files), ("pulumi-plugins", "pulumi/plugins", options.plugins),
                               ("wheelhouse", "wheels", options.wheelhouse)):
        if root is not None:
            if not root.is_dir():
                raise BundleError(f"--{flag} {root}: not a directory")
            trees.append((prefix, root))
    packages: dict[str, list[dict]] = {"deb": [], "rpm": []}
    plugin_paths: list[str] = []
    for prefix, root in trees:
        found = tree_files(root, prefix)
        candidates += found
        if prefix.startswith("apt/"):
            packages["deb"] += repos.deb_packages(root.resolve(), prefix)
        elif prefix.startswith("rpm/"):
            packages["rpm"] += repos.rpm_packages(root.resolve(), prefix)
        elif prefix == "pulumi/plugins":
            plugin_paths += [item.path for item in found if isinstance(item, SourceFile)]
    for archive in options.pulumi_cli:
        if not archive.is_file():
            raise BundleError(f"--pulumi-cli {archive}: not a file")
        path = f"pulumi/cli/{archive.name}"
        cli_archive(path)
        candidates.append(SourceFile(path, archive))
    clashes = sorted(path for path, count in collections.Counter(c.path for c in candidates).items() if count > 1)
    if clashes:
        clash = clashes[0]
        raise BundleError(f"{clash}: two sources give this path; name the trees apart (NAME=DIR)")
    for candidate in candidates:
        check_path(candidate.path)
    return candidates, summaries, packages, plugin_paths


def _hash(candidates: list[SourceFile | LinkEntry]) -> dict[str, Entry]:
    def entry(candidate: SourceFile) -> FileEntry:
        size, digest = sha256_file(candidate.source)
        if candidate.path.startswith("images/blobs/sha256/") and candidate.path.rsplit("/", 1)[1] != digest:
            raise BundleError(f"{candidate.source}: blob content does not match its digest; "
                              "remove the working layout and run again")
        return FileEntry(candidate.path, size, digest)

    files = sorted((c for c in candidates if isinstance(c, SourceFile)), key=lambda c: -c.source.stat().st_size)
    links: list[Entry] = [c for c in candidates if isinstance(c, LinkEntry)]
    return {entry.path: entry for entry in sorted([*parallel_map(entry, files), *links], key=by_path)}


def _check_packages(packages: dict[str, list[dict]], entries: dict[str, Entry]) -> None:
    """Every package an index lists is in the tree with the index's sha256 (and size)."""
    problems = []
    for kind in ("deb", "rpm"):
        for package in packages[kind]:
            entry = entries.get(package["path"])
            if entry is None:
                problems.append(f"{package['path']}: listed by its index ({package['name']} "
                                f"{package['version']}) but not in the tree")
            elif (not isinstance(entry, FileEntry) or entry.sha256 != package["sha256"]
                  or (package["size"] and entry.size != package["size"])):
                problems.append(f"{package['path']}: differs from the sha256 its index gives")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BundleError(f"{problems[0]}{more}; give a complete, consistent published tree")


def _write_tree(out: Path, included: list[Entry], sources: dict[str, SourceFile], scratch: Path) -> None:
    for directory in sorted({str(Path(entry.path).parent) for entry in included}):
        (out / directory).mkdir(parents=True, exist_ok=True)

    def write(entry: Entry) -> None:
        if isinstance(entry, LinkEntry):
            os.symlink(entry.link, out / entry.path)
            return
        source = sources[entry.path].source
        if scratch in source.parents:
            # Our own temporary working layout, hashed above and touched by no one since: moved.
            os.rename(source, out / entry.path)
            return
        size, digest = copy_hashing(source, out / entry.path)
        if (size, digest) != (entry.size, entry.sha256):
            raise BundleError(f"{source}: changed while the bundle was written; run again")

    parallel_map(write, sorted(included, key=lambda entry: -(entry.size if isinstance(entry, FileEntry) else 0)))


class _HashingReader:
    """Hands a file to tarfile while hashing what tarfile reads."""

    def __init__(self, handle):
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data


def _write_parts(out: Path, included: list[Entry], sources: dict[str, SourceFile], split_size: int,
                 epoch: int) -> list[FileEntry]:
    writer = PartWriter(out, split_size)
    # A stream ("w|") only writes to its file object; typeshed asks for a seekable one.
    with tarfile.open(fileobj=cast(IO[bytes], writer), mode="w|", format=tarfile.PAX_FORMAT,
                      bufsize=1 << 20) as archive:
        for entry in sorted(included, key=by_path):
            info = tarfile.TarInfo(entry.path)
            info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
            if isinstance(entry, LinkEntry):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.link, 0o777
                archive.addfile(info)
                continue
            source = sources[entry.path].source
            info.size = entry.size
            info.mode = 0o755 if os.stat(source).st_mode & 0o111 else 0o644
            with open(source, "rb") as handle:
                reader = _HashingReader(handle)
                archive.addfile(info, reader)
            if (reader.size, reader.digest.hexdigest()) != (entry.size, entry.sha256):
                raise BundleError(f"{source}: changed while the bundle was written; run again")
    return writer.close()

