"""`bundle import`: a verified bundle laid out where the stack reads it, nothing if it fails.

    <into>/images                 OCI layout            → registry.fill.ociLayout
    <into>/files/…                artifacts             → fileServer.artifacts[].file
    <into>/apt/<name>, rpm/<name> published trees
    <into>/pulumi/plugins, wheels plugin tarballs and the wheelhouse (`offline-setup`)
    <into>/.bundle/MANIFEST.json  the state: the last imported manifest (and its signature)

The bundle is read once: each byte is hashed as it is copied into a staging directory beside
the target, so what lands is exactly what was verified. Only when every file checks out (and
the scanner, if given, accepts the staged payload) does anything move into place: content first
(blobs, packages, artifacts), then the metadata that points at it (the OCI index, Release and
repomd.xml last), each by rename, so a reader sees old or new index, never one naming missing
blobs. A delta needs the files it carries over to be there already; files of the previous state
that the new one drops are removed afterwards (only those: nothing else below `<into>` is touched).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from .manifest import MANIFEST_NAME, SECTIONS, SIGNATURE_NAME, BundleError, Entry, LinkEntry, Manifest
from .scan import DEFAULT_TIMEOUT, run_scanner
from .verify import Verified, load_manifest, verify_bundle

STATE_DIR = ".bundle"


class Refused(BundleError):
    """The bundle failed verification; `problems` names every file."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} problems")
        self.problems = problems


def state_manifest(into: Path) -> Manifest | None:
    path = into / STATE_DIR / MANIFEST_NAME
    return Manifest.read(path) if path.exists() else None


def commit_order(path: str) -> tuple[int, str]:
    """Content before the metadata that names it; the top-level signed indexes last of all."""
    name = path.rsplit("/", 1)[-1]
    if path == "images/index.json" or name in ("InRelease", "Release", "Release.gpg", "repomd.xml", "repomd.xml.asc"):
        return 2, path
    if path.startswith(("apt/", "rpm/")) and ("/dists/" in path or "/repodata/" in path):
        return 1, path
    return 0, path


def _present(into: Path, entry: Entry) -> bool:
    path = into / entry.path
    if isinstance(entry, LinkEntry):
        return path.is_symlink() and os.readlink(path) == entry.link
    return path.is_file() and not path.is_symlink() and path.stat().st_size == entry.size


@contextlib.contextmanager
def _locked(state_dir: Path):
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BundleError(f"{state_dir}: another import is running into this directory") from None
        yield


def import_bundle(bundle: Path, into: Path, *, public_key: Path | None = None, scanner: str | None = None,
                  scanner_timeout: float = DEFAULT_TIMEOUT, log=print) -> Verified:
    created_into = not into.exists()
    into.mkdir(parents=True, exist_ok=True)
    state_dir = into / STATE_DIR
    created_state = not state_dir.exists()
    try:
        return _import_locked(bundle, into, state_dir, public_key, scanner, scanner_timeout, log)
    except BaseException:
        # Refused into a fresh directory: leave no trace of the attempt either.
        if created_state and not (state_dir / MANIFEST_NAME).exists():
            shutil.rmtree(state_dir, ignore_errors=True)
            if created_into:
                with contextlib.suppress(OSError):
                    into.rmdir()
        raise


def _import_locked(bundle: Path, into: Path, state_dir: Path, public_key: Path | None, scanner: str | None,
                   scanner_timeout: float, log) -> Verified:
    with _locked(state_dir):
        previous = state_manifest(into)
        staging = state_dir / f"staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            loaded = load_manifest(bundle, public_key)
            manifest = loaded.manifest
            # Checked first: a delta whose base is not here fails before any byte is copied.
            lacking = [entry.path for entry in manifest.carried if not _present(into, entry)]
            if lacking:
                base = manifest.base or {}
                raise BundleError(
                    f"{lacking[0]}: a delta carries it over, but {into} lacks it"
                    + (f" (and {len(lacking) - 1} more)" if len(lacking) > 1 else "")
                    + f"; import the bundle it was built against first (created {base.get('created', '?')})")
            result = verify_bundle(bundle, public_key, stage=staging, loaded=loaded)
            if result.problems:
                raise Refused(result.problems)
            if scanner:
                run_scanner(scanner, staging, timeout=scanner_timeout, log=log)
            _commit(staging, into, manifest, previous)
            for name, data in ((MANIFEST_NAME, loaded.raw), (SIGNATURE_NAME, loaded.signature)):
                target = state_dir / name
                if data is not None:
                    (state_dir / f".{name}.new").write_bytes(data)
                    os.replace(state_dir / f".{name}.new", target)
                elif target.exists():
                    target.unlink()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log(f"imported {bundle} into {into}: {result.files} files ({result.bytes} bytes) checked and placed"
        + (f", {len(manifest.carried)} carried over from the previous import" if manifest.carried else ""))
    return result


def _commit(staging: Path, into: Path, manifest: Manifest, previous: Manifest | None) -> None:
    for entry in sorted(manifest.files, key=lambda entry: commit_order(entry.path)):
        target = into / entry.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            raise BundleError(f"{target}: a directory where the bundle puts a file; move it away")
        os.replace(staging / entry.path, target)
    if previous is not None:
        keep = manifest.state()
        dropped = sorted(set(previous.state()) - set(keep), reverse=True)
        for path in dropped:
            target = into / path
            if target.is_symlink() or target.is_file():
                target.unlink()
            _remove_empty_parents(into, target.parent)


def _remove_empty_parents(into: Path, directory: Path) -> None:
    """Empty directories left by removed files go too, up to (never including) a section root."""
    roots = {into / section for section in SECTIONS} | {into}
    while directory not in roots and into in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
