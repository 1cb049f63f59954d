#!/usr/bin/env python3
"""Fill a private registry with images, digests kept, and print the image lock.

Shipped verbatim to the machine that runs the fill (the registry host or the admin machine) and
run with its system python3 and skopeo; standard library only.

1. Compare before copying: each source manifest's digest (`skopeo inspect --raw`, or the OCI
   layout's index) against what the private registry already holds under the target tag (an
   HTTPS HEAD). Equal digests are skipped without moving a byte.
2. Copy the rest with `skopeo copy --all --preserve-digests`, several at once, but never two at
   the same time that would both upload a blob the registry does not have yet: the second waits
   until the first has finished, then finds the blob there (skopeo mounts it across repositories)
   instead of uploading it again.
3. Retry failed copies with back-off; verify every digest afterwards; print the lock as JSON.

Plan (JSON file): {"endpoint": "host:port", "parallel": 4, "retries": 3,
  "images": [{"source": "docker.io/library/nginx:1.25", "from": "docker://…" | "oci:/dir:ref",
              "repository": "docker.io/library/nginx", "tag": "1.25", "digest": "sha256:…" | null}]}
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = INDEX_TYPES + (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
SKOPEO_TIMEOUT = 3600


class FillError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"fill: {message}", file=sys.stderr, flush=True)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- the private registry, over HTTPS -----------------------------------------------------

class Registry:
    """Minimal Distribution API client for the private registry (basic auth, pinned CA)."""

    def __init__(self, endpoint: str, authfile: str, cert_dir: str):
        self.host, _, port = endpoint.rpartition(":")
        self.port = int(port)
        self.context = ssl.create_default_context(cafile=os.path.join(cert_dir, "ca.crt"))
        auths = json.load(open(authfile)).get("auths", {})
        self.auth = auths.get(endpoint, {}).get("auth")
        self.local = threading.local()

    def _request(self, method: str, path: str, accept: tuple[str, ...] = ()) -> tuple[int, dict, bytes]:
        headers = {"Accept": ", ".join(accept)} if accept else {}
        if self.auth:
            headers["Authorization"] = f"Basic {self.auth}"
        for attempt in range(3):
            connection = getattr(self.local, "connection", None)
            if connection is None:
                connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=60)
                self.local.connection = connection
            try:
                connection.request(method, path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, body
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
                time.sleep(1 + attempt)
        raise AssertionError("unreachable")

    def manifest(self, repository: str, reference: str) -> bytes | None:
        status, _, body = self._request("GET", f"/v2/{repository}/manifests/{reference}", MANIFEST_TYPES)
        if status == 404:
            return None
        if status != 200:
            raise FillError(f"registry answered {status} for {repository}:{reference}")
        return body

    def blob(self, repository: str, digest: str) -> bytes:
        status, headers, body = self._request("GET", f"/v2/{repository}/blobs/{digest}")
        if status in (301, 302, 307) and "location" in headers:
            raise FillError("blob redirects are not supported for the private registry")
        if status != 200:
            raise FillError(f"registry answered {status} for blob {digest} in {repository}")
        return body


# --- sources ------------------------------------------------------------------------------

class Source:
    """Reads manifests and blobs from the source (a registry through skopeo, or an OCI layout)."""

    def __init__(self, cert_dir: str | None):
        self.cert_dir = cert_dir

    def manifest(self, location: str, digest: str | None = None) -> bytes:
        if location.startswith("oci:"):
            return self._oci_manifest(location, digest)
        target = location
        if digest is not None:
            target = location.rsplit("@", 1)[0]
            name = target[len("docker://"):]
            slash = name.find("/")
            colon = name.rfind(":")
            if colon > slash:
                name = name[:colon]
            target = f"docker://{name}@{digest}"
        certs = ["--cert-dir", self.cert_dir] if self.cert_dir else []
        result = skopeo(["inspect", "--raw", "--retry-times", "3", *certs, target], check=False)
        if result.returncode != 0:
            raise FillError(f"cannot read {location}: {result.stderr.strip()[-500:]}")
        return result.stdout

    def _oci_manifest(self, location: str, digest: str | None) -> bytes:
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
        algorithm, _, hexdigest = digest.partition(":")
        with open(os.path.join(directory, "blobs", algorithm, hexdigest), "rb") as handle:
            data = handle.read()
        if sha256(data) != digest:
            raise FillError(f"{location}: blob {digest} is corrupt in the layout")
        return data


def skopeo(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["skopeo", *args], capture_output=True, timeout=SKOPEO_TIMEOUT)
    result.stderr = result.stderr.decode(errors="replace")
    if check and result.returncode != 0:
        raise FillError(f"skopeo {args[0]} failed: {result.stderr.strip()[-500:]}")
    return result


def blobs_of(source: Source, image: dict, raw: bytes) -> set[str]:
    """Every blob an image (or every platform of an index) references."""
    document = json.loads(raw)
    if document.get("mediaType") in INDEX_TYPES or "manifests" in document:
        found: set[str] = set()
        for entry in document.get("manifests", []):
            child = source.manifest(image["from"], entry["digest"])
            found |= blobs_of(source, image, child)
        return found
    found = {layer["digest"] for layer in document.get("layers", [])}
    if "config" in document:
        found.add(document["config"]["digest"])
    return found


# --- the fill -----------------------------------------------------------------------------

def copy_image(image: dict, args, retries: int) -> None:
    command = [
        "copy", "--all", "--preserve-digests", "--retry-times", "2",
        "--authfile", args.authfile, "--dest-cert-dir", args.cert_dir,
        *(["--src-cert-dir", args.source_cert_dir] if args.source_cert_dir else []),
        image["from"], f"docker://{args.endpoint}/{image['repository']}:{image['tag']}",
    ]
    for attempt in range(retries + 1):
        result = skopeo(command, check=False)
        if result.returncode == 0:
            return
        detail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        if attempt == retries:
            raise FillError(f"{image['source']}: copy failed after {attempt + 1} attempts: {detail[0]}")
        delay = min(2 ** attempt, 30)
        log(f"{image['source']}: attempt {attempt + 1} failed ({detail[0]}); retrying in {delay}s")
        time.sleep(delay)


def schedule(pending: list[dict], blobs: dict[str, set[str]], parallel: int, run) -> None:
    """Run `run(image)` for every image, `parallel` at a time, never two at once that share a
    blob not yet known to be in the registry."""
    # Images whose blobs are shared most go first, so the shared layers land early.
    sharing = {
        img["source"]: sum(len(blobs[img["source"]] & blobs[o["source"]]) > 0 for o in pending if o is not img)
        for img in pending
    }
    queue = sorted(pending, key=lambda img: (-sharing[img["source"]], img["source"]))
    present: set[str] = set()
    in_flight: dict[concurrent.futures.Future, dict] = {}
    errors: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        while queue or in_flight:
            busy = set().union(*(blobs[img["source"]] - present for img in in_flight.values())) if in_flight else set()
            for image in list(queue):
                if len(in_flight) >= parallel:
                    break
                if (blobs[image["source"]] - present) & busy:
                    continue
                queue.remove(image)
                in_flight[pool.submit(run, image)] = image
                busy |= blobs[image["source"]] - present
            done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                image = in_flight.pop(future)
                try:
                    future.result()
                    present |= blobs[image["source"]]
                except FillError as error:
                    errors.append(str(error))  # its blobs stay unknown to the schedule
    if errors:
        raise FillError("; ".join(errors))


def platforms(registry: Registry, repository: str, raw: bytes) -> list[str]:
    document = json.loads(raw)
    if "manifests" in document:
        found = []
        for entry in document["manifests"]:
            platform = entry.get("platform", {})
            name = f"{platform.get('os', 'unknown')}/{platform.get('architecture', 'unknown')}"
            if platform.get("variant"):
                name += f"/{platform['variant']}"
            found.append(name)
        return sorted(found)
    config = json.loads(registry.blob(repository, document["config"]["digest"]))
    name = f"{config.get('os', 'unknown')}/{config.get('architecture', 'unknown')}"
    if config.get("variant"):
        name += f"/{config['variant']}"
    return [name]


def fill(plan: dict, args) -> list[dict]:
    registry = Registry(args.endpoint, args.authfile, args.cert_dir)
    source = Source(args.source_cert_dir)
    images = plan["images"]
    parallel = max(1, int(plan.get("parallel", 4)))

    def compare(image: dict) -> tuple[dict, bytes, bool]:
        present = registry.manifest(image["repository"], image["tag"])
        if image.get("digest") and present is not None and sha256(present) == image["digest"]:
            return image, present, True  # pinned and already there: the source is not asked
        raw = source.manifest(image["from"])
        digest = sha256(raw)
        if image.get("digest") and digest != image["digest"]:
            raise FillError(f"{image['source']}: source digest is {digest}, the stack pins {image['digest']}")
        return image, raw, present is not None and sha256(present) == digest

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel * 2) as pool:
        compared = list(pool.map(compare, images))
    pending = [image for image, _, same in compared if not same]
    wanted = {image["source"]: sha256(raw) for image, raw, _ in compared}
    log(f"{len(images) - len(pending)} of {len(images)} images already present with the same digest")

    if pending:
        raws = {image["source"]: raw for image, raw, same in compared if not same}
        with concurrent.futures.ThreadPoolExecutor(max_workers=parallel * 2) as pool:
            blob_sets = dict(zip(
                (img["source"] for img in pending),
                pool.map(lambda img: blobs_of(source, img, raws[img["source"]]), pending),
            ))
        started = time.monotonic()
        schedule(pending, blob_sets, parallel, lambda image: copy_image(image, args, int(plan.get("retries", 3))))
        log(f"copied {len(pending)} images in {time.monotonic() - started:.1f}s")

    lock = []
    for image in images:
        raw = registry.manifest(image["repository"], image["tag"])
        if raw is None or sha256(raw) != wanted[image["source"]]:
            got = "nothing" if raw is None else sha256(raw)
            raise FillError(f"{image['source']}: the private registry holds {got}, expected {wanted[image['source']]}")
        document = json.loads(raw)
        private = f"{args.endpoint}/{image['repository']}"
        lock.append({
            "source": image["source"],
            "digest": wanted[image["source"]],
            "mediaType": document.get("mediaType", ""),
            "platforms": platforms(registry, image["repository"], raw),
            "private": f"{private}:{image['tag']}",
            "privateByDigest": f"{private}@{wanted[image['source']]}",
        })
    return sorted(lock, key=lambda entry: entry["source"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--authfile", required=True)
    parser.add_argument("--cert-dir", required=True, help="directory holding only the private registry's ca.crt")
    parser.add_argument("--source-cert-dir", help="CA for the source registries, when not in the system store")
    args = parser.parse_args(argv)
    with open(args.plan) as handle:
        plan = json.load(handle)
    args.endpoint = plan["endpoint"]
    try:
        lock = fill(plan, args)
    except FillError as error:
        log(f"failed: {error}")
        return 1
    json.dump({"images": lock}, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
