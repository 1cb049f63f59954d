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

Through the registry's own listener each of those requests costs TLS and a bcrypt comparison
of the htpasswd entry (Distribution keeps no sessions): most of the import's time. With
`--registry-binary` (the service's own Distribution, e.g. /usr/bin/docker-registry) every
manifest and blob is checked through a second process of it serving the written storage
read-only, on a Unix socket in a directory only this user enters, without TLS or auth; the
service starts meanwhile and is asked, through its API, for every tag's digest: proof that it
serves this storage, whose every digest the other process of the same binary has just served.
"""

from __future__ import annotations

import base64
import errno
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from components.images import ImageRefError, parse_image_ref
from oci.media import MANIFEST_TYPES
from oci.registry import HTTP_TIMEOUT, RegistryClient, RegistryError

from .images import Layout
from .manifest import HEX64, BundleError, parallel_map

V2 = Path("docker") / "registry" / "v2"
# Creating Distribution's directories is kernel work (an inode and a directory block each) and
# copying is too: threads overlap them. More threads than this only contend.
WRITE_WORKERS = 4
# Every API check costs the registry a bcrypt comparison of the htpasswd entry (it keeps no
# sessions): enough connections to keep every core of the registry busy, and no more.
VERIFY_WORKERS = 8


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


def hexdigest(digest: str, where: object) -> str:
    """The hex of a `sha256:` digest, refused unless it is one (it becomes a path)."""
    algorithm, _, hexadecimal = digest.partition(":")
    if algorithm != "sha256" or not HEX64.match(hexadecimal):
        raise BundleError(f"{where}: digest {digest!r} is not sha256: and 64 lowercase hex digits")
    return hexadecimal


def plan(layout: Layout) -> list[StoredImage]:
    """Where each image of the layout goes in the registry."""
    images: list[StoredImage] = []
    tags: dict[tuple[str, str], tuple[str, str]] = {}
    for name, entry in sorted(layout.named().items()):
        try:
            ref = parse_image_ref(name)
        except ImageRefError as error:
            raise BundleError(f"{layout.root}: entry {name!r} is not named registry/path:tag ({error})") from None
        manifests, blobs = [], {}
        pending = [entry["digest"]]
        while pending:
            digest = pending.pop(0)
            hexdigest(digest, f"{layout.root}: {name}")
            manifests.append(digest)
            document = json.loads(layout.read(digest))
            pending += [child["digest"] for child in document.get("manifests", [])]
            for blob in ([document["config"]] if "config" in document else []) + document.get("layers", []):
                hexdigest(blob["digest"], f"{layout.root}: {name}")
                blobs[blob["digest"]] = int(blob["size"])
        key = (ref.private_path, ref.private_tag)
        if tags.setdefault(key, (name, entry["digest"]))[1] != entry["digest"]:
            raise BundleError(f"{layout.root}: {tags[key][0]!r} and {name!r} are both {key[0]}:{key[1]} "
                              f"in the registry, with different digests")
        images.append(StoredImage(name, ref.private_path, ref.private_tag, entry["digest"], tuple(manifests),
                                  tuple(sorted(blobs.items()))))
    return images


class StorageWriter:
    """Files of Distribution's storage, each written so that a crash leaves either nothing, a
    temporary file the registry never reads, or the complete file: blob data and a tag's
    `current` link through a temporary file and a rename; other links straight into a directory
    this run has just created (nothing can read them before the tag that leads to them moves).

    Directories are created once each, parents first, by whichever thread needs one first."""

    def __init__(self, storage: Path, *, link: bool = False):
        self.storage = storage
        self.root = storage / V2
        self.link = link
        # New files belong to whoever owns the storage root (Debian's registry runs as its own user).
        status = storage.stat() if storage.exists() else None
        owner = (status.st_uid, status.st_gid) if status else None
        self.owner = owner if owner and os.geteuid() == 0 and owner != (os.geteuid(), os.getegid()) else None
        self._made: set[str] = set()
        """Directories known to exist (created by this run or found)."""
        self._suffix = f".{os.getpid()}"
        missing, directory = [], self.root
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for directory in reversed(missing):
            self._mkdir(os.fspath(directory))
        self._made.add(os.fspath(self.root))

    def _mkdir(self, path: str) -> bool:
        """True if this call created `path` (so it is empty), False if it was there."""
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):
                raise
            return False
        if self.owner:
            os.chown(path, *self.owner)
        return True

    def _mkdirs(self, directory: str | Path) -> bool:
        """`directory` and its missing parents; True if this call created `directory` itself."""
        directory = os.fspath(directory)
        if directory in self._made:
            return False
        missing, path = [], directory
        while path not in self._made:
            missing.append(path)
            path = os.path.dirname(path)
        created = False
        for path in reversed(missing):  # another thread may create a shared parent first: fine
            created = self._mkdir(path)
            self._made.add(path)
        return created

    def _create(self, path: str, mode: int) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)

    def _temporary(self, directory: str, name: str, fresh: bool) -> str:
        temporary = f"{directory}/.{name}{self._suffix}"
        if not fresh:  # left by a crashed run with the same pid: never write through it
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
        return temporary

    def _copy(self, source: str, temporary: str) -> None:
        with open(source, "rb") as reading:
            descriptor = self._create(temporary, 0o644)
            with open(descriptor, "wb") as writing:
                size = os.fstat(reading.fileno()).st_size
                copied = 0
                try:
                    while copied < size:  # in the kernel, without a pass through Python
                        step = os.copy_file_range(reading.fileno(), descriptor, size - copied)
                        if step == 0:
                            break
                        copied += step
                except OSError as error:
                    if copied or error.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    shutil.copyfileobj(reading, writing, 1 << 20)
                os.fchmod(descriptor, 0o644)
                if self.owner:
                    os.fchown(descriptor, *self.owner)

    def blob(self, source: Path | str, hexdigest: str, size: int | None = None) -> bool:
        """Write one blob's data unless the same bytes are there; True if written."""
        source = os.fspath(source)
        if size is None:
            size = os.stat(source).st_size
        directory = f"{self.root}/blobs/sha256/{hexdigest[:2]}/{hexdigest}"
        target = f"{directory}/data"
        fresh = self._mkdirs(directory)
        if not fresh:
            try:
                if os.stat(target).st_size == size:
                    return False
            except FileNotFoundError:
                pass
        temporary = self._temporary(directory, "data", fresh)
        linked = False
        if self.link:
            try:
                os.link(source, temporary)
                linked = True
            except OSError:
                pass
        if linked:
            os.chmod(temporary, 0o644)
            if self.owner:
                os.chown(temporary, *self.owner)
        else:
            self._copy(source, temporary)
        os.replace(temporary, target)
        return True

    def write_link(self, path: Path | str, digest: str, *, atomic: bool = True) -> None:
        """`path` (…/link) holding `digest`. In a directory this call creates, and unless
        `atomic`, the file is written in place; otherwise a temporary file is renamed over it."""
        path = os.fspath(path)
        directory = os.path.dirname(path)
        fresh = self._mkdirs(directory)
        data = digest.encode()
        if not fresh:
            try:
                with open(path, "rb") as handle:
                    if handle.read() == data:
                        return
            except FileNotFoundError:
                pass
        target = path if fresh and not atomic else self._temporary(directory, "link", fresh)
        descriptor = self._create(target, 0o666)
        try:
            if self.owner:
                os.fchown(descriptor, *self.owner)
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
        finally:
            os.close(descriptor)
        if target != path:
            os.replace(target, path)

    def repository(self, images: list[StoredImage], *, tags: bool = True) -> None:
        """Every link of the images of one repository; the tags' `current` links last (or not
        at all: `tags=False`, for `tag()` once everything else is written)."""
        repository = f"{self.root}/repositories/{images[0].repository}"
        layers = sorted({digest for image in images for digest, _ in image.blobs})
        manifests = sorted({digest for image in images for digest in image.manifests})
        for digest in layers:
            self.write_link(f"{repository}/_layers/sha256/{digest[7:]}/link", digest, atomic=False)
        for digest in manifests:
            self.write_link(f"{repository}/_manifests/revisions/sha256/{digest[7:]}/link", digest, atomic=False)
        for image in images:
            tag = f"{repository}/_manifests/tags/{image.tag}"
            self.write_link(f"{tag}/index/sha256/{image.digest[7:]}/link", image.digest, atomic=False)
            self._mkdirs(f"{tag}/current")
        if tags:
            for image in images:
                self.tag(image)

    def tag(self, image: StoredImage) -> None:
        """The tag moves last, by a rename: until then it names its previous digest, whose links are intact."""
        self.write_link(f"{self.root}/repositories/{image.repository}/_manifests/tags/{image.tag}/current/link",
                        image.digest)


def write_storage(layout_dir: Path, storage: Path, *, link: bool = False,
                  log=print) -> tuple[list[StoredImage], int, int]:
    """Write every image of the layout; returns (images, blobs written, bytes written).

    Blob data and every link but the tags' `current` ones are written together, on a few
    threads (directory creation, not copying bytes, is most of the cost, and it overlaps);
    the tags move only once everything they lead to is in place."""
    layout = Layout(layout_dir)
    images = plan(layout)
    writer = StorageWriter(storage, link=link)
    digests = sorted({digest for image in images for digest in image.manifests}
                     | {digest for image in images for digest, _ in image.blobs})
    sources = []
    for digest in digests:
        path = layout.blob_path(digest)
        try:
            sources.append((os.stat(path).st_size, os.fspath(path), digest[7:]))
        except FileNotFoundError:
            missing = [d for d in digests if not layout.blob_path(d).is_file()]
            raise BundleError(f"{layout.blob_path(missing[0])}: missing from the layout "
                              f"({len(missing)} blobs missing)") from None
    sources.sort(reverse=True)  # largest first: the copies finish together
    by_repository: dict[str, list[StoredImage]] = {}
    for image in images:
        by_repository.setdefault(image.repository, []).append(image)

    def task(item) -> bool:
        if isinstance(item, tuple):
            size, path, hexadecimal = item
            return writer.blob(path, hexadecimal, size)
        writer.repository(item, tags=False)
        return False

    written = parallel_map(task, [*sources, *by_repository.values()], WRITE_WORKERS)[:len(sources)]
    parallel_map(writer.tag, images, WRITE_WORKERS)
    written_bytes = sum(size for (size, _, _), done in zip(sources, written, strict=True) if done)
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


def wait_until_up(endpoint: str, context: ssl.SSLContext, timeout: float, *, log=None) -> float:
    """Poll `/v2/` until the registry answers; the seconds it took. A refused connection costs
    next to nothing, so for the first second a poll every 5 ms (Distribution answers some 25 ms
    after it is started), then backing off to 0.1 s, for a service manager that takes its time."""
    started = time.monotonic()
    deadline = started + timeout
    while not answers(endpoint, context):
        now = time.monotonic()
        if now >= deadline:
            raise BundleError(f"{endpoint}: the registry did not answer within {timeout:.0f} s of starting")
        time.sleep(min(0.005 if now - started < 1 else 0.1, max(deadline - now, 0)))
    elapsed = time.monotonic() - started
    (log or (lambda message: print(message, flush=True)))(f"{endpoint}: answering {elapsed:.2f}s after the start")
    return elapsed


@dataclass(frozen=True)
class Check:
    image: StoredImage
    kind: str
    """`tag`, `manifest` or `blob`."""
    digest: str
    size: int = 0


def checks(images: list[StoredImage]) -> list[Check]:
    """One API request each: every tag, every platform manifest and every blob of every
    repository (a repository's blob is checked once however many of its tags use it)."""
    found, seen = [], set()
    for image in images:
        found.append(Check(image, "tag", image.digest))
        for manifest in image.manifests[1:]:
            if (image.repository, manifest) not in seen:
                seen.add((image.repository, manifest))
                found.append(Check(image, "manifest", manifest))
        for blob, size in image.blobs:
            if (image.repository, blob) not in seen:
                seen.add((image.repository, blob))
                found.append(Check(image, "blob", blob, size))
    return found


def verify_registry(endpoint: str, images: list[StoredImage], context: ssl.SSLContext, auth: str | None,
                    *, workers: int = VERIFY_WORKERS, tags_only: bool = False) -> list[str]:
    """Every tag's digest, every manifest and every blob (with its size), through the API of the
    registry at `endpoint`; only the tags' digests if `tags_only`."""
    items = [item for item in checks(images) if item.kind == "tag" or not tags_only]
    return verify_through(RegistryClient(endpoint, context, auth), items, workers=workers)


def verify_through(client: RegistryClient, items: list[Check], *, workers: int = VERIFY_WORKERS) -> list[str]:
    """The checks `items`, through `client`'s registry.

    The requests are independent: they go out on `workers` threads, each keeping its own
    connection alive. Once a connection fails for good (after the client's retries), the
    checks not yet made are counted, not tried."""
    broken = threading.Event()

    def check(item: Check) -> str | None:
        image = item.image
        if broken.is_set():
            return ""
        try:
            if item.kind == "tag":
                digest = client.digest(image.repository, image.tag)
                if digest != image.digest:
                    return (f"{image.name}: the registry serves {digest} for "
                            f"{image.repository}:{image.tag}, the layout has {image.digest}")
            elif item.kind == "manifest":
                status, headers, _ = client.request("HEAD", image.repository, f"manifests/{item.digest}",
                                                    MANIFEST_TYPES)
                if status != 200 or headers.get("docker-content-digest") != item.digest:
                    return f"{image.name}: manifest {item.digest} answers {status}"
            else:
                status, headers, _ = client.request("HEAD", image.repository, f"blobs/{item.digest}")
                if status != 200 or int(headers.get("content-length", -1)) != item.size:
                    return (f"{image.name}: blob {item.digest} answers {status} "
                            f"({headers.get('content-length')} bytes, {item.size} expected)")
        except (OSError, http.client.HTTPException) as error:
            broken.set()
            return f"{image.name}: {item.kind} {item.digest}: {error}"
        except RegistryError as error:
            return f"{image.name}: {error}"
        return None

    results = parallel_map(check, items, workers)
    problems = [result for result in results if result]
    skipped = results.count("")
    if skipped:
        problems.append(f"{client.host}: {skipped} further checks not made after the connection failed")
    return problems


# --- checking through a loopback listener ---------------------------------------------------

class UnixConnection(http.client.HTTPConnection):
    """Plain HTTP over a Unix socket."""

    def __init__(self, path: str, timeout: float = HTTP_TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(self.timeout)
        try:
            connection.connect(self.path)
        except OSError:
            connection.close()
            raise
        self.sock = connection


class UnixRegistryClient(RegistryClient):
    """The Distribution API of a registry listening on a Unix socket, without credentials."""

    def __init__(self, path: str):
        super().__init__(f"unix:{path}", ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))  # never used: no TLS here
        self.path = path

    def _connection(self) -> http.client.HTTPConnection:  # type: ignore[override]  # plain HTTP, no TLS
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = UnixConnection(self.path)
            self.local.connection = connection
        return connection


def loopback_config(storage: Path, listen: str) -> str:
    """Distribution's config for the check: the storage read-only, nothing cached, nothing purged,
    no health checks, no access log; a Unix socket, no TLS, no auth. JSON, which YAML reads."""
    return json.dumps({
        "version": 0.1,
        "log": {"level": "error", "accesslog": {"disabled": True}, "fields": {"service": "import-check"}},
        "storage": {"filesystem": {"rootdirectory": os.fspath(storage)},
                    "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": True}}},
        "http": {"net": "unix", "addr": listen},
    }, indent=1)


