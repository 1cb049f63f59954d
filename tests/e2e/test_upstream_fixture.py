"""The upstream fixture itself: deterministic images, served with their digests over real TLS.

Every other end-to-end test trusts these digests, so this checks them with a real client
(skopeo) rather than with the fixture's own bookkeeping.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sandbox.oci_images import INDEX_MEDIA_TYPE, Catalog, generate
from sandbox.process import port_is_free
from sandbox.upstream import UpstreamRegistry

HAVE_REGISTRY_TOOLS = bool(shutil.which("docker-registry") and shutil.which("skopeo"))
needs_registry_tools = pytest.mark.skipif(
    not HAVE_REGISTRY_TOOLS, reason="needs Debian's docker-registry and skopeo")

# Away from the shared fixture's 127.0.0.2:5000, so instances in one test never collide.
SECOND_ADDRESS = "127.0.0.3"
UPDATE_PORT = 5001
MOVED_REF = "docker.io/airgaptest/app-01:1.0"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return generate(tmp_path_factory.mktemp("upstream") / "layout")


@pytest.fixture(scope="module")
def upstream(catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamRegistry]:
    if not HAVE_REGISTRY_TOOLS:
        pytest.skip("needs Debian's docker-registry and skopeo")
    with UpstreamRegistry(catalog, state_dir=tmp_path_factory.mktemp("registry")) as registry:
        yield registry


def blob_bytes(catalog: Catalog, digest: str) -> bytes:
    return (catalog.layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def layout_files(layout: Path) -> dict[str, bytes]:
    return {str(path.relative_to(layout)): path.read_bytes()
            for path in layout.rglob("*") if path.is_file()}


def inspect_raw(registry: UpstreamRegistry, reference: str,
                *cert_options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["skopeo", "inspect", "--raw", *cert_options, f"docker://{reference}"],
        capture_output=True, env=registry.skopeo_env(), timeout=60, check=False,
    )


def served_digest(registry: UpstreamRegistry, source_ref: str) -> str:
    """What a client trusting the CA receives for `source_ref`, as a digest of the raw bytes."""
    result = inspect_raw(registry, registry.served_ref(source_ref),
                         "--cert-dir", str(registry.cert_dir))
    assert result.returncode == 0, result.stderr.decode()
    return "sha256:" + hashlib.sha256(result.stdout).hexdigest()


def is_registry_process(pid: int) -> bool:
    try:
        return b"docker-registry" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


def test_generation_is_byte_for_byte_deterministic(tmp_path: Path) -> None:
    first = generate(tmp_path / "one")
    second = generate(tmp_path / "two")

    assert layout_files(first.layout) == layout_files(second.layout)
    assert [(i.ref, i.digest) for i in first.images] == [(i.ref, i.digest) for i in second.images]


def test_every_blob_is_stored_under_its_own_digest(catalog: Catalog) -> None:
    for path in (catalog.layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def test_images_span_registries_and_share_base_layers(catalog: Catalog) -> None:
    single_platform = [image for image in catalog.images if not image.is_index]

    assert len(single_platform) >= 20
    assert set(catalog.registries) >= {"docker.io", "quay.io", "registry.k8s.io", "ghcr.io",
                                       "gcr.io"}
    assert max(catalog.blob_use().values()) >= 5
    assert catalog.total_blob_bytes() > 2 * catalog.unique_blob_bytes()


def test_multi_arch_index_lists_every_platform(catalog: Catalog) -> None:
    nginx = catalog.image("docker.io/library/nginx:1.25")
    index = json.loads(blob_bytes(catalog, nginx.digest))

    assert nginx.media_type == INDEX_MEDIA_TYPE
    assert nginx.platforms == ("linux/amd64", "linux/arm64/v8", "linux/arm/v7")
    assert [entry["platform"] for entry in index["manifests"]] == [
        {"os": "linux", "architecture": "amd64"},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
        {"os": "linux", "architecture": "arm", "variant": "v7"},
    ]


def test_configs_name_the_uncompressed_layers(catalog: Catalog) -> None:
    for image in catalog.images:
        for manifest in image.manifests:
            config = json.loads(blob_bytes(catalog, manifest.config.digest))
            layer_tars = [gzip.decompress(blob_bytes(catalog, layer.digest))
                          for layer in manifest.layers]
            diff_ids = ["sha256:" + hashlib.sha256(tar).hexdigest() for tar in layer_tars]
            assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}, image.ref
            assert len(config["history"]) == len(manifest.layers), image.ref


def test_a_revision_moves_one_tag_and_adds_one(tmp_path: Path, catalog: Catalog) -> None:
    updated = generate(tmp_path / "r1", revision=1)

    assert updated.changed_since(catalog) == [
        MOVED_REF,
        "docker.io/mattermost/mattermost-team-edition:9.11.2",
    ]
    assert set(catalog.refs) < set(updated.refs)


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------


@needs_registry_tools
def test_every_image_is_served_with_its_catalog_digest(upstream: UpstreamRegistry,
                                                       catalog: Catalog) -> None:
    expected = {image.ref: image.digest for image in catalog.images}
    # An index's platform manifests too, fetched by digest as a runtime on that platform does.
    for image in catalog.images:
        for manifest in image.manifests if image.is_index else ():
            pinned = f"{image.registry}/{image.repository}@{manifest.manifest.digest}"
            expected[pinned] = manifest.manifest.digest

    with ThreadPoolExecutor(max_workers=4) as pool:
        served = dict(zip(expected, pool.map(lambda ref: served_digest(upstream, ref), expected), strict=True))

    assert served == expected


@needs_registry_tools
def test_tls_is_real(upstream: UpstreamRegistry, catalog: Catalog) -> None:
    untrusted = inspect_raw(upstream, upstream.served_ref(catalog.refs[0]))

    assert untrusted.returncode != 0
    assert b"certificate signed by unknown authority" in untrusted.stderr
    # The DNS name in the certificate verifies too, for clients that map upstream.test here.
    with socket.create_connection((upstream.address, upstream.port), timeout=5) as raw:
        with upstream.ssl_context().wrap_socket(raw, server_hostname="upstream.test") as tls:
            assert tls.version() in {"TLSv1.2", "TLSv1.3"}


@needs_registry_tools
def test_a_second_start_comes_from_the_cache_and_stop_frees_the_port(
        upstream: UpstreamRegistry, catalog: Catalog, tmp_path: Path) -> None:
    alpine = catalog.image("docker.io/library/alpine:3.19")
    second = UpstreamRegistry(catalog, address=SECOND_ADDRESS, state_dir=tmp_path)

    with second:
        pid = second.pid
        assert pid is not None
        assert second.started_from_cache
        assert served_digest(second, alpine.ref) == alpine.digest

    assert not is_registry_process(pid)
    assert port_is_free(second.address, second.port)


@needs_registry_tools
def test_an_update_publishes_the_new_release(upstream: UpstreamRegistry, catalog: Catalog,
                                             tmp_path: Path) -> None:
    updated = generate(tmp_path / "r1", revision=1)
    previous_release = "docker.io/mattermost/mattermost-team-edition:9.11.1"

    with UpstreamRegistry(catalog, port=UPDATE_PORT, state_dir=tmp_path / "registry") as registry:
        pushed = registry.update(updated)
        served = {ref: served_digest(registry, ref) for ref in [*pushed, previous_release]}

    assert served == {ref: updated.image(ref).digest for ref in served}
    # Pushing into storage linked from the cache must leave the cached baseline as it was.
    with UpstreamRegistry(catalog, address=SECOND_ADDRESS, port=UPDATE_PORT) as fresh:
        assert served_digest(fresh, MOVED_REF) == catalog.image(MOVED_REF).digest
