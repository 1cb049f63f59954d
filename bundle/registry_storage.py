"""`bundle import-registry-storage`: an OCI layout written straight into Docker Distribution's
filesystem storage while the registry is stopped, then checked through the registry's API.

Pushing through the API moves every byte through HTTP, TLS and the registry's own hashing; for
a first fill of many gigabytes, writing the storage layout directly is as fast as copying the
blobs. Distribution 2.x keeps, below its `rootdirectory`:

    docker/registry/v2/blobs/sha256/<first two hex>/<hex>/data            every blob, once
    docker/registry/v2/repositories/<name>/_layers/sha256/<hex>/link      configs and layers of <name>
    …/<name>/_manifests/revisions/sha256/<hex>/link                       manifests and indexes of <name>
    …/<name>/_manifests/tags/<tag>/current/link                           what the tag points at
    …/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link                every digest the tag has had

where each `link` holds the digest as text (`sha256:<hex>`, no newline). Repository names and
tags are the fill's (`ImageRef.private_path` / `private_tag`, from the layout names), so a later
`pulumi up` finds every image already there and copies nothing.

The registry must be stopped while its storage is written: a running one caches blob
descriptors and would not see them. `--start-command` (e.g. `systemctl start airgap-registry`)
starts it afterwards; then every tag's digest, every manifest and every blob (by HEAD, with its
size) is checked through the API, as the fill itself checks.
"""

from __future__ import annotations

import base64
import concurrent.futures
import http.client
import json
import os
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from components.images import ImageRefError, parse_image_ref
from components.render.fill_program import MANIFEST_TYPES, FillError, RegistryClient

from .images import Layout
from .manifest import BundleError, parallel_map

V2 = Path("docker") / "registry" / "v2"


@dataclass(frozen=True)
class StoredImage:
    name: str
    """Layout name (`docker.io/library/alpine:3.19`)."""
    repository: str
    tag: str
    digest: str
    manifests: tuple[str, ...]
    """The image's manifest, or its index and every platform's manifest."""
    blobs: tuple[tuple[str, int], ...]
    """(digest, size) of every config and layer."""


def plan(layout: Layout) -> list[StoredImage]:
    """Where each image of the layout goes in the registry."""
    images = []
    for name, entry in sorted(layout.named().items()):
        try:
            ref = parse_image_ref(name)
        except ImageRefError as error:
            raise BundleError(f"{layout.root}: entry {name!r} is not named registry/path:tag ({error})") from None
        manifests, blobs = [], {}
        pending = [entry["digest"]]
        while pending:
            digest = pending.pop(0)
            manifests.append(digest)
            document = json.loads(layout.read(digest))
            pending += [child["digest"] for child in document.get("manifests", [])]
            for blob in ([document["config"]] if "config" in document else []) + document.get("layers", []):
                blobs[blob["digest"]] = int(blob["size"])
        images.append(StoredImage(name, ref.private_path, ref.private_tag, entry["digest"], tuple(manifests),
                                  tuple(sorted(blobs.items()))))
    return images


class StorageWriter:
    def __init__(self, storage: Path, *, link: bool = False):
        self.storage = storage
        self.root = storage / V2
        self.link = link
        # New files belong to whoever owns the storage root (Debian's registry runs as its own user).
        status = storage.stat() if storage.exists() else None
        owner = (status.st_uid, status.st_gid) if status else None
        self.owner = owner if owner and os.geteuid() == 0 and owner != (os.geteuid(), os.getegid()) else None
        self._directories: set[Path] = set()

    def _own(self, path: Path) -> None:
        if self.owner:
            os.chown(path, *self.owner)

    def _mkdirs(self, directory: Path) -> None:
        if directory in self._directories:
            return
        missing = []
        while directory not in self._directories and not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            self._own(path)
        self._directories.update(missing)

    def blob(self, source: Path, hexdigest: str) -> bool:
        """Write one blob's data unless the same bytes are there; True if written."""
        target = self.root / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"
        if target.exists() and target.stat().st_size == source.stat().st_size:
            return False
        self._mkdirs(target.parent)
        temporary = target.with_name(f".data.{os.getpid()}")
        if self.link:
            try:
                os.link(source, temporary)
            except OSError:
                shutil.copyfile(source, temporary)
        else:
            shutil.copyfile(source, temporary)
        os.chmod(temporary, 0o644)
        self._own(temporary)
        os.replace(temporary, target)
        return True

    def write_link(self, path: Path, digest: str) -> None:
        self._mkdirs(path.parent)
        try:
            with open(path) as handle:
                if handle.read() == digest:
                    return
        except FileNotFoundError:
            pass
        temporary = path.with_name(f".link.{os.getpid()}")
        with open(temporary, "w") as handle:
            handle.write(digest)
        self._own(temporary)
        os.replace(temporary, path)

    def repository(self, image: StoredImage) -> None:
        repository = self.root / "repositories" / image.repository
        for digest, _ in image.blobs:
            self.write_link(repository / "_layers" / "sha256" / digest.partition(":")[2] / "link", digest)
        for digest in image.manifests:
            revision = repository / "_manifests" / "revisions" / "sha256" / digest.partition(":")[2]
            self.write_link(revision / "link", digest)
        tag = repository / "_manifests" / "tags" / image.tag
        self.write_link(tag / "index" / "sha256" / image.digest.partition(":")[2] / "link", image.digest)
        # The tag moves last: until then it names the previous digest, whose links are intact.
        self.write_link(tag / "current" / "link", image.digest)


