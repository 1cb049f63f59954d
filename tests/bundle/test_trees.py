"""Bundles of trees and files only (no registry needed): links and modes kept, split and plain
alike, inconsistent trees refused at creation, deltas with nothing new, and an inside whose
other files are never touched."""

from __future__ import annotations

import os
import shutil

import pytest

from bundle.manifest import LinkEntry, Manifest
from sandbox.upstream_repos import cached_repos
from tests.bundle.conftest import bundle_cli, tree_digests, write_files


@pytest.mark.parametrize("split", [False, True], ids=["plain", "split"])
def test_links_and_modes_cross_as_they_are(tmp_path, split):
    files = write_files(tmp_path / "files", 0)
    bundle, into = tmp_path / "bundle", tmp_path / "inside"
    created = bundle_cli("create", "--out", bundle, "--files", files, *(["--split-size", "16K"] if split else []))
    assert created.returncode == 0, created.stderr
    manifest = Manifest.read(bundle / "MANIFEST.json")
    links = {e.path: e.link for e in manifest.files if isinstance(e, LinkEntry)}
    assert links == {"files/falco/latest.yaml": "rules.yaml"}
    assert bool(manifest.parts) is split
    imported = bundle_cli("import", bundle, "--into", into)
    assert imported.returncode == 0, imported.stderr
    assert tree_digests(into / "files") == tree_digests(files)
    assert os.readlink(into / "files" / "falco" / "latest.yaml") == "rules.yaml"
    assert os.access(into / "files" / "tools" / "airgap-check.sh", os.X_OK)


def test_a_link_pointed_elsewhere_is_refused(tmp_path):
    files = write_files(tmp_path / "files", 0)
    bundle = tmp_path / "bundle"
    assert bundle_cli("create", "--out", bundle, "--files", files).returncode == 0
    link = bundle / "files" / "falco" / "latest.yaml"
    link.unlink()
    link.symlink_to("/etc/shadow")
    verified = bundle_cli("verify", bundle)
    assert verified.returncode == 1
    assert "bundle: files/falco/latest.yaml: should be a link to rules.yaml (altered)" in verified.stderr


def test_a_link_out_of_the_tree_is_refused_at_creation(tmp_path):
    files = write_files(tmp_path / "files", 0)
    (files / "escape").symlink_to("/etc")
    created = bundle_cli("create", "--out", tmp_path / "bundle", "--files", files)
    assert created.returncode == 1 and "a link to '/etc', outside the tree" in created.stderr


def test_a_tree_missing_a_package_its_index_lists_is_refused_at_creation(tmp_path):
    debian = tmp_path / "debian"
    shutil.copytree(cached_repos(0).debian, debian)
    (debian / "pool/main/a/airgap-docs/airgap-docs_1.0_all.deb").unlink()
    created = bundle_cli("create", "--out", tmp_path / "bundle", "--apt-tree", f"upstream={debian}")
    assert created.returncode == 1
    assert "apt/upstream/pool/main/a/airgap-docs/airgap-docs_1.0_all.deb: listed by its index" in created.stderr
    assert not (tmp_path / "bundle" / "MANIFEST.json").exists()


def test_create_refuses_a_directory_that_is_not_empty(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "old").write_text("x")
    created = bundle_cli("create", "--out", tmp_path / "bundle", "--files", write_files(tmp_path / "files", 0))
    assert created.returncode == 1 and "not empty" in created.stderr


def test_a_delta_with_nothing_new_and_the_inside_s_own_files(tmp_path):
    files = write_files(tmp_path / "files", 0)
    repos = cached_repos(0)
    full, delta, into = tmp_path / "full", tmp_path / "delta", tmp_path / "inside"
    sources = ["--files", files, "--rpm-tree", f"upstream={repos.rpm}"]
    assert bundle_cli("create", "--out", full, *sources).returncode == 0
    created = bundle_cli("create", "--out", delta, *sources, "--delta-against", full / "MANIFEST.json")
    assert created.returncode == 0, created.stderr
    manifest = Manifest.read(delta / "MANIFEST.json")
    assert manifest.files == [] and manifest.state() == Manifest.read(full / "MANIFEST.json").state()
    assert set(tree_digests(delta)) == {"MANIFEST.json"}

    into.mkdir()
    (into / "notes.txt").write_text("the inside's own\n")
    (into / "files").mkdir()
    (into / "files" / "local.bin").write_bytes(b"kept")
    for bundle in (full, delta):
        result = bundle_cli("import", bundle, "--into", into)
        assert result.returncode == 0, result.stderr
    assert (into / "notes.txt").read_text() == "the inside's own\n"
    assert (into / "files" / "local.bin").read_bytes() == b"kept", "only files a bundle put there are ever removed"
    assert tree_digests(into / "rpm" / "upstream") == tree_digests(repos.rpm)
