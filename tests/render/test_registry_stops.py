"""A registry stopped while it works: the rendered config drains what it started, and the unit's
repair step undoes what a kill or a power loss leaves (an empty `link` or manifest, answered with
a 500 until repaired; a link or manifest holding part of its bytes or another's; a link whose blob
never reached the disk), moving what it cannot mend to a quarantine folder.
All against Docker Distribution itself, on loopback."""

import base64
import hashlib
import http.client
import json
import re
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.render import registry as render
from tests.harness.private_registry import PrivateRegistry

ADDRESS = "127.0.0.3"
OCI = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


def _free_port():
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    with PrivateRegistry(ADDRESS, _free_port(), state_dir=tmp_path) as started:
        yield started


class Client:
    def __init__(self, registry: PrivateRegistry):
        self.registry = registry
        self.context = ssl.create_default_context(cafile=str(registry.cert_dir / "ca.crt"))
        token = base64.b64encode(f"{registry.user}:{registry.password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}"}

    def connect(self) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.registry.address, self.registry.port, context=self.context, timeout=20)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        connection = self.connect()
        try:
            connection.request(method, path, body=body, headers={**self.headers, **(headers or {})})
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def start_upload(self, repository: str) -> str:
        status, headers, _ = self.request("POST", f"/v2/{repository}/blobs/uploads/")
        assert status == 202, status
        return headers["Location"]

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = self.start_upload(repository)
        separator = "&" if "?" in location else "?"
        status, _, body = self.request("PUT", f"{location}{separator}digest={digest}", data,
                                       {"Content-Type": "application/octet-stream"})
        assert status == 201, (status, body)
        return digest

    def push_image(self, repository: str, tag: str, layer: bytes) -> dict:
        image = Image.of(repository, tag, layer)
        self.fill(image)
        return image.descriptors["layer"]

    def fill(self, image: "Image") -> bool:
        """What the fill does: nothing when the tag already has the image's digest (it compares
        tags only), else what `skopeo copy` does: upload each blob the repository lacks, then put
        the manifest. True if it copied."""
        status, headers, _ = self.request("HEAD", f"/v2/{image.repository}/manifests/{image.tag}", headers=OCI)
        if status == 200 and headers.get("Docker-Content-Digest") == image.digest:
            return False
        for digest, data in image.blobs.items():
            if self.request("HEAD", f"/v2/{image.repository}/blobs/{digest}")[0] != 200:
                assert self.push_blob(image.repository, data) == digest
        status, _, body = self.request("PUT", f"/v2/{image.repository}/manifests/{image.tag}", image.manifest,
                                       {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 201, (status, body)
        return True

    def problems(self, image: "Image") -> list[str]:
        """What a pull of the image by its tag would trip on; nothing if it is served intact."""
        path = f"/v2/{image.repository}"
        status, headers, body = self.request("GET", f"{path}/manifests/{image.tag}", headers=OCI)
        if status != 200 or hashlib.sha256(body).hexdigest() != image.digest[7:]:
            return [f"manifest: {status}, {len(body)} bytes"]
        found = []
        for digest, data in image.blobs.items():
            status, _, body = self.request("GET", f"{path}/blobs/{digest}")
            if (status, body) != (200, data):
                found.append(f"blob {digest}: {status}, {len(body)} bytes")
        return found


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str
    manifest: bytes
    blobs: dict[str, bytes]
    """Digest → bytes of the config and the layer."""
    descriptors: dict[str, dict]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()

    @classmethod
    def of(cls, repository: str, tag: str, layer: bytes) -> "Image":
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        descriptors, blobs = {}, {}
        for name, data, media_type in (("config", config, "application/vnd.oci.image.config.v1+json"),
                                       ("layer", layer, "application/vnd.oci.image.layer.v1.tar")):
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            descriptors[name] = {"mediaType": media_type, "digest": digest, "size": len(data)}
            blobs[digest] = data
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": descriptors["config"], "layers": [descriptors["layer"]]}).encode()
        return cls(repository, tag, manifest, blobs, descriptors)


def test_sigterm_finishes_the_request_in_flight(registry):
    """Without `draintimeout`, Distribution exits at SIGTERM mid-request; with it, the request
    started before the stop completes and the registry then exits cleanly."""
    client = Client(registry)
    location = client.start_upload("drain/test")
    data = bytes(range(256)) * 4096
    connection = client.connect()
    connection.putrequest("PATCH", location)
    for name, value in {**client.headers, "Content-Type": "application/octet-stream",
                        "Content-Length": str(len(data))}.items():
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(data[: len(data) // 2])
    process = registry._process
    process.send_signal(signal.SIGTERM)
    time.sleep(1)
    assert process.poll() is None, "the registry exited with a request half received"
    connection.send(data[len(data) // 2:])
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 202, response.status
    assert response.getheader("Range") == f"0-{len(data) - 1}", "every byte was received"
    assert process.wait(10) == 0, registry.log_file.read_text()[-2000:]


def _repair(registry: PrivateRegistry, tmp_path: Path) -> list[str]:
    """The unit's ExecStartPre, with the script where the install step puts it."""
    script = tmp_path / "repair-storage.sh"
    script.write_text(render.REPAIR_STORAGE)
    unit = render.registry_unit(str(registry.storage))
    command = next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStartPre="))
    argv = [str(script) if part == render.REPAIR_SCRIPT else part for part in command.split()]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


def test_empty_links_and_manifests_fail_until_the_units_repair_runs(registry, tmp_path):
    client = Client(registry)
    layer = client.push_image("repair/test", "1", b"layer bytes " * 1000)
    client.push_image("repair/test", "2", b"second layer " * 1000)
    kept = client.push_image("repair/other", "1", b"other layer " * 1000)
    client.push_image("repair/third", "1", b"third layer " * 1000)
    status, _, manifest_three = client.request("GET", "/v2/repair/third/manifests/1", headers=OCI)
    assert status == 200
    three = hashlib.sha256(manifest_three).hexdigest()
    manifest_data = registry.storage / "docker/registry/v2/blobs/sha256" / three[:2] / three / "data"
    nothing = registry.storage / "docker/registry/v2/blobs/sha256/e3" / hashlib.sha256(b"").hexdigest() / "data"
    nothing.parent.mkdir(parents=True)
    nothing.write_bytes(b"")  # an empty blob is a blob: kept
    status, headers, manifest_two = client.request("GET", "/v2/repair/test/manifests/2", headers=OCI)
    assert status == 200
    repository = registry.storage / "docker/registry/v2/repositories/repair/test"
    layer_link = repository / "_layers/sha256" / layer["digest"].removeprefix("sha256:") / "link"
    tag_link = repository / "_manifests/tags/2/current/link"
    orphan = repository / "_layers/sha256" / ("0" * 64) / "link"  # names a blob the registry lacks
    orphan.parent.mkdir(parents=True)
    for empty in (layer_link, tag_link, orphan, manifest_data):  # a kill between Distribution's create and write
        empty.write_text("")
    registry.stop()
    registry.start()
    status, _, _ = client.request("HEAD", f"/v2/repair/test/blobs/{layer['digest']}")
    assert status == 500, "the hazard this repair exists for"
    status, _, _ = client.request("PUT", "/v2/repair/third/manifests/1", manifest_three,
                                  {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    status, _, _ = client.request("GET", "/v2/repair/third/manifests/1", headers=OCI)
    assert status == 500, "an empty manifest is not even mended by pushing it again"

    registry.stop()
    lines = _repair(registry, tmp_path)
    moved = quarantined(registry, lines)
    assert sorted(line for line in lines if not MOVED.fullmatch(line)) == sorted([
        f"repair-storage: {layer_link}: written again ({layer['digest']})",
        f"repair-storage: {tag_link}: empty, removed",
        f"repair-storage: {orphan}: empty, removed",
        f"repair-storage: {manifest_data}: empty, removed",
    ])
    # What led to the lost manifest: its revision link, and the tag's index and current links.
    third = registry.storage / "docker/registry/v2/repositories/repair/third/_manifests"
    assert sorted(moved) == sorted(str(path) for path in (
        third / "revisions/sha256" / three / "link", third / "tags/1/index/sha256" / three / "link",
        third / "tags/1/current/link"))
    assert all(f": holds sha256:{three}, but its blob is missing; moved to " in line for line in lines
               if MOVED.fullmatch(line))
    assert nothing.is_file()
    registry.start()
    status, headers, _ = client.request("HEAD", f"/v2/repair/test/blobs/{layer['digest']}")
    assert (status, int(headers["Content-Length"])) == (200, layer["size"]), "served again, nothing re-sent"
    status, _, _ = client.request("HEAD", "/v2/repair/test/manifests/2", headers=OCI)
    assert status == 404, "a tag whose digest was lost is absent, not broken"
    status, _, _ = client.request("HEAD", "/v2/repair/test/manifests/1", headers=OCI)
    assert status == 200
    status, _, _ = client.request("HEAD", f"/v2/repair/other/blobs/{kept['digest']}")
    assert status == 200, "nothing else was touched"
    status, _, body = client.request("PUT", "/v2/repair/test/manifests/2", manifest_two,
                                     {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201, body
    status, _, _ = client.request("HEAD", "/v2/repair/test/manifests/2", headers=OCI)
    assert status == 200, "the next fill writes the tag again"
    status, _, _ = client.request("HEAD", "/v2/repair/third/manifests/1", headers=OCI)
    assert status == 404, "a manifest whose bytes were lost is absent, not broken"
    status, _, _ = client.request("PUT", "/v2/repair/third/manifests/1", manifest_three,
                                  {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201
    status, _, body = client.request("GET", "/v2/repair/third/manifests/1", headers=OCI)
    assert (status, body) == (200, manifest_three), "the next fill writes it again"
    registry.stop()
    assert _repair(registry, tmp_path) == [], "a second run finds nothing"
    registry.start()


MOVED = re.compile(r"repair-storage: (?P<path>/.+?): (?P<why>.+); moved to (?P<target>/.+)")


def quarantined(registry: PrivateRegistry, lines: list[str]) -> dict[str, Path]:
    """Path → where it went, of everything the repair moved: into the quarantine folder inside the
    storage, below a UTC timestamp, under its own path relative to the storage."""
    moved = {}
    for line in lines:
        found = MOVED.fullmatch(line)
        if found:
            relative = Path(found["path"]).relative_to(registry.storage)
            target = Path(found["target"]).relative_to(registry.storage / "quarantine")
            assert re.fullmatch(r"\d{8}T\d{6}Z", target.parts[0]), target
            assert target.relative_to(target.parts[0]) == relative, line
            moved[found["path"]] = Path(found["target"])
    return moved


@dataclass(frozen=True)
class Garbage:
    """What a crash left in one image's files, and what the repair must make of it."""

    name: str
    files: tuple[str, ...]
    """The files it breaks: `layer link`, `tag link`, `layer data`, `manifest data`."""
    write: object
    """(the file's bytes, the image) → its new bytes, or None to lose the file."""
    served: bool
    """After the repair: served intact (True: the link is written again), or the tag absent."""
    moved: tuple[str, ...]
    """The files the repair moves to quarantine."""


GARBAGE = [
    Garbage("a layer link holding a truncated digest", ("layer link",), lambda data, image: data[:39], True,
            ("layer link",)),
    Garbage("a layer link naming another blob", ("layer link",),
            lambda data, image: image.descriptors["config"]["digest"].encode(), True, ("layer link",)),
    Garbage("a tag link holding garbage", ("tag link",), lambda data, image: b"sha256:\x00\x17\xfe{\"" + data[10:30],
            False, ("tag link",)),
    Garbage("a tag link naming a layer", ("tag link",),
            lambda data, image: image.descriptors["layer"]["digest"].encode(), False, ("tag link",)),
    Garbage("a link to a blob that never reached the disk", ("layer data",), lambda data, image: None, False,
            ("layer link", "tag link")),
    Garbage("a layer cut short", ("layer data",), lambda data, image: data[: len(data) // 3], False,
            ("layer data", "layer link", "tag link")),
    Garbage("a half-written manifest", ("manifest data",), lambda data, image: data[: len(data) // 2], False,
            ("manifest data", "revision link", "tag index link", "tag link")),
    Garbage("a manifest whose bytes hash differently", ("manifest data",),
            lambda data, image: json.dumps(json.loads(data), indent=1).encode(), False,
            ("manifest data", "revision link", "tag index link", "tag link")),
]


def files_of(registry: PrivateRegistry, image: Image) -> dict[str, Path]:
    v2 = registry.storage / "docker/registry/v2"
    layer = image.descriptors["layer"]["digest"][7:]
    manifest = image.digest[7:]
    repository = v2 / "repositories" / image.repository
    return {
        "layer link": repository / "_layers/sha256" / layer / "link",
        "layer data": v2 / "blobs/sha256" / layer[:2] / layer / "data",
        "manifest data": v2 / "blobs/sha256" / manifest[:2] / manifest / "data",
        "revision link": repository / "_manifests/revisions/sha256" / manifest / "link",
        "tag index link": repository / f"_manifests/tags/{image.tag}/index/sha256" / manifest / "link",
        "tag link": repository / f"_manifests/tags/{image.tag}/current/link",
    }


@pytest.mark.parametrize("garbage", GARBAGE, ids=lambda garbage: garbage.name)
def test_garbage_a_power_loss_leaves_is_quarantined_and_the_next_fill_writes_it_back(registry, tmp_path, garbage):
    client = Client(registry)
    image = Image.of("garbage/app", "1", b"app layer " * 5000)
    other = Image.of("garbage/other", "1", b"other layer " * 5000)  # shares the config blob
    assert client.fill(image) and client.fill(other)
    assert client.problems(image) == client.problems(other) == []
    files = files_of(registry, image)
    registry.stop()
    left = {}
    for name in garbage.files:
        data = garbage.write(files[name].read_bytes(), image)
        if data is None:
            files[name].unlink()
        else:
            files[name].write_bytes(data)
            left[name] = data
    registry.start()
    assert client.problems(image), "the garbage trips a pull"

    registry.stop()
    lines = _repair(registry, tmp_path)
    moved = quarantined(registry, lines)
    assert sorted(moved) == sorted(str(files[name]) for name in garbage.moved), lines
    rewritten = [f"repair-storage: {files['layer link']}: written again ({image.descriptors['layer']['digest']})"]
    assert [line for line in lines if not MOVED.fullmatch(line)] == (rewritten if garbage.served else []), lines
    for name, data in left.items():
        assert moved[str(files[name])].read_bytes() == data, "the quarantine holds what the crash left"
    assert _repair(registry, tmp_path) == [], "a second repair finds nothing"

    registry.start()
    if garbage.served:
        assert client.problems(image) == [], "served intact"
    else:
        status, _, _ = client.request("HEAD", f"/v2/{image.repository}/manifests/{image.tag}", headers=OCI)
        assert status == 404, "absent, not broken"
    assert client.problems(other) == [], "nothing else was touched"
    assert client.fill(image) is not garbage.served, "the next fill copies an image whose tag is gone, only that"
    assert client.problems(image) == []
    registry.stop()
    assert _repair(registry, tmp_path) == []
    registry.start()
