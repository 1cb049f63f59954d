#!/usr/bin/env python3
"""Fill a private registry with images, digests kept, and print the image lock.

Shipped with the rest of the package `oci` to the machine that runs the fill (the registry host
or the admin machine) and run there as a file, `python3 -I oci/fill.py`, with its system python3
and skopeo; standard library only.

1. Compare before copying: each image's digest in the private registry (an HTTPS HEAD) against
   the source's (a HEAD to the source registry, or the OCI layout's index; `skopeo inspect` when
   the source cannot be asked directly). Equal digests are skipped without moving a byte; an
   image pinned by digest that is already there is not even looked up at the source.
2. Copy the rest with `skopeo copy --all --preserve-digests`, several at once, but never two at
   the same time that would both upload a blob the registry does not have yet: the second waits
   until the first has finished, then finds the blob there (skopeo mounts it across repositories)
   instead of uploading it again. Failed copies are retried with back-off.
3. Verify every digest in the private registry and print the lock as JSON. Platforms of a
   manifest never change (content-addressed), so they are cached by digest between runs.

The plan (`--plan`) is a JSON file in the format of `oci.plan`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

if not __package__:
    # Run as a file, as the fill step runs it (`python3 -I "$work/oci/fill.py"`): -I keeps the
    # script's directory off sys.path, and the imports below need the package's parent there,
    # first, so that no other package named `oci` on the machine is found instead.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from oci.media import describe, is_index, sha256
from oci.plan import FillImage, FillPlan, PlanError
from oci.registry import RegistryClient, RegistryError, tls_context

SKOPEO_TIMEOUT = 3600


class FillError(RuntimeError):
    """The fill cannot finish: a copy failed for good, a digest differs, a source lacks an image."""


@dataclass(frozen=True)
class Options:
    """How this run reaches the registries (the command line), and where it keeps its files."""

    authfile: str
    """skopeo/containers auth file: the private registry's credentials, and any source's."""
    cert_dir: str
    """Directory holding only the private registry's ca.crt."""
    source_cert_dir: str | None
    """CA for the source registries, when not in the system store."""
    cache: str | None
    """File keeping media types and platforms by digest between runs."""
    work: str
    """Private directory for this run's files (skopeo's digest files)."""


def log(message: str) -> None:
    print(f"fill: {message}", file=sys.stderr, flush=True)


def skopeo(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["skopeo", *args], capture_output=True, timeout=SKOPEO_TIMEOUT)
    if check and result.returncode != 0:
        raise FillError(f"skopeo {args[0]} failed: {stderr_text(result)[-500:]}")
    return result


def stderr_text(result: subprocess.CompletedProcess[bytes]) -> str:
    """What skopeo wrote on stderr, as text for a message."""
    return result.stderr.decode(errors="replace").strip()


# --- sources ------------------------------------------------------------------------------

def split_docker_location(location: str) -> tuple[str, str, str]:
    """`docker://host[:port]/repo(:tag|@digest)` → (host, repository, tag or digest)."""
    name = location[len("docker://"):]
    host, _, rest = name.partition("/")
    if "@" in rest:
        repository, _, reference = rest.partition("@")
    else:
        repository, _, reference = rest.rpartition(":")
    return host, repository, reference