class LoopbackRegistry:
    """`binary serve` over `storage`, read-only, on a Unix socket in a directory only this user
    can enter; started by `start()` (it may start while the storage is still being written: it
    caches nothing), ready once `/v2/` answers 200 (`wait()`), stopped on leaving `with`."""

    def __init__(self, binary: str, storage: Path):
        self.binary, self.storage = binary, storage
        self.directory = tempfile.mkdtemp(prefix="import-check-")  # 0700
        self.socket = os.path.join(self.directory, "registry.sock")
        self.log = os.path.join(self.directory, "registry.log")
        self.process: subprocess.Popen | None = None

    def start(self) -> LoopbackRegistry:
        config = os.path.join(self.directory, "config.yml")
        with open(config, "w") as handle:
            handle.write(loopback_config(self.storage, self.socket))
        with open(self.log, "wb") as log:
            # A minimal environment: REGISTRY_* variables would override the config. It lives for
            # a few hundred requests: Go's garbage collection would only cost time (a third of it).
            try:
                self.process = subprocess.Popen(
                    [self.binary, "serve", config], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    cwd=self.directory, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GOGC": "off"})
            except OSError as error:
                self.stop()
                raise BundleError(f"--registry-binary {self.binary}: {error.strerror}") from None
        return self

    def _answers(self) -> bool:
        connection = UnixConnection(self.socket, timeout=2)
        try:
            connection.request("GET", "/v2/")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def wait(self, timeout: float) -> UnixRegistryClient:
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() >= deadline:
                with open(self.log, errors="replace") as handle:
                    tail = handle.read()[-2000:].strip()
                state = f"exited with {self.process.returncode}" if self.process.poll() is not None else "no answer"
                raise BundleError(f"{self.binary} serving {self.storage} for the check: {state} "
                                  f"({tail or 'no output'})")
            time.sleep(0.005)
        return UnixRegistryClient(self.socket)

    def __enter__(self) -> LoopbackRegistry:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the process and remove its directory; again, nothing."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.directory, ignore_errors=True)


def run(command: str, what: str) -> None:
    """An operator's service command (`systemctl stop airgap-registry`), through the shell."""
    result = subprocess.run(command, shell=True, stdin=subprocess.DEVNULL, timeout=300, check=False)
    if result.returncode != 0:
        raise BundleError(f"--{what}-command {command!r} failed with exit {result.returncode}")


# --- the command ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Service:
    """The registry service whose storage is written, as the command line names it."""

    endpoint: str | None
    context: ssl.SSLContext
    auth: str | None
    """Basic credentials (base64 user:password) for its API."""
    stop_command: str | None = None
    start_command: str | None = None
    ready_timeout: float = 60.0


def check_service(service: Service, images: list[StoredImage], *, tags_only: bool = False, log=print) -> list[str]:
    """Wait until the service answers, then check the images through its API."""
    assert service.endpoint, "a service to check has an endpoint"
    wait_until_up(service.endpoint, service.context, service.ready_timeout, log=log)
    started = time.monotonic()
    problems = verify_registry(service.endpoint, images, service.context, service.auth, tags_only=tags_only)
    if not problems:
        blobs = len({blob for image in images for blob, _ in image.blobs})
        what = f"{len(images)} tags" if tags_only else f"{len(images)} tags, their manifests and {blobs} blobs"
        log(f"{service.endpoint}: {what} verified through the API ({time.monotonic() - started:.2f}s)")
    return problems


def import_storage(layout_dir: Path, storage: Path, service: Service, *, link: bool = False,
                   registry_binary: str | None = None, log=print) -> list[str]:
    """`import-registry-storage`: the service stopped, the layout written into its storage, the
    service started and checked; the problems found. Problems or not, the service is started:
    what it served before, it serves.

    With `registry_binary`, a read-only process of it serves the storage on a Unix socket from
    the start (it caches nothing, so it may start while the storage is written) and every
    manifest and blob is checked there once the storage is written, while the service starts
    and is asked, through its API, for every tag's digest."""
    if service.stop_command:
        run(service.stop_command, "stop")
    if service.endpoint and answers(service.endpoint, service.context):
        raise BundleError(f"{service.endpoint}: the registry is running; stop it first (or give --stop-command)")
    loopback = LoopbackRegistry(registry_binary, storage).start() if registry_binary else None
    try:
        started = time.monotonic()
        images, _, _ = write_storage(layout_dir, storage, link=link, log=log)
        written = time.monotonic()
        log(f"storage written in {written - started:.2f}s")

        def start_and_check(tags_only: bool) -> list[str]:
            if service.start_command:
                run(service.start_command, "start")
                log(f"start command done {time.monotonic() - written:.2f}s after the storage was written")
            return check_service(service, images, tags_only=tags_only, log=log) if service.endpoint else []

        if loopback is None:
            if not service.endpoint:
                log("start the registry, then check it: add --verify-only --endpoint HOST:PORT")
            return start_and_check(tags_only=False)
        serviced = Background(start_and_check, True)
        try:
            client = loopback.wait(service.ready_timeout)
            # The tags are asked of the service itself, when there is one.
            items = [item for item in checks(images) if item.kind != "tag" or not service.endpoint]
            problems = verify_through(client, items)
            loopback.stop()
            blobs = len({blob for image in images for blob, _ in image.blobs})
            what = (f"the manifests and {blobs} blobs of {len(images)} images" if service.endpoint
                    else f"{len(images)} tags, their manifests and {blobs} blobs")
            if not problems:
                log(f"{what} verified through {registry_binary} serving the storage read-only "
                    f"({time.monotonic() - written:.2f}s)")
        finally:
            problems_of_service = serviced.result()
    finally:
        if loopback:
            loopback.stop()
    log(f"checked {time.monotonic() - written:.2f}s after the storage was written")
    return problems + problems_of_service


class Background(threading.Thread):
    """`function(*args)` on a thread of its own; `result()` waits for it and returns what it
    returned, or raises what it raised."""

    def __init__(self, function, *args):
        super().__init__(daemon=True)
        self.function, self.args = function, args
        self.value: list[str] = []
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.function(*self.args)
        except BaseException as error:  # handed to the thread that waits for it
            self.error = error

    def result(self) -> list[str]:
        self.join()
        if self.error:
            raise self.error
        return self.value
