"""Mends what a kill or a power loss left in Docker Distribution's filesystem storage, before the
registry starts (airgap-infra).

    python3 - STORAGE

Distribution writes manifests and `link` files in place, and nothing it writes is synced: a kill
can leave one empty, a power loss can leave one holding part of its bytes, or a link whose blob
never reached the disk. Distribution answers what reads such a file with a 500 or wrong bytes,
and a re-push does not mend a manifest (the registry finds its data there and keeps it). So,
below STORAGE/docker/registry/v2:

- A blob's `data` must not be empty (except the blob of no bytes); a manifest's (every digest a
  revision or tag link names) must hash to its digest and parse as JSON; any other blob must have
  the size the manifests give it. Other blobs are not hashed: that would read every layer at every
  start, minutes for a large registry where the service manager allows 90 s. Layers reach the
  storage through an upload that Distribution hashes and then renames into place, so what a crash
  can do to one is leave it short or empty, which its size shows.
- A link must hold `sha256:` and 64 hex digits, the digest its directory names (all but a tag's
  `current`), whose blob is there (a manifest, for links of `_manifests`).
- A tag's manifest, with its platforms' manifests, configs and layers, must be linked in its
  repository: the fill compares tags only, so a tag whose image lost a part is dropped, and the
  next fill copies the image again (uploading only what is missing).

Anything else is moved (never deleted) to STORAGE/quarantine/<UTC time>/ under its path below
STORAGE, and named on stdout; a link whose directory names a blob that is there is then written
again. An empty file holds nothing to keep: it is removed. Nothing found, nothing printed.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import time

HEX = re.compile(r"[0-9a-f]{64}\Z")
DIGEST = re.compile(rb"sha256:([0-9a-f]{64})\Z")
NOTHING = hashlib.sha256(b"").hexdigest()
MANIFEST_LIMIT = 4 << 20  # Distribution refuses larger manifests; a bigger blob is no manifest
LAYERS, REVISIONS, TAG_INDEX, CURRENT = "layer", "revision", "tag index", "tag"


class Link:
    """A `link` file Distribution reads, from its path below `repositories/`."""

    def __init__(self, path, parts):
        self.path = path
        at = next(i for i, part in enumerate(parts) if part.startswith("_"))  # names never start with _
        self.repository = "/".join(parts[:at])
        rest = parts[at:]
        self.kind = self.named = self.tag = None
        if rest[:2] == ["_layers", "sha256"] and len(rest) == 4:
            self.kind, self.named = LAYERS, rest[2]
        elif rest[:3] == ["_manifests", "revisions", "sha256"] and len(rest) == 5:
            self.kind, self.named = REVISIONS, rest[3]
        elif rest[:2] == ["_manifests", "tags"] and len(rest) == 7 and rest[3:5] == ["index", "sha256"]:
            self.kind, self.tag, self.named = TAG_INDEX, rest[2], rest[5]
        elif rest[:2] == ["_manifests", "tags"] and len(rest) == 5 and rest[3] == "current":
            self.kind, self.tag = CURRENT, rest[2]
        if self.named is not None and not HEX.match(self.named):
            self.kind = self.named = None  # no digest leads to this path
        self.content = b""  # its first bytes: a link holds 71
        self.target = None  # the digest's hex, once the link is found sound

    def read(self):
        with open(self.path, "rb") as handle:
            self.content = handle.read(200)


class Repair:
    def __init__(self, storage):
        self.storage = storage
        self.v2 = os.path.join(storage, "docker", "registry", "v2")
        self.folder = os.path.join(storage, "quarantine", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        status = os.stat(storage)
        # Run as root on a storage the registry's own user owns: what is written keeps that owner.
        self.owner = (status.st_uid, status.st_gid) if os.geteuid() == 0 and status.st_uid != 0 else None
        self.sizes = {}  # hex -> size of every blob whose data is there
        self.manifests = {}  # hex -> parsed manifest, for blobs that hash to their digest
        self.not_manifests = set()  # blobs that hash right but are no manifest

    def say(self, path, what):
        print(f"repair-storage: {path}: {what}", flush=True)

    def own(self, path):
        if self.owner:
            os.chown(path, *self.owner)

    def quarantine(self, path, why):
        target = os.path.join(self.folder, os.path.relpath(path, self.storage))
        directory = os.path.dirname(target)
        missing = []
        while not os.path.isdir(directory):
            missing.append(directory)
            directory = os.path.dirname(directory)
        for directory in reversed(missing):
            os.mkdir(directory, 0o750)
            self.own(directory)
        number = 0
        while os.path.lexists(target):  # two repairs within a second: never overwrite the first's
            number += 1
            target = f"{os.path.join(self.folder, os.path.relpath(path, self.storage))}.{number}"
        try:
            os.rename(path, target)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            shutil.copy2(path, target)
            os.unlink(path)
        self.say(path, f"{why}; moved to {target}")

    def write_link(self, link, hexdigest):
        temporary = os.path.join(os.path.dirname(link.path), ".link.repair")
        with open(temporary, "wb") as handle:
            handle.write(b"sha256:" + hexdigest.encode())
        self.own(temporary)
        os.replace(temporary, link.path)
        link.target = hexdigest
        self.say(link.path, f"written again (sha256:{hexdigest})")

    # --- blobs ----------------------------------------------------------------------------

    def blob_path(self, hexdigest):
        return os.path.join(self.v2, "blobs", "sha256", hexdigest[:2], hexdigest, "data")

    def find_blobs(self):
        root = os.path.join(self.v2, "blobs", "sha256")
        for prefix in sorted(names(root)):
            for hexdigest in sorted(names(os.path.join(root, prefix))):
                data = os.path.join(root, prefix, hexdigest, "data")
                if not HEX.match(hexdigest) or hexdigest[:2] != prefix:
                    continue  # no digest leads here
                try:
                    status = os.stat(data)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                if not stat.S_ISREG(status.st_mode):
                    continue
                size = status.st_size
                if size == 0 and hexdigest != NOTHING:
                    os.unlink(data)
                    self.say(data, "empty, removed")
                else:
                    self.sizes[hexdigest] = size

    def check_manifests(self, claimed):
        """Every blob a manifest link names: it must hash to its digest, then parse."""
        for hexdigest in sorted(claimed & set(self.sizes)):
            data = self.blob_path(hexdigest)
            digest, text = hashlib.sha256(), bytearray()
            with open(data, "rb") as handle:
                chunk = handle.read(1 << 20)
                while chunk:
                    digest.update(chunk)
                    if len(text) <= MANIFEST_LIMIT:
                        text += chunk
                    chunk = handle.read(1 << 20)
            if digest.hexdigest() != hexdigest:
                del self.sizes[hexdigest]
                self.quarantine(data, f"{os.path.getsize(data)} bytes whose sha256 is {digest.hexdigest()}, "
                                      "not the digest they are stored under")
                continue
            try:
                document = json.loads(bytes(text)) if len(text) <= MANIFEST_LIMIT else None
            except ValueError:
                document = None
            if isinstance(document, dict):
                self.manifests[hexdigest] = document
            else:
                self.not_manifests.add(hexdigest)  # its own bytes, intact: the links are wrong, not it

    def check_sizes(self):
        """Every blob a sound manifest gives a size: short or long data is not that blob."""
        sizes: dict[str, set[int]] = {}
        for document in self.manifests.values():
            for descriptor in descriptors(document):
                match = DIGEST.match(str(descriptor.get("digest", "")).encode())
                if match and isinstance(descriptor.get("size"), int):
                    sizes.setdefault(match.group(1).decode(), set()).add(descriptor["size"])
        for hexdigest, expected in sorted(sizes.items()):
            if hexdigest in self.manifests or hexdigest in self.not_manifests:
                continue  # hashed already
            size = self.sizes.get(hexdigest)
            if size is not None and size not in expected:
                del self.sizes[hexdigest]
                self.quarantine(self.blob_path(hexdigest), "{} bytes, its manifests say {}".format(
                    size, " or ".join(str(s) for s in sorted(expected))))

    # --- links ----------------------------------------------------------------------------

    def find_links(self):
        root = os.path.join(self.v2, "repositories")
        found = []
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = sorted(d for d in subdirectories if d != "_uploads")  # purged by the registry
            if "link" in files:
                path = os.path.join(directory, "link")
                parts = os.path.relpath(path, root).split(os.sep)
                if any(part.startswith("_") for part in parts):
                    found.append(Link(path, parts))
                    found[-1].read()
        return found

    def sound(self, kind, hexdigest):
        """Why a link of `kind` may not lead to blob `hexdigest`, or None."""
        if hexdigest not in self.sizes:
            return "its blob is missing"
        if kind != LAYERS and hexdigest not in self.manifests:
            return "its blob is no manifest"
        return None

    def check_link(self, link):
        content = link.content
        if not content:
            if link.named and self.sound(link.kind, link.named) is None:
                self.write_link(link, link.named)
            else:
                os.unlink(link.path)
                self.say(link.path, "empty, removed")
            return
        if link.kind is None:
            return  # no digest leads to this path: the registry never reads it
        match = DIGEST.match(content)
        if not match:
            why = "holds {!r}, not sha256: and 64 hex digits".format(content[:80].decode("latin-1"))
        elif link.named and match.group(1).decode() != link.named:
            why = f"holds {content.decode()}, not the digest its directory names"
        else:
            why = self.sound(link.kind, match.group(1).decode())
            if why is None:
                link.target = match.group(1).decode()
                return
            why = f"holds {content.decode()}, but {why}"
        self.quarantine(link.path, why)
        if link.named and self.sound(link.kind, link.named) is None:
            self.write_link(link, link.named)

    def check_tags(self, links):
        """Every tag leads to a whole image in its repository, or is dropped."""
        linked: dict[tuple[str, str], set[str]] = {}
        for link in links:
            if link.target and link.kind in (LAYERS, REVISIONS):
                linked.setdefault((link.repository, link.kind), set()).add(link.target)
        for link in links:
            if link.kind == CURRENT and link.target:
                layers = linked.get((link.repository, LAYERS), set())
                revisions = linked.get((link.repository, REVISIONS), set())
                lacking = self.lacking(link.target, layers, revisions, set())
                if lacking:
                    self.quarantine(link.path, f"its image needs {lacking}, which {link.repository} lacks")

    def lacking(self, hexdigest, layers, revisions, seen):
        """The first digest manifest `hexdigest` needs that the repository does not link, or None."""
        if hexdigest not in revisions or hexdigest not in self.manifests:
            return "manifest sha256:" + hexdigest
        seen.add(hexdigest)
        document = self.manifests[hexdigest]
        for child in document.get("manifests") or []:
            match = DIGEST.match(str(child.get("digest", "")).encode()) if isinstance(child, dict) else None
            if not match:
                return f"manifest {child!r}"
            if match.group(1).decode() not in seen:
                found = self.lacking(match.group(1).decode(), layers, revisions, seen)
                if found:
                    return found
        for blob in blobs(document):
            match = DIGEST.match(blob.encode())
            if not match or match.group(1).decode() not in layers:
                return "blob " + blob
        return None

    def run(self):
        if not os.path.isdir(self.v2):
            return
        self.find_blobs()
        links = self.find_links()
        claimed = set()
        for link in links:
            if link.kind in (REVISIONS, TAG_INDEX):
                claimed.add(link.named)
            elif link.kind == CURRENT:
                match = DIGEST.match(link.content)
                if match:
                    claimed.add(match.group(1).decode())
        self.check_manifests(claimed)
        self.check_sizes()
        for link in links:
            self.check_link(link)
        self.check_tags(links)


def names(directory):
    try:
        return os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []


def descriptors(document):
    """Every descriptor of a manifest or index that carries a size."""
    found = [document.get("config")] + list(document.get("layers") or []) + list(document.get("manifests") or [])
    return [d for d in found if isinstance(d, dict)]


def blobs(document):
    """Digests of the blobs an image manifest needs in its repository: config and layers (schema 2
    and OCI), or `fsLayers` (schema 1); layers a registry never receives (foreign, non-distributable:
    pulled from their `urls`) are left out."""
    found = []
    for descriptor in [document.get("config")] + list(document.get("layers") or []):
        if isinstance(descriptor, dict):
            media_type = str(descriptor.get("mediaType", ""))
            if "foreign" not in media_type and "nondistributable" not in media_type:
                found.append(str(descriptor.get("digest", "")))
    for layer in document.get("fsLayers") or []:
        if isinstance(layer, dict):
            found.append(str(layer.get("blobSum", "")))
    return found


if __name__ == "__main__":
    storage = os.path.abspath(sys.argv[1])
    os.chdir("/")  # the caller's directory may be closed to the registry's user
    Repair(storage).run()
