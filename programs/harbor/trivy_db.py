"""One of Trivy's databases laid out where Harbor's Trivy adapter reads it (airgap-infra): pulled
from the private registry the stack filled, every digest checked, unpacked into the adapter's
cache directory. Standard library only, run with the host's python3 (3.8 or later).

    trivy_db.py --endpoint HOST:PORT --ca CA_PEM --auth AUTH_FILE --repository REPOSITORY
                --reference TAG_OR_DIGEST --media-type TYPE --schema N --target DIR
                --owner UID:GID FILE...

1. The manifest, over TLS verified against the registry's own CA only, with the registry's
   credentials (AUTH_FILE: skopeo's format). Its sha256 must be the digest asked for (a digest
   reference, as the registry's image lock gives it) and the digest the registry names.
2. Its one layer of media type TYPE, streamed to a private file beside DIR while hashed: sha256
   and size must be the descriptor's.
3. The layer unpacked (regular files with plain names only) into a new directory beside DIR;
   every FILE must be there, and metadata.json must name schema N (what the installed Trivy
   reads with --skip-db-update). The new directory, owned by UID:GID (the adapter's user) and
   holding a record of the digests (.airgap-trivy-db.json), then takes DIR's place.

A DIR whose record names the same manifest and whose files still hash as recorded is left as
it is. Prints one JSON line: the target, the manifest and layer digests, each file's sha256,
and whether it changed.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import ssl
import sys
import tarfile
import tempfile

RECORD = ".airgap-trivy-db.json"
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
CHUNK = 1 << 20
TIMEOUT = 120


class LayoutError(RuntimeError):
    """The database cannot be laid out: the registry refused, or a digest or file is wrong."""


class Registry:
    """GETs from the private registry: basic auth, TLS against its CA alone."""

    def __init__(self, endpoint: str, ca_file: str, auth_file: str):
        with open(auth_file) as handle:
            entry = json.load(handle).get("auths", {}).get(endpoint, {})
        if not entry.get("auth"):
            raise LayoutError(f"{auth_file}: no credentials for {endpoint}")
        host, _, port = endpoint.rpartition(":")
        self.endpoint = endpoint
        self.headers = {"Authorization": "Basic " + entry["auth"]}
        self.connection = http.client.HTTPSConnection(
            host.strip("[]"), int(port), timeout=TIMEOUT, context=ssl.create_default_context(cafile=ca_file))

    def get(self, path: str, accept: tuple = ()) -> http.client.HTTPResponse:
        headers = dict(self.headers, Accept=", ".join(accept)) if accept else self.headers
        self.connection.request("GET", path, headers=headers)
        response = self.connection.getresponse()
        if response.status != 200:
            response.read()
            raise LayoutError(f"{self.endpoint}{path}: the registry answered {response.status}")
        return response


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def manifest(registry: Registry, repository: str, reference: str) -> tuple[str, dict]:
    """(digest, document) of the manifest, its digest checked."""
    response = registry.get(f"/v2/{repository}/manifests/{reference}", MANIFEST_TYPES)
    raw = response.read()
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    named = response.getheader("Docker-Content-Digest")
    if reference.startswith("sha256:") and digest != reference:
        raise LayoutError(f"{repository}@{reference}: the registry served a manifest whose digest is {digest}")
    if named and named != digest:
        raise LayoutError(f"{repository}:{reference}: the registry names digest {named}, "
                          f"the manifest hashes to {digest}")
    return digest, json.loads(raw)


def the_layer(document: dict, media_type: str, where: str) -> dict:
    layers = [layer for layer in document.get("layers", []) if layer.get("mediaType") == media_type]
    if len(layers) != 1:
        raise LayoutError(f"{where}: {len(layers)} layers of type {media_type}; a Trivy database has one")
    return layers[0]


def download(registry: Registry, repository: str, layer: dict, into) -> None:
    """The layer's blob written to `into`, its sha256 and size checked."""
    response = registry.get(f"/v2/{repository}/blobs/{layer['digest']}")
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: response.read(CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
        into.write(chunk)
    into.flush()
    if "sha256:" + digest.hexdigest() != layer["digest"] or size != layer["size"]:
        raise LayoutError(f"{repository}: blob {layer['digest']} arrived as sha256:{digest.hexdigest()} "
                          f"({size} bytes, {layer['size']} expected)")


def copy_hashed(source, target) -> str:
    """Copy `source` to `target`; the sha256 of what was copied."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: source.read(CHUNK), b""):
        digest.update(chunk)
        target.write(chunk)
    return "sha256:" + digest.hexdigest()


def unpack(archive, directory: str) -> dict:
    """Regular files with plain names from the gzipped tar `archive` into `directory`; name → sha256."""
    files = {}
    archive.seek(0)
    with tarfile.open(fileobj=archive, mode="r:gz") as tar:
        for member in tar:
            name = os.path.normpath(member.name)
            if member.isdir() and name == ".":
                continue
            if not member.isfile() or "/" in name or name in (".", "..", RECORD):
                raise LayoutError(f"the database archive holds {member.name!r}; only plain files are expected")
            source = tar.extractfile(member)
            assert source is not None
            with open(os.path.join(directory, name), "wb") as target:
                files[name] = copy_hashed(source, target)
    return files


def unchanged(target: str, manifest_digest: str, expected: list) -> dict | None:
    """The record of `target` when it names this manifest and its files still hash as recorded."""
    try:
        with open(os.path.join(target, RECORD)) as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    files = record.get("files", {})
    if record.get("manifest") != manifest_digest or not set(expected) <= set(files):
        return None
    for name, digest in files.items():
        path = os.path.join(target, name)
        if not os.path.isfile(path) or sha256_file(path) != digest:
            return None
    return record


def check_schema(directory: str, schema: int) -> None:
    try:
        with open(os.path.join(directory, "metadata.json")) as handle:
            version = json.load(handle).get("Version")
    except (OSError, ValueError) as error:
        raise LayoutError(f"metadata.json cannot be read: {error}") from error
    if version != schema:
        raise LayoutError(f"metadata.json names schema {version}; the installed Trivy reads schema {schema}")


def own(directory: str, uid: int, gid: int) -> None:
    os.chmod(directory, 0o755)
    os.chown(directory, uid, gid)
    for name in os.listdir(directory):
        os.chmod(os.path.join(directory, name), 0o644)
        os.chown(os.path.join(directory, name), uid, gid)


def replace_directory(new: str, target: str) -> None:
    """`new` takes `target`'s place; the old one is removed after."""
    if not os.path.exists(target):
        os.rename(new, target)
        return
    old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=os.path.dirname(target))
    os.rename(target, os.path.join(old, "db"))
    os.rename(new, target)
    shutil.rmtree(old)


