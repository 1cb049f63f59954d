#!/usr/bin/env python3
"""Fill a private registry with images, digests kept, and print the image lock.

Shipped verbatim to the machine that runs the fill (the registry host or the admin machine) and
run with its system python3 and skopeo; standard library only.

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

Plan (JSON file): {"endpoint": "host:port", "parallel": 4, "retries": 3,
  "images": [{"source": "docker.io/library/nginx:1.25", "from": "docker://…" | "oci:/dir:ref",
              "repository": "docker.io/library/nginx", "tag": "1.25", "digest": "sha256:…" | null}]}
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import hashlib
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = INDEX_TYPES + (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
SKOPEO_TIMEOUT = 3600
HTTP_TIMEOUT = 60


class FillError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"fill: {message}", file=sys.stderr, flush=True)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def skopeo(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["skopeo", *args], capture_output=True, timeout=SKOPEO_TIMEOUT)
    result.stderr = result.stderr.decode(errors="replace")
    if check and result.returncode != 0:
        raise FillError(f"skopeo {args[0]} failed: {result.stderr.strip()[-500:]}")
    return result


# --- the Distribution API, over HTTPS -----------------------------------------------------

def tls_context(host: str, extra_ca_dir: str | None) -> ssl.SSLContext:
    """The system store, plus certs.d directories as skopeo reads them, plus `extra_ca_dir`."""
    context = ssl.create_default_context()
    for directory in (extra_ca_dir, f"/etc/containers/certs.d/{host}", f"/etc/docker/certs.d/{host}"):
        for path in sorted(glob.glob(os.path.join(directory, "*.crt"))) if directory else ():
            context.load_verify_locations(cafile=path)
    return context


class RegistryClient:
    """Manifests and blobs of one registry: basic auth or anonymous bearer tokens, keep-alive."""

    def __init__(self, host: str, context: ssl.SSLContext, basic: str | None = None):
        self.host = host
        # skopeo and docker talk to Docker Hub's API at registry-1.docker.io
        self.api_host = "registry-1.docker.io" if host == "docker.io" else host
        self.context = context
        self.basic = basic
        self.tokens: dict[str, str] = {}
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPSConnection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            host, _, port = self.api_host.partition(":")
            connection = http.client.HTTPSConnection(host, int(port or 443), context=self.context, timeout=HTTP_TIMEOUT)
            self.local.connection = connection
        return connection

    def _send(self, method: str, url: str, headers: dict) -> tuple[int, dict, bytes]:
        for attempt in range(3):
            connection = self._connection()
            try:
                connection.request(method, url, headers=headers)
                response = connection.getresponse()
                body = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, body
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def request(self, method: str, repository: str, path: str, accept: tuple[str, ...] = ()) -> tuple[int, dict, bytes]:
        headers = {"Accept": ", ".join(accept)} if accept else {}
        if repository in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[repository]}"
        elif self.basic:
            headers["Authorization"] = f"Basic {self.basic}"
        url = f"/v2/{repository}/{path}"
        status, response_headers, body = self._send(method, url, headers)
        challenge = response_headers.get("www-authenticate", "")
        if status == 401 and challenge.lower().startswith("bearer ") and repository not in self.tokens:
            self.tokens[repository] = self._token(challenge, repository)
            headers["Authorization"] = f"Bearer {self.tokens[repository]}"
            status, response_headers, body = self._send(method, url, headers)
        return status, response_headers, body

    def _token(self, challenge: str, repository: str) -> str:
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = urllib.parse.urlsplit(fields.get("realm", ""))
        if realm.scheme != "https":
            raise FillError(f"{self.host}: token service {fields.get('realm')!r} is not https")
        query = {"scope": f"repository:{repository}:pull"}
        if fields.get("service"):
            query["service"] = fields["service"]
        headers = {"Authorization": f"Basic {self.basic}"} if self.basic else {}
        connection = http.client.HTTPSConnection(realm.hostname, realm.port or 443, context=self.context, timeout=HTTP_TIMEOUT)
        try:
            connection.request("GET", f"{realm.path}?{urllib.parse.urlencode(query)}", headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise FillError(f"{self.host}: token service answered {response.status}")
        document = json.loads(body)
        return document.get("token") or document["access_token"]

    def digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest under `reference`, or None when there is none."""
        status, headers, _ = self.request("HEAD", repository, f"manifests/{reference}", MANIFEST_TYPES)
        if status == 404:
            return None
        if status != 200:
            raise FillError(f"{self.host}/{repository}:{reference}: HEAD answered {status}")
        if headers.get("docker-content-digest", "").startswith("sha256:"):
            return headers["docker-content-digest"]
        raw = self.manifest(repository, reference)
        return None if raw is None else sha256(raw)

    def manifest(self, repository: str, reference: str) -> bytes | None:
        status, _, body = self.request("GET", repository, f"manifests/{reference}", MANIFEST_TYPES)
        if status == 404:
            return None
        if status != 200:
            raise FillError(f"{self.host}/{repository}:{reference}: GET answered {status}")
        return body

    def blob(self, repository: str, digest: str) -> bytes:
        status, _, body = self.request("GET", repository, f"blobs/{digest}")
        if status != 200:
            raise FillError(f"{self.host}/{repository}: blob {digest} answered {status}")
        return body


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
                self.clients[host] = RegistryClient(host, tls_context(host, self.cert_dir), self.credentials.get(host)) if direct else None
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
            except (OSError, http.client.HTTPException, FillError, ValueError, KeyError):
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
            raise FillError(f"cannot read {location}: {result.stderr.strip()[-500:]}")
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
            except (OSError, http.client.HTTPException, FillError):
                pass
        certs = ["--cert-dir", self.cert_dir] if self.cert_dir else []
        result = skopeo(["inspect", "--config", "--raw", *certs, f"docker://{host}/{repository}@{manifest_digest}"], check=False)
        if result.returncode != 0:
            raise FillError(f"cannot read the config of {location}: {result.stderr.strip()[-500:]}")
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


