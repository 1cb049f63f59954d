"""Discover to registry: images discovered from manifests, pinned with --resolve against the
upstream fixture, carried by bundle create --images-file, verified, imported, and filled by the
stack's fill into a private registry, each with the digest it was resolved to.

Addresses: the upstream fixture on 127.0.0.36:5000, the private registry on 127.0.0.37:5443."""

from __future__ import annotations

import json
import ssl

import pytest
import yaml

from components.images import parse_image_ref
from oci.registry import RegistryClient
from sandbox.upstream import start_upstream
from tests.bundle.conftest import ROOT, bundle_cli, fill_from_layout
from tests.harness.private_registry import PrivateRegistry

pytestmark = pytest.mark.e2e

UPSTREAM_ADDRESS = "127.0.0.36"
PRIVATE_ADDRESS = "127.0.0.37"


def manifests_for(refs: list[str]) -> str:
    """A Deployment per image and a CronJob with an init container: how the images reach a cluster."""
    documents: list[dict] = []
    *plain, last = refs
    for number, ref in enumerate(plain):
        documents.append({"apiVersion": "apps/v1", "kind": "Deployment",
                          "metadata": {"name": f"app-{number}", "namespace": "apps"},
                          "spec": {"template": {"spec": {"containers": [{"name": "main", "image": ref}]}}}})
    documents.append({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "apps"},
                      "spec": {"jobTemplate": {"spec": {"template": {"spec": {
                          "initContainers": [{"name": "prepare", "image": plain[0]}],
                          "containers": [{"name": "run", "image": last}]}}}}}})
    return yaml.safe_dump_all(documents)


def test_discovered_images_arrive_with_the_digests_they_resolved_to(tmp_path):
    upstream = start_upstream("test", address=UPSTREAM_ADDRESS, port=5000)
    try:
        catalog = upstream.catalog
        # Tagged references only, written as users write them (short Docker Hub names included).
        tagged = [image.ref for image in catalog.images if "@" not in image.ref][:6]
        written = [ref.removeprefix("docker.io/library/") for ref in tagged]
        (tmp_path / "app.yaml").write_text(manifests_for(written))
        mapping = [arg for registry in catalog.registries
                   for arg in ("--images-from", f"{registry}={upstream.mirror_prefix(registry)}")]
        env = {**upstream.skopeo_env(), "PYTHONPATH": str(ROOT)}
        discovered = bundle_cli("discover", tmp_path / "app.yaml", "--resolve", *mapping,
                                "--src-cert-dir", upstream.cert_dir, "--images-file", tmp_path / "images.txt", env=env)
        assert discovered.returncode == 0, discovered.stderr
        pinned = [line for line in (tmp_path / "images.txt").read_text().splitlines() if not line.startswith("#")]
        expected = {ref: catalog.image(ref).digest for ref in tagged}
        assert {line.partition("@")[0]: line.partition("@")[2] for line in pinned} == expected

        created = bundle_cli("create", "--out", tmp_path / "bundle", "--images-file", tmp_path / "images.txt",
                             *mapping, "--src-cert-dir", upstream.cert_dir, env=env)
        assert created.returncode == 0, created.stderr
    finally:
        upstream.close()
    # The upstream is gone: from here on, only what crossed.
    verified = bundle_cli("verify", tmp_path / "bundle")
    assert verified.returncode == 0, verified.stderr
    imported = bundle_cli("import", tmp_path / "bundle", "--into", tmp_path / "inside")
    assert imported.returncode == 0, imported.stderr

    with PrivateRegistry(PRIVATE_ADDRESS, 5443) as private:
        lock, _ = fill_from_layout(tmp_path, tmp_path / "inside" / "images", private, pinned)
        assert {entry["source"]: entry["digest"] for entry in lock.values()} == {
            str(parse_image_ref(line)): line.partition("@")[2] for line in pinned}
        client = RegistryClient(
            private.endpoint, ssl.create_default_context(cafile=str(private.cert_dir / "ca.crt")),
            json.loads(private.auth_file().read_text())["auths"][private.endpoint]["auth"])
        for line in pinned:
            ref = parse_image_ref(line)
            assert client.digest(ref.private_path, ref.private_tag) == ref.digest, line