def lay_out(args: argparse.Namespace) -> dict:
    uid, gid = (int(part) for part in args.owner.split(":"))
    registry = Registry(args.endpoint, args.ca, args.auth)
    separator = "@" if args.reference.startswith("sha256:") else ":"
    where = f"{args.endpoint}/{args.repository}{separator}{args.reference}"
    manifest_digest, document = manifest(registry, args.repository, args.reference)
    layer = the_layer(document, args.media_type, where)
    result = {"target": args.target, "manifest": manifest_digest, "layer": layer["digest"]}
    record = unchanged(args.target, manifest_digest, args.files)
    if record is not None:
        return dict(result, files=record["files"], changed=False)

    parent = os.path.dirname(args.target)
    os.makedirs(parent, mode=0o755, exist_ok=True)
    new = tempfile.mkdtemp(prefix=f".{os.path.basename(args.target)}.new-", dir=parent)
    try:
        with tempfile.TemporaryFile(dir=parent) as archive:
            download(registry, args.repository, layer, archive)
            files = unpack(archive, new)
        missing = sorted(set(args.files) - set(files))
        if missing:
            raise LayoutError(f"{where}: the archive lacks {', '.join(missing)}")
        check_schema(new, args.schema)
        with open(os.path.join(new, RECORD), "w") as handle:
            json.dump(dict(result, files=files), handle, indent=2, sort_keys=True)
        own(new, uid, gid)
        replace_directory(new, args.target)
    finally:
        shutil.rmtree(new, ignore_errors=True)
    return dict(result, files=files, changed=True)


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Lay out one of Trivy's databases from the private registry.")
    for option in ("--endpoint", "--ca", "--auth", "--repository", "--reference", "--media-type", "--target",
                   "--owner"):
        parser.add_argument(option, required=True)
    parser.add_argument("--schema", type=int, required=True)
    parser.add_argument("files", nargs="+", help="the files the archive must hold")
    args = parser.parse_args(argv)
    try:
        result = lay_out(args)
    except (LayoutError, OSError, tarfile.TarError, http.client.HTTPException) as error:
        print(f"harbor: trivy db {args.target}: {error}", file=sys.stderr)
        return 1
    state = "laid out" if result["changed"] else "unchanged"
    print(f"harbor: trivy db {args.target}: {state} ({result['manifest']})", file=sys.stderr)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
