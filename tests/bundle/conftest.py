"""Fixtures for the bundle tests: the CLI as users run it, signing keys, and a set of bundles
made once from the upstream fixtures at revision 0 and revision 1.

Addresses: the upstream registry on 127.0.0.31:5000 (only while the bundles are made), private
registries on 127.0.0.32 and 127.0.0.33.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.images import parse_image_ref
from components.registry import fill_image
from components.render import registry_fill
from oci import fill
from sandbox.oci_images import Catalog, generate
from sandbox.upstream import start_upstream
from sandbox.upstream_repos import RepoTree, cached_repos
from tests.harness.private_registry import PrivateRegistry

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_ADDRESS = "127.0.0.31"
PRIVATE_ADDRESS = "127.0.0.32"
STORAGE_ADDRESS = "127.0.0.33"
SPLIT_SIZE = "256K"


def bundle_cli(*args: object, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m bundle …` in a child process, as an operator runs it."""
    environment = {**(env or os.environ), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bundle", *map(str, args)], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=timeout)


def tree_digests(root: Path, *, skip: tuple[str, ...] = (".bundle",)) -> dict[str, str]:
    """Relative path → sha256 (or `-> target` for a link) of everything below `root`."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if relative.split("/")[0] in skip:
            continue
        if path.is_symlink():
            found[relative] = "-> " + os.readlink(path)
        elif path.is_file():
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def skopeo_env(directory: Path) -> dict[str, str]:
    """skopeo without the machine's registries.conf or auth files."""
    (directory / "registries.conf").write_text("")
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory),
            "CONTAINERS_REGISTRIES_CONF": str(directory / "registries.conf"),
            "REGISTRY_AUTH_FILE": str(directory / "auth.json")}


def fill_from_layout(work: Path, layout: Path, private: PrivateRegistry, refs) -> tuple[dict, str]:
    """The project's fill with `registry.fill.ociLayout` = the imported layout: (lock, its log)."""
    images = [fill_image(parse_image_ref(ref), {}, str(layout)) for ref in refs]
    (work / "plan.json").write_text(registry_fill.fill_plan(private.endpoint, images, parallel=4, retries=1))
    result = subprocess.run(
        [sys.executable, "-I", fill.__file__, "--plan", str(work / "plan.json"),
         "--authfile", str(private.auth_file()), "--cert-dir", str(private.cert_dir)],
        capture_output=True, text=True, env=skopeo_env(work), timeout=300)
    assert result.returncode == 0, result.stderr
    return {entry["source"]: entry for entry in json.loads(result.stdout)["images"]}, result.stderr


@dataclass(frozen=True)
class Key:
    fingerprint: str
    gnupghome: Path
    public: Path


def _gpg(home: Path, *args: str) -> str:
    result = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", "--passphrase", "",
                             "--pinentry-mode", "loopback", *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def signing_keys():
    """Two ed25519 keys, each in its own throwaway GNUPGHOME: `good` signs, `other` does not."""
    keys, homes = {}, []
    try:
        for role in ("good", "other"):
            home = Path(tempfile.mkdtemp(prefix="bundle-key-", dir="/tmp"))  # gpg's socket paths stay short
            homes.append(home)
            _gpg(home, "--quick-gen-key", f"bundle test {role} <{role}@bundle.test>", "ed25519", "sign", "never")
            listing = _gpg(home, "--with-colons", "--list-secret-keys")
            fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
            public = home / "public.asc"
            public.write_text(_gpg(home, "--armor", "--export", fingerprint))
            keys[role] = Key(fingerprint, home, public)
        yield keys
    finally:
        for home in homes:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=10)
            shutil.rmtree(home, ignore_errors=True)


def write_files(root: Path, revision: int) -> Path:
    """File server artifacts: revision 1 changes one, drops one and adds one."""
    (root / "falco").mkdir(parents=True)
    (root / "falco" / "rules.yaml").write_text(f"# rules, revision {revision}\nrules: []\n")
    (root / "falco" / "latest.yaml").symlink_to("rules.yaml")
    tool = root / "tools" / "airgap-check.sh"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\necho ok\n")
    tool.chmod(0o755)
    if revision == 0:
        (root / "opensearch").mkdir()
        (root / "opensearch" / "plugin.zip").write_bytes(hashlib.shake_256(b"plugin").digest(40_000))
    else:
        (root / "falco" / "extra.yaml").write_text("extra: true\n")
    return root


@dataclass(frozen=True)
class Crossing:
    """Bundles made from the fixtures: revision 0 (signed, and split), revision 1 (a delta
    against revision 0's manifest, signed, and a full one)."""

    r0: Path
    r0_split: Path
    r1_delta: Path
    r1_full: Path
    catalog0: Catalog
    catalog1: Catalog
    repos0: RepoTree
    repos1: RepoTree
    files0: Path
    files1: Path
    keys: dict


@pytest.fixture(scope="session")
def crossing(tmp_path_factory, signing_keys) -> Crossing:
    work = tmp_path_factory.mktemp("crossing")
    repos0, repos1 = cached_repos(0), cached_repos(1)
    files0, files1 = write_files(work / "files-r0", 0), write_files(work / "files-r1", 1)
    good = signing_keys["good"]
    # Generated again here: the upstream's own copy of its layout goes with its state.
    catalog0 = generate(work / "layout-r0", "test", revision=0)
    upstream = start_upstream("test", address=UPSTREAM_ADDRESS, port=5000)
    try:
        env = {**upstream.skopeo_env(), "PYTHONPATH": str(ROOT)}

        def create(out: Path, catalog: Catalog, repos: RepoTree, files: Path, *extra: object) -> Path:
            (work / f"{out.name}.images").write_text("".join(f"{ref}\n" for ref in catalog.refs))
            mapping = [arg for registry in catalog.registries
                       for arg in ("--images-from", f"{registry}={upstream.mirror_prefix(registry)}")]
            result = bundle_cli("create", "--out", out, "--images-file", work / f"{out.name}.images", *mapping,
                                "--src-cert-dir", upstream.cert_dir, "--work", work / "working-layout",
                                "--apt-tree", f"upstream={repos.debian}", "--rpm-tree", f"upstream={repos.rpm}",
                                "--files", files, *extra, env=env)
            assert result.returncode == 0, result.stderr
            return out

        signed = ("--sign-key", good.fingerprint, "--gnupghome", good.gnupghome)
        r0 = create(work / "r0", upstream.catalog, repos0, files0, *signed)
        r0_split = create(work / "r0-split", upstream.catalog, repos0, files0, "--split-size", SPLIT_SIZE)
        catalog1 = generate(work / "layout-r1", "test", revision=1)
        upstream.update(catalog1)
        r1_delta = create(work / "r1-delta", catalog1, repos1, files1, "--delta-against", r0 / "MANIFEST.json", *signed)
        r1_full = create(work / "r1-full", catalog1, repos1, files1)
    finally:
        upstream.close()
    return Crossing(r0, r0_split, r1_delta, r1_full, catalog0, catalog1, repos0, repos1, files0, files1,
                    signing_keys)
