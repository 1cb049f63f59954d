"""Crossing the gap end to end: bundles made from the upstream fixtures, verified, tampered with,
imported, and the images filled from the imported layout into a private registry."""

from __future__ import annotations

import json
import os
import shutil
import ssl
from pathlib import Path

import pytest

from bundle.manifest import Manifest
from components.images import parse_image_ref
from oci.registry import RegistryClient
from sandbox.oci_images import REF_NAME_ANNOTATION
from tests.bundle.conftest import PRIVATE_ADDRESS, bundle_cli, fill_from_layout, tree_digests
from tests.harness.private_registry import PrivateRegistry

pytestmark = pytest.mark.e2e


def layout_digests(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_bytes())
    return {entry["annotations"][REF_NAME_ANNOTATION]: entry["digest"] for entry in index["manifests"]}


def catalog_blobs(catalog) -> set[str]:
    """Hex digests of every blob of a catalog: manifests, indexes, configs, layers."""
    found = set()
    for image in catalog.images:
        found |= {image.digest} | {m.manifest.digest for m in image.manifests}
        found |= {blob.digest for blob in image.blobs()}
    return {digest.split(":", 1)[1] for digest in found}


def assert_arrived(into: Path, crossing, catalog, repos, files) -> None:
    """Every image digest, package and file the inside has is the upstream's, byte for byte."""
    assert layout_digests(into / "images") == {image.ref: image.digest for image in catalog.images}
    blobs = into / "images" / "blobs" / "sha256"
    for hexdigest in catalog_blobs(catalog):
        assert (blobs / hexdigest).read_bytes() == (catalog.layout / "blobs" / "sha256" / hexdigest).read_bytes()
    assert tree_digests(into / "apt" / "upstream") == tree_digests(repos.debian)
    assert tree_digests(into / "rpm" / "upstream") == tree_digests(repos.rpm)
    assert tree_digests(into / "files") == tree_digests(files)
    assert os.access(into / "files" / "tools" / "airgap-check.sh", os.X_OK), "modes travel too"


def inventory_json(source: Path, work: Path) -> dict:
    target = work / f"inventory-{abs(hash(str(source)))}.json"
    result = bundle_cli("inventory", source, "--json", target)
    assert result.returncode == 0, result.stderr
    return json.loads(target.read_text())


def test_round_trip_keeps_every_digest_package_and_file(crossing, tmp_path):
    good = crossing.keys["good"]
    verified = bundle_cli("verify", crossing.r0, "--public-key", good.public)
    assert verified.returncode == 0, verified.stderr
    assert f"signed by {good.fingerprint}" in verified.stdout

    into = tmp_path / "inside"
    imported = bundle_cli("import", crossing.r0, "--into", into, "--public-key", good.public)
    assert imported.returncode == 0, imported.stderr
    assert f"registry.fill.ociLayout: {into / 'images'}" in imported.stdout
    assert_arrived(into, crossing, crossing.catalog0, crossing.repos0, crossing.files0)

    inventory = inventory_json(into, tmp_path)
    assert inventory == inventory_json(crossing.r0, tmp_path), "what arrived is what the manifest lists"
    debs = {(p["name"], p["version"]) for p in inventory["deb"]}
    assert debs == {(name, v) for name, versions in crossing.repos0.packages.items() for v in versions}
    nginx = next(i for i in inventory["images"] if i["ref"] == "docker.io/library/nginx:1.25")
    assert nginx["platforms"] == ["linux/amd64", "linux/arm/v7", "linux/arm64/v8"]

    # The stack's consumer: the fill, reading the imported layout, into a registry as rendered.
    with PrivateRegistry(PRIVATE_ADDRESS, 5443) as private:
        lock, _ = fill_from_layout(tmp_path, into / "images", private, crossing.catalog0.refs)
        expected = {image.ref: image.digest for image in crossing.catalog0.images}
        assert {ref: entry["digest"] for ref, entry in lock.items()} == expected
        client = RegistryClient(
            private.endpoint, ssl.create_default_context(cafile=str(private.cert_dir / "ca.crt")),
            json.loads(private.auth_file().read_text())["auths"][private.endpoint]["auth"])
        for image in crossing.catalog0.images:
            ref = parse_image_ref(image.ref)
            assert client.digest(ref.private_path, ref.private_tag) == image.digest, image.ref