def resolve_layout_name(image: dict) -> str:
    """`oci:<dir>:<name>` for an image in a layout: by its name, or, pinned by digest, by any
    name carrying that digest (layouts name images by tag; the digest is what matters)."""
    directory, _, name = image["from"][len("oci:"):].partition(":")
    try:
        with open(os.path.join(directory, "index.json"), "rb") as handle:
            entries = json.load(handle).get("manifests", [])
    except (OSError, ValueError) as error:
        raise FillError(f"{directory}: not a readable OCI layout ({error})") from None
    names = {e.get("annotations", {}).get("org.opencontainers.image.ref.name"): e["digest"] for e in entries}
    if name in names:
        return image["from"]
    for other, digest in sorted(names.items(), key=lambda item: str(item[0])):
        if other and digest == image.get("digest"):
            return f"oci:{directory}:{other}"
    raise FillError(f"{image['source']}: not in the OCI layout {directory} (no entry named {name})")


def blobs_of(source: Source, image: dict, raw: bytes) -> set[str]:
    """Every blob an image (or every platform of an index) references."""
    document = json.loads(raw)
    if document.get("mediaType") in INDEX_TYPES or "manifests" in document:
        found: set[str] = set()
        for entry in document.get("manifests", []):
            found |= blobs_of(source, image, source.manifest(image["from"], entry["digest"]))
        return found
    found = {layer["digest"] for layer in document.get("layers", [])}
    if "config" in document:
        found.add(document["config"]["digest"])
    return found


# --- copying ------------------------------------------------------------------------------

def copy_image(image: dict, args, retries: int, expected: str) -> None:
    """skopeo copy with retries; fails unless the manifest written has the `expected` digest."""
    digest_file = os.path.join(args.work, hashlib.sha256(image["source"].encode()).hexdigest() + ".digest")
    command = [
        "copy", "--all", "--preserve-digests", "--retry-times", "2", "--digestfile", digest_file,
        "--authfile", args.authfile, "--dest-cert-dir", args.cert_dir,
        *(["--src-cert-dir", args.source_cert_dir] if args.source_cert_dir else []),
        image["from"], f"docker://{args.endpoint}/{image['repository']}:{image['tag']}",
    ]
    for attempt in range(retries + 1):
        result = skopeo(command, check=False)
        if result.returncode == 0:
            with open(digest_file) as handle:
                written = handle.read().strip()
            if written != expected:
                raise FillError(f"{image['source']}: the registry received {written}, expected {expected}")
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
        while (queue and not errors) or in_flight:
            busy = set().union(*(blobs[img["source"]] - present for img in in_flight.values())) if in_flight else set()
            # After a copy has failed for good, start nothing new: the registry or the source is
            # likely down, and the next run resumes from what is already there.
            for image in list(queue) if not errors else []:
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
        if queue:
            errors.append(f"{len(queue)} images not attempted: {', '.join(img['source'] for img in queue)}")
        raise FillError("; ".join(errors))


# --- the lock -----------------------------------------------------------------------------

class MetadataCache:
    """Media type and platforms by manifest digest: immutable, so safe to keep between runs."""

    def __init__(self, path: str | None):
        self.path = path
        self.entries: dict[str, dict] = {}
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


IMAGE_CONFIG_TYPES = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)