class Source:
    """Reads source manifests: straight from the registry's API, from an OCI layout, or through
    `skopeo inspect` when the API cannot be used directly (a proxy, an odd auth scheme)."""

    def __init__(self, cert_dir: str | None, credentials: dict[str, str]):
        self.cert_dir = cert_dir
        self.credentials = credentials
        self.clients: dict[str, RegistryClient | None] = {}
        self.lock = threading.Lock()

    def _client(self, host: str) -> RegistryClient | None:
        with self.lock:
            if host not in self.clients:
                direct = not any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"))
                self.clients[host] = (RegistryClient(host, tls_context(host, self.cert_dir), self.credentials.get(host))
                                      if direct else None)
            return self.clients[host]

    def manifest(self, location: str, digest: str | None = None) -> bytes:
        """The manifest (or index) at `location`, or the one with `digest` in its repository."""
        if location.startswith("oci:"):
            return self._oci(location, digest)
        host, repository, reference = split_docker_location(location)
        reference = digest or reference
        client = self._client(host)
        if client is not None:
            try:
                raw = client.manifest(repository, reference)
            except (OSError, http.client.HTTPException, RegistryError, ValueError, KeyError):
                pass  # skopeo below knows more ways in (proxies, other auth schemes)
            else:
                if raw is None:
                    raise FillError(f"cannot read {location}: manifest unknown")
                if digest is None or sha256(raw) == digest:
                    return raw
        separator = "@" if reference.startswith("sha256:") else ":"
        certs = ["--cert-dir", self.cert_dir] if self.cert_dir else []
        result = skopeo(["inspect", "--raw", "--retry-times", "3", *certs,
                         f"docker://{host}/{repository}{separator}{reference}"], check=False)
        if result.returncode != 0:
            raise FillError(f"cannot read {location}: {stderr_text(result)[-500:]}")
        return result.stdout

    def blob(self, location: str, manifest_digest: str, digest: str) -> bytes:
        """A blob (an image config) of the image at `location`."""
        if location.startswith("oci:"):
            return self._oci_blob(location[len("oci:"):].partition(":")[0], digest)
        host, repository, _ = split_docker_location(location)
        client = self._client(host)
        if client is not None:
            try:
                data = client.blob(repository, digest)
                if sha256(data) == digest:
                    return data
            except (OSError, http.client.HTTPException, RegistryError):
                pass
        certs = ["--cert-dir", self.cert_dir] if self.cert_dir else []
        result = skopeo(["inspect", "--config", "--raw", *certs, f"docker://{host}/{repository}@{manifest_digest}"],
                        check=False)
        if result.returncode != 0:
            raise FillError(f"cannot read the config of {location}: {stderr_text(result)[-500:]}")
        return result.stdout

    def _oci(self, location: str, digest: str | None) -> bytes:
        directory, _, ref_name = location[len("oci:"):].partition(":")
        if digest is None:
            with open(os.path.join(directory, "index.json"), "rb") as handle:
                index = json.load(handle)
            matches = [
                m for m in index.get("manifests", [])
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref_name
            ]
            if len(matches) != 1:
                raise FillError(f"{location}: {len(matches)} entries carry that name in the layout")
            digest = matches[0]["digest"]
        return self._oci_blob(directory, digest)

    @staticmethod
    def _oci_blob(directory: str, digest: str) -> bytes:
        algorithm, _, hexdigest = digest.partition(":")
        with open(os.path.join(directory, "blobs", algorithm, hexdigest), "rb") as handle:
            data = handle.read()
        if sha256(data) != digest:
            raise FillError(f"{directory}: blob {digest} is corrupt in the layout")
        return data


def resolve_layout_name(image: FillImage) -> str:
    """`oci:<dir>:<name>` for an image in a layout: by its name, or, pinned by digest, by any
    name carrying that digest (layouts name images by tag; the digest is what matters)."""
    directory, _, name = image.location[len("oci:"):].partition(":")
    try:
        with open(os.path.join(directory, "index.json"), "rb") as handle:
            entries = json.load(handle).get("manifests", [])
    except (OSError, ValueError) as error:
        raise FillError(f"{directory}: not a readable OCI layout ({error})") from None
    names = {e.get("annotations", {}).get("org.opencontainers.image.ref.name"): e["digest"] for e in entries}
    if name in names:
        return image.location
    for other, digest in sorted(names.items(), key=lambda item: str(item[0])):
        if other and digest == image.digest:
            return f"oci:{directory}:{other}"
    raise FillError(f"{image.source}: not in the OCI layout {directory} (no entry named {name})")


def blobs_of(source: Source, location: str, raw: bytes) -> set[str]:
    """Every blob an image (or every platform of an index) references."""
    document = json.loads(raw)
    if is_index(document):
        found: set[str] = set()
        for entry in document.get("manifests", []):
            found |= blobs_of(source, location, source.manifest(location, entry["digest"]))
        return found
    found = {layer["digest"] for layer in document.get("layers", [])}
    if "config" in document:
        found.add(document["config"]["digest"])
    return found


