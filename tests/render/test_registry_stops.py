"""A registry stopped while it works: the rendered config drains what it started, and the unit's
repair step undoes what a kill leaves (an empty `link` or manifest, answered with a 500 until
repaired).
Both against Docker Distribution itself, on loopback."""

import base64
import hashlib
import http.client
import json
import signal
import socket
import ssl
import subprocess
import time

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
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        descriptors = {}
        for name, data, media_type in (("config", config, "application/vnd.oci.image.config.v1+json"),
                                       ("layer", layer, "application/vnd.oci.image.layer.v1.tar")):
            descriptors[name] = {"mediaType": media_type, "digest": self.push_blob(repository, data), "size": len(data)}
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": descriptors["config"], "layers": [descriptors["layer"]]}).encode()
        status, _, body = self.request("PUT", f"/v2/{repository}/manifests/{tag}", manifest,
                                       {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert status == 201, (status, body)
        return descriptors["layer"]


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


def _repair(registry: PrivateRegistry, tmp_path) -> list[str]:
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
    assert sorted(_repair(registry, tmp_path)) == sorted([
        f"repair-storage: {layer_link}: written again ({layer['digest']})",
        f"repair-storage: {tag_link}: empty, removed",
        f"repair-storage: {orphan}: empty, removed",
        f"repair-storage: {manifest_data}: empty, removed",
    ])
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