def describe(raw: bytes, load_config) -> dict:
    """{"mediaType", "platforms"} of a manifest or index (an OCI artifact, such as a Trivy
    database, gets its "artifactType" instead of platforms); `load_config(digest)` reads a config."""
    document = json.loads(raw)
    if "manifests" in document:
        names = [platform_name(entry.get("platform", {})) for entry in document["manifests"]]
        return {"mediaType": document.get("mediaType", ""), "platforms": sorted(names)}
    config_type = document.get("config", {}).get("mediaType", "")
    if config_type not in IMAGE_CONFIG_TYPES:
        return {"mediaType": document.get("mediaType", ""), "platforms": [],
                "artifactType": document.get("artifactType") or config_type}
    config = json.loads(load_config(document["config"]["digest"]))
    return {"mediaType": document.get("mediaType", ""), "platforms": [platform_name(config)]}


def platform_name(platform: dict) -> str:
    name = f"{platform.get('os', 'unknown')}/{platform.get('architecture', 'unknown')}"
    return name + (f"/{platform['variant']}" if platform.get("variant") else "")


# --- the fill -----------------------------------------------------------------------------

def fill(plan: dict, args) -> list[dict]:
    auths = json.load(open(args.authfile)).get("auths", {})
    credentials = {host: entry["auth"] for host, entry in auths.items() if entry.get("auth")}
    # The private registry is trusted through its own CA only, never the system store.
    registry = RegistryClient(args.endpoint, ssl.create_default_context(cafile=os.path.join(args.cert_dir, "ca.crt")),
                              credentials.get(args.endpoint))
    source = Source(args.source_cert_dir, credentials)
    images = plan["images"]
    parallel = max(1, int(plan.get("parallel", 4)))
    workers = parallel * 2

    raws: dict[str, bytes] = {}
    for image in images:
        if image["from"].startswith("oci:"):
            image["from"] = resolve_layout_name(image)

    def compare(image: dict) -> tuple[dict, str, bool]:
        present = registry.digest(image["repository"], image["tag"])
        if image.get("digest") and present == image["digest"]:
            return image, present, True  # pinned and already there: the source is not asked
        raw = source.manifest(image["from"])
        digest = sha256(raw)
        if image.get("digest") and digest != image["digest"]:
            raise FillError(f"{image['source']}: source digest is {digest}, the stack pins {image['digest']}")
        raws[image["source"]] = raw
        return image, digest, present == digest

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        compared = list(pool.map(compare, images))
    wanted = {image["source"]: digest for image, digest, _ in compared}
    pending = [image for image, _, same in compared if not same]
    cache = MetadataCache(args.cache)
    log(f"compared {len(images)} images in {time.monotonic() - started:.2f}s: "
        f"{len(images) - len(pending)} of {len(images)} images already present with the same digest")

    if pending:
        started = time.monotonic()

        def layers(image: dict) -> set[str]:
            raw, digest = raws[image["source"]], wanted[image["source"]]
            if digest not in cache.entries:  # read now, from the source, while copies have not begun
                cache.entries[digest] = describe(raw, lambda config: source.blob(image["from"], digest, config))
            return blobs_of(source, image, raw)

        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            blob_sets = dict(zip((img["source"] for img in pending), pool.map(layers, pending)))
        started = time.monotonic()
        retries = int(plan.get("retries", 3))
        schedule(pending, blob_sets, parallel,
                 lambda image: copy_image(image, args, retries, wanted[image["source"]]))
        log(f"copied {len(pending)} images in {time.monotonic() - started:.1f}s")

    started = time.monotonic()

    def lock_entry(image: dict) -> dict:
        # Every digest is verified: skipped images by the comparison, copied ones by skopeo's
        # --digestfile (the digest of what the registry accepted).
        digest = wanted[image["source"]]
        if digest not in cache.entries:
            raw = registry.manifest(image["repository"], digest)
            if raw is None or sha256(raw) != digest:
                raise FillError(f"{image['source']}: manifest {digest} is missing or altered in the private registry")
            cache.entries[digest] = describe(raw, lambda config: registry.blob(image["repository"], config))
        private = f"{args.endpoint}/{image['repository']}"
        return {
            "source": image["source"], "digest": digest, **cache.entries[digest],
            "private": f"{private}:{image['tag']}", "privateByDigest": f"{private}@{digest}",
        }

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        lock = list(pool.map(lock_entry, images))
    cache.save()
    log(f"verified {len(images)} digests in {time.monotonic() - started:.2f}s")
    return sorted(lock, key=lambda entry: entry["source"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--plan", required=True)
    parser.add_argument("--authfile", required=True)
    parser.add_argument("--cert-dir", required=True, help="directory holding only the private registry's ca.crt")
    parser.add_argument("--source-cert-dir", help="CA for the source registries, when not in the system store")
    parser.add_argument("--cache", help="file keeping media types and platforms by digest between runs")
    args = parser.parse_args(argv)
    with open(args.plan) as handle:
        plan = json.load(handle)
    args.endpoint = plan["endpoint"]
    with tempfile.TemporaryDirectory(prefix="airgap-fill-") as work:
        args.work = work
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