# --- copying ------------------------------------------------------------------------------

def copy_image(image: FillImage, endpoint: str, options: Options, retries: int, expected: str) -> None:
    """skopeo copy with retries; fails unless the manifest written has the `expected` digest."""
    digest_file = os.path.join(options.work, hashlib.sha256(image.source.encode()).hexdigest() + ".digest")
    command = [
        "copy", "--all", "--preserve-digests", "--retry-times", "2", "--digestfile", digest_file,
        "--authfile", options.authfile, "--dest-cert-dir", options.cert_dir,
        *(["--src-cert-dir", options.source_cert_dir] if options.source_cert_dir else []),
        image.location, f"docker://{endpoint}/{image.repository}:{image.tag}",
    ]
    for attempt in range(retries + 1):
        result = skopeo(command, check=False)
        if result.returncode == 0:
            with open(digest_file) as handle:
                written = handle.read().strip()
            if written != expected:
                raise FillError(f"{image.source}: the registry received {written}, expected {expected}")
            return
        detail = (stderr_text(result).splitlines()[-1:] or ["no output"])[0]
        if attempt == retries:
            raise FillError(f"{image.source}: copy failed after {attempt + 1} attempts: {detail}")
        delay = min(2 ** attempt, 30)
        log(f"{image.source}: attempt {attempt + 1} failed ({detail}); retrying in {delay}s")
        time.sleep(delay)


def schedule(pending: list[FillImage], blobs: dict[str, set[str]], parallel: int,
             run: Callable[[FillImage], None]) -> None:
    """Run `run(image)` for every image, `parallel` at a time, never two at once that share a
    blob not yet known to be in the registry (`blobs` by image source)."""
    # Images whose blobs are shared most go first, so the shared layers land early.
    sharing = {
        img.source: sum(len(blobs[img.source] & blobs[o.source]) > 0 for o in pending if o is not img)
        for img in pending
    }
    queue = sorted(pending, key=lambda img: (-sharing[img.source], img.source))
    present: set[str] = set()
    in_flight: dict[concurrent.futures.Future[None], FillImage] = {}
    errors: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        while (queue and not errors) or in_flight:
            busy: set[str] = set().union(*(blobs[img.source] - present for img in in_flight.values()))
            # After a copy has failed for good, start nothing new: the registry or the source is
            # likely down, and the next run resumes from what is already there.
            for image in list(queue) if not errors else []:
                if len(in_flight) >= parallel:
                    break
                if (blobs[image.source] - present) & busy:
                    continue
                queue.remove(image)
                in_flight[pool.submit(run, image)] = image
                busy |= blobs[image.source] - present
            done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                image = in_flight.pop(future)
                try:
                    future.result()
                    present |= blobs[image.source]
                except FillError as error:
                    errors.append(str(error))  # its blobs stay unknown to the schedule
    if errors:
        if queue:
            errors.append(f"{len(queue)} images not attempted: {', '.join(img.source for img in queue)}")
        raise FillError("; ".join(errors))


# --- the lock -----------------------------------------------------------------------------

class MetadataCache:
    """Media type and platforms by manifest digest: immutable, so safe to keep between runs."""

    def __init__(self, path: str | None):
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path:
            try:
                with open(path) as handle:
                    self.entries = json.load(handle)
            except (OSError, ValueError):
                self.entries = {}
        self.loaded = dict(self.entries)

    def save(self) -> None:
        if not self.path or self.entries == self.loaded:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        temporary = f"{self.path}.{os.getpid()}"
        with open(temporary, "w") as handle:
            json.dump(self.entries, handle, sort_keys=True)
        os.replace(temporary, self.path)


# --- the fill -----------------------------------------------------------------------------