def test_a_split_bundle_reassembles_to_the_same_content(crossing, tmp_path):
    parts = sorted((crossing.r0_split / "parts").iterdir())
    assert len(parts) > 2 and all(p.stat().st_size <= 256 * 1024 for p in parts)
    listed = Manifest.read(crossing.r0_split / "MANIFEST.json")
    assert [p.path for p in listed.parts] == [f"parts/{p.name}" for p in parts]

    verified = bundle_cli("verify", crossing.r0_split)
    assert verified.returncode == 0, verified.stderr
    assert f"in {len(parts)} parts" in verified.stdout and "unsigned" in verified.stdout
    into = tmp_path / "inside"
    imported = bundle_cli("import", crossing.r0_split, "--into", into)
    assert imported.returncode == 0, imported.stderr
    assert_arrived(into, crossing, crossing.catalog0, crossing.repos0, crossing.files0)
    assert inventory_json(into, tmp_path) == inventory_json(crossing.r0, tmp_path)


def _flip(path: Path, offset: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


def _largest_blob(bundle: Path) -> str:
    blob = max((bundle / "images" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    return blob.relative_to(bundle).as_posix()


def flipped_blob(bundle: Path) -> tuple[str, str]:
    path = _largest_blob(bundle)
    _flip(bundle / path)
    return path, "sha256 differs from the manifest (altered)"


def truncated_package(bundle: Path) -> tuple[str, str]:
    path = "rpm/upstream/Packages/airgap-data-1.0-1.noarch.rpm"
    os.truncate(bundle / path, 1000)
    return path, "(truncated)"


def missing_file(bundle: Path) -> tuple[str, str]:
    path = "apt/upstream/pool/main/a/airgap-hello/airgap-hello_1.0_all.deb"
    (bundle / path).unlink()
    return path, "missing"


def extra_file(bundle: Path) -> tuple[str, str]:
    path = "apt/upstream/pool/main/e/evil/evil_1.0_all.deb"
    (bundle / path).parent.mkdir(parents=True)
    (bundle / path).write_bytes(b"!<arch>\n")
    return path, "not in the manifest (extra file)"


def flipped_part(bundle: Path) -> tuple[str, str]:
    _flip(bundle / "parts" / "bundle.tar.002", 100_000)
    return "parts/bundle.tar.002", "sha256 differs"


def truncated_part(bundle: Path) -> tuple[str, str]:
    os.truncate(bundle / "parts" / "bundle.tar.001", 4096)
    return "parts/bundle.tar.001", "(truncated)"


def missing_part(bundle: Path) -> tuple[str, str]:
    (bundle / "parts" / "bundle.tar.003").unlink()
    return "parts/bundle.tar.003", "missing"


def extra_part(bundle: Path) -> tuple[str, str]:
    (bundle / "parts" / "bundle.tar.999").write_bytes(b"\0" * 512)
    return "parts/bundle.tar.999", "not in the manifest (extra file)"


TAMPERING = [
    ("r0", flipped_blob), ("r0", truncated_package), ("r0", missing_file), ("r0", extra_file),
    ("r0_split", flipped_part), ("r0_split", truncated_part), ("r0_split", missing_part), ("r0_split", extra_part),
]


@pytest.mark.parametrize("which,tamper", TAMPERING, ids=[t.__name__ for _, t in TAMPERING])
def test_tampering_is_refused_with_the_file_named_and_nothing_imported(crossing, tmp_path, which, tamper):
    bundle = tmp_path / "bundle"
    shutil.copytree(getattr(crossing, which), bundle, symlinks=True)
    path, problem = tamper(bundle)

    verified = bundle_cli("verify", bundle)
    assert verified.returncode == 1
    lines = verified.stderr.splitlines()
    assert any(line.startswith(f"bundle: {path}") and problem in line for line in lines), verified.stderr
    assert "the bundle is refused" in verified.stderr

    into = tmp_path / "inside"
    imported = bundle_cli("import", bundle, "--into", into)
    assert imported.returncode == 1
    assert f"bundle: {path}" in imported.stderr and "nothing imported" in imported.stderr
    assert not into.exists(), "a refused import leaves nothing behind"


def test_a_refused_import_leaves_the_inside_as_it_was(crossing, tmp_path):
    into = tmp_path / "inside"
    assert bundle_cli("import", crossing.r0, "--into", into).returncode == 0
    before = tree_digests(into, skip=())
    bundle = tmp_path / "r1"
    shutil.copytree(crossing.r1_delta, bundle, symlinks=True)
    path, _ = flipped_blob(bundle)
    imported = bundle_cli("import", bundle, "--into", into)
    assert imported.returncode == 1 and path in imported.stderr
    assert tree_digests(into, skip=()) == before


def test_a_delta_carries_only_new_content_and_lands_on_the_same_inventory(crossing, tmp_path):
    full0 = Manifest.read(crossing.r0 / "MANIFEST.json")
    full1 = Manifest.read(crossing.r1_full / "MANIFEST.json")
    delta = Manifest.read(crossing.r1_delta / "MANIFEST.json")
    assert delta.kind == "delta" and delta.base is not None and delta.base["created"] == full0.created
    had = set(full0.state().values())
    new = {entry.path for entry in full1.state().values() if entry not in had}
    assert {entry.path for entry in delta.files} == new
    assert delta.state() == full1.state(), "files + carried describe the whole new state"
    on_disk = set(tree_digests(crossing.r1_delta)) - {"MANIFEST.json", "MANIFEST.json.asc"}
    assert on_disk == new

    # Images: only blobs the inside lacks (by digest), but an index naming every image.
    delta_blobs = {p.name for p in (crossing.r1_delta / "images" / "blobs" / "sha256").iterdir()}
    assert delta_blobs == catalog_blobs(crossing.catalog1) - catalog_blobs(crossing.catalog0)
    assert layout_digests(crossing.r1_delta / "images") == {i.ref: i.digest for i in crossing.catalog1.images}
    # Packages: the new versions and the indexes that list them, not the unchanged .deb/.rpm.
    assert not any(path.endswith(("_1.0_all.deb", "-1.0-1.noarch.rpm")) for path in new)
    assert "apt/upstream/pool/main/a/airgap-hello/airgap-hello_1.1_all.deb" in new
    assert delta.payload_bytes() < full1.payload_bytes() / 2

    good = crossing.keys["good"]
    into, reference = tmp_path / "inside", tmp_path / "reference"
    for bundle, target in ((crossing.r0, into), (crossing.r1_delta, into), (crossing.r1_full, reference)):
        signed = ["--public-key", good.public] if bundle != crossing.r1_full else []
        result = bundle_cli("import", bundle, "--into", target, *signed)
        assert result.returncode == 0, result.stderr
        if bundle == crossing.r1_delta:
            assert f"{len(delta.carried)} carried over from the previous import" in result.stdout
    arrived = inventory_json(into, tmp_path)
    assert arrived == inventory_json(reference, tmp_path) == inventory_json(crossing.r1_full, tmp_path)
    assert tree_digests(into) == tree_digests(reference), "files revision 1 dropped are gone, the rest identical"
    assert_arrived(into, crossing, crossing.catalog1, crossing.repos1, crossing.files1)

    # Without what it builds on, a delta is refused before anything is copied.
    empty = tmp_path / "empty"
    refused = bundle_cli("import", crossing.r1_delta, "--into", empty)
    assert refused.returncode == 1 and "lacks it" in refused.stderr
    assert "import the bundle it was built against" in refused.stderr
    assert not empty.exists()

    # The same combination for a layout kept elsewhere: merge-layout.
    kept = tmp_path / "kept-layout"
    shutil.copytree(crossing.r0 / "images", kept)
    merged = bundle_cli("merge-layout", crossing.r1_delta / "images", "--into", kept)
    assert merged.returncode == 0, merged.stderr
    assert layout_digests(kept) == layout_digests(reference / "images")
    assert catalog_blobs(crossing.catalog1) <= {p.name for p in (kept / "blobs" / "sha256").iterdir()}
    lonely = tmp_path / "lonely-layout"
    lonely.mkdir()
    refused = bundle_cli("merge-layout", crossing.r1_delta / "images", "--into", lonely)
    assert refused.returncode == 1 and "would lack" in refused.stderr
    assert not (lonely / "index.json").exists()


def test_inventory_diff_names_what_an_update_adds_removes_and_changes(crossing, tmp_path):
    result = bundle_cli("inventory-diff", crossing.r0, crossing.r1_full, "--json", tmp_path / "diff.json")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "images: 1 added, 0 removed, 1 changed" in text
    assert "+  docker.io/mattermost/mattermost-team-edition:9.11.2" in text
    assert "~  docker.io/airgaptest/app-01:1.0" in text and " -> sha256:" in text
    assert "Debian packages: 2 added, 0 removed, 0 changed" in text
    assert "RPM packages: 2 added, 0 removed, 0 changed" in text
    assert "files: 1 added, 1 removed, 1 changed" in text
    difference = json.loads((tmp_path / "diff.json").read_text())
    assert [p["version"] for p in difference["deb"]["added"] if p["name"] == "airgap-hello"] == ["1.1"]
    assert [f["path"] for f in difference["files"]["removed"]] == ["files/opensearch/plugin.zip"]
    assert [f["new"]["path"] for f in difference["files"]["changed"]] == ["files/falco/rules.yaml"]
    same = bundle_cli("inventory-diff", crossing.r1_full, crossing.r1_delta)
    assert same.returncode == 0 and "0 added, 0 removed, 0 changed" in same.stdout and "+" not in same.stdout


def test_a_signature_verifies_with_its_key_and_fails_with_another(crossing, tmp_path):
    good, other = crossing.keys["good"], crossing.keys["other"]
    assert bundle_cli("verify", crossing.r1_delta, "--public-key", good.public).returncode == 0

    wrong = bundle_cli("verify", crossing.r0, "--public-key", other.public)
    assert wrong.returncode == 1 and "MANIFEST.json.asc: not made by the given key" in wrong.stderr
    refused = bundle_cli("import", crossing.r0, "--into", tmp_path / "inside", "--public-key", other.public)
    assert refused.returncode == 1 and not (tmp_path / "inside").exists()

    # An edited manifest: its own checksums still match the payload, the signature does not.
    edited = tmp_path / "edited"
    shutil.copytree(crossing.r0, edited, symlinks=True)
    manifest = (edited / "MANIFEST.json").read_text()
    (edited / "MANIFEST.json").write_text(manifest.replace('"kind": "full"', '"kind": "full" '))
    bad = bundle_cli("verify", edited, "--public-key", good.public)
    assert bad.returncode == 1 and "MANIFEST.json.asc: bad signature" in bad.stderr
    unchecked = bundle_cli("verify", edited)
    assert unchecked.returncode == 0 and "signature NOT checked" in unchecked.stdout

    unsigned = bundle_cli("verify", crossing.r1_full, "--public-key", good.public)
    assert unsigned.returncode == 1 and "MANIFEST.json.asc: missing" in unsigned.stderr


def test_the_scanner_runs_over_the_payload_and_can_refuse(crossing, tmp_path):
    refused = bundle_cli("verify", crossing.r0, "--scanner", "false {path}")
    assert refused.returncode == 1 and "scanner false refused the payload (exit 1)" in refused.stderr
    # A split bundle's payload is unpacked for the scanner, so it sees the files themselves.
    sees = 'sh -c \'test -s "$1/images/index.json" && test -f "$1/files/falco/rules.yaml"\' scanner {path}'
    accepted = bundle_cli("verify", crossing.r0_split, "--scanner", sees)
    assert accepted.returncode == 0 and "scanner accepted it" in accepted.stdout, accepted.stderr
    into = tmp_path / "inside"
    finds = "sh -c 'echo FOUND: Eicar >&2; exit 1'"
    blocked = bundle_cli("import", crossing.r0_split, "--into", into, "--scanner", finds)
    assert blocked.returncode == 1 and "FOUND: Eicar" in blocked.stderr
    assert not into.exists()