def write_storage(layout_dir: Path, storage: Path, *, link: bool = False,
                  log=print) -> tuple[list[StoredImage], int, int]:
    """Write every image of the layout; returns (images, blobs written, bytes written)."""
    layout = Layout(layout_dir)
    images = plan(layout)
    writer = StorageWriter(storage, link=link)
    writer._mkdirs(writer.root / "blobs" / "sha256")
    digests = sorted({digest for image in images for digest in image.manifests}
                     | {digest for image in images for digest, _ in image.blobs})
    missing = [d for d in digests if not layout.blob_path(d).is_file()]
    if missing:
        raise BundleError(f"{layout.blob_path(missing[0])}: missing from the layout ({len(missing)} blobs missing)")
    sources = sorted(((layout.blob_path(d), d.partition(":")[2]) for d in digests), key=lambda s: -s[0].stat().st_size)
    written = parallel_map(lambda source: writer.blob(*source), sources, workers=max(2, os.cpu_count() or 2))
    written_bytes = sum(source.stat().st_size for (source, _), done in zip(sources, written) if done)
    # Distribution's layout is a directory per link: on most filesystems creating them, not
    # copying bytes, is the cost, and it parallelises. One task a repository: tags of the same
    # repository share its links.
    by_repository: dict[str, list[StoredImage]] = {}
    for image in images:
        by_repository.setdefault(image.repository, []).append(image)
    parallel_map(lambda group: [writer.repository(image) for image in group], list(by_repository.values()), workers=8)
    log(f"wrote {sum(written)} blobs ({written_bytes} bytes) and {len(images)} tags into {storage}")
    return images, sum(written), written_bytes


# --- checking through the API -------------------------------------------------------------

def basic_auth(authfile: Path | None, endpoint: str) -> str | None:
    """The `auth` of `endpoint` in a skopeo/docker auth file (base64 user:password)."""
    if authfile is None:
        return None
    auths = json.loads(authfile.read_text()).get("auths", {})
    entry = auths.get(endpoint) or auths.get(f"https://{endpoint}") or {}
    if entry.get("auth"):
        return entry["auth"]
    if entry.get("username"):
        return base64.b64encode(f"{entry['username']}:{entry.get('password', '')}".encode()).decode()
    raise BundleError(f"{authfile}: no credentials for {endpoint}")


def answers(endpoint: str, context: ssl.SSLContext) -> bool:
    host, _, port = endpoint.rpartition(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=2)
    try:
        connection.request("GET", "/v2/")
        return connection.getresponse().status in (200, 401)
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_until_up(endpoint: str, context: ssl.SSLContext, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(endpoint, context):
            return
        time.sleep(0.02)
    raise BundleError(f"{endpoint}: the registry did not answer within {timeout:.0f} s of starting")


def verify_registry(endpoint: str, images: list[StoredImage], context: ssl.SSLContext, auth: str | None) -> list[str]:
    """Every tag's digest, every manifest and every blob (with its size), through the API."""
    client = RegistryClient(endpoint, context, auth)

    def check(image: StoredImage) -> list[str]:
        problems = []
        try:
            digest = client.digest(image.repository, image.tag)
            if digest != image.digest:
                problems.append(f"{image.name}: the registry serves {digest} for "
                                f"{image.repository}:{image.tag}, the layout has {image.digest}")
            for manifest in image.manifests[1:]:
                status, headers, _ = client.request("HEAD", image.repository, f"manifests/{manifest}", MANIFEST_TYPES)
                if status != 200 or headers.get("docker-content-digest") != manifest:
                    problems.append(f"{image.name}: manifest {manifest} answers {status}")
            for blob, size in image.blobs:
                status, headers, _ = client.request("HEAD", image.repository, f"blobs/{blob}")
                if status != 200 or int(headers.get("content-length", -1)) != size:
                    problems.append(f"{image.name}: blob {blob} answers {status} "
                                    f"({headers.get('content-length')} bytes, {size} expected)")
        except (OSError, http.client.HTTPException, FillError) as error:
            problems.append(f"{image.name}: {error}")
        return problems

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        return [problem for found in pool.map(check, images) for problem in found]


def run(command: str, what: str) -> None:
    """An operator's service command (`systemctl stop airgap-registry`), through the shell."""
    result = subprocess.run(command, shell=True, stdin=subprocess.DEVNULL, timeout=300, check=False)
    if result.returncode != 0:
        raise BundleError(f"--{what}-command {command!r} failed with exit {result.returncode}")