def fill(plan: FillPlan, options: Options) -> list[dict[str, Any]]:
    with open(options.authfile) as handle:
        auths = json.load(handle).get("auths", {})
    credentials = {host: entry["auth"] for host, entry in auths.items() if entry.get("auth")}
    # The private registry is trusted through its own CA only, never the system store.
    own_ca = ssl.create_default_context(cafile=os.path.join(options.cert_dir, "ca.crt"))
    registry = RegistryClient(plan.endpoint, own_ca, credentials.get(plan.endpoint))
    source = Source(options.source_cert_dir, credentials)
    images = [replace(image, location=resolve_layout_name(image)) if image.location.startswith("oci:") else image
              for image in plan.images]
    workers = plan.parallel * 2
    raws: dict[str, bytes] = {}

    def compare(image: FillImage) -> tuple[FillImage, str, bool]:
        present = registry.digest(image.repository, image.tag)
        if image.digest and present == image.digest:
            return image, image.digest, True  # pinned and already there: the source is not asked
        raw = source.manifest(image.location)
        digest = sha256(raw)
        if image.digest and digest != image.digest:
            raise FillError(f"{image.source}: source digest is {digest}, the stack pins {image.digest}")
        raws[image.source] = raw
        return image, digest, present == digest

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        compared = list(pool.map(compare, images))
    wanted = {image.source: digest for image, digest, _ in compared}
    pending = [image for image, _, same in compared if not same]
    cache = MetadataCache(options.cache)
    log(f"compared {len(images)} images in {time.monotonic() - started:.2f}s: "
        f"{len(images) - len(pending)} of {len(images)} images already present with the same digest")

    if pending:
        def layers(image: FillImage) -> set[str]:
            raw, digest = raws[image.source], wanted[image.source]
            if digest not in cache.entries:  # read now, from the source, while copies have not begun
                cache.entries[digest] = describe(raw, lambda config: source.blob(image.location, digest, config))
            return blobs_of(source, image.location, raw)

        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            blob_sets = dict(zip((img.source for img in pending), pool.map(layers, pending), strict=True))
        started = time.monotonic()
        schedule(pending, blob_sets, plan.parallel,
                 lambda image: copy_image(image, plan.endpoint, options, plan.retries, wanted[image.source]))
        log(f"copied {len(pending)} images in {time.monotonic() - started:.1f}s")

    started = time.monotonic()

    def lock_entry(image: FillImage) -> dict[str, Any]:
        # Every digest is verified: skipped images by the comparison, copied ones by skopeo's
        # --digestfile (the digest of what the registry accepted).
        digest = wanted[image.source]
        if digest not in cache.entries:
            raw = registry.manifest(image.repository, digest)
            if raw is None or sha256(raw) != digest:
                raise FillError(f"{image.source}: manifest {digest} is missing or altered in the private registry")
            cache.entries[digest] = describe(raw, lambda config: registry.blob(image.repository, config))
        private = f"{plan.endpoint}/{image.repository}"
        return {
            "source": image.source, "digest": digest, **cache.entries[digest],
            "private": f"{private}:{image.tag}", "privateByDigest": f"{private}@{digest}",
        }

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        lock = list(pool.map(lock_entry, images))
    cache.save()
    log(f"verified {len(images)} digests in {time.monotonic() - started:.2f}s")
    return sorted(lock, key=lambda entry: entry["source"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill a private registry with images, digests kept, "
                                                 "and print the image lock.")
    parser.add_argument("--plan", required=True, help="the plan: JSON in the format of oci.plan")
    parser.add_argument("--authfile", required=True)
    parser.add_argument("--cert-dir", required=True, help="directory holding only the private registry's ca.crt")
    parser.add_argument("--source-cert-dir", help="CA for the source registries, when not in the system store")
    parser.add_argument("--cache", help="file keeping media types and platforms by digest between runs")
    args = parser.parse_args(argv)
    try:
        with open(args.plan) as handle:
            plan = FillPlan.from_json(handle.read())
    except (OSError, PlanError) as error:
        log(f"failed: {args.plan}: {error}")
        return 1
    with tempfile.TemporaryDirectory(prefix="airgap-fill-") as work:
        options = Options(authfile=args.authfile, cert_dir=args.cert_dir, source_cert_dir=args.source_cert_dir,
                          cache=args.cache, work=work)
        try:
            lock = fill(plan, options)
        except (FillError, RegistryError) as error:
            log(f"failed: {error}")
            return 1
    json.dump({"images": lock}, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
