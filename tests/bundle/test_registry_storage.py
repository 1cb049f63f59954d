"""import-registry-storage against a real Docker Distribution: storage written while it is
stopped, the registry started by the command, every digest checked (through the API, or through
a read-only process of the same binary on a Unix socket and then the tags through the API), and
the project's fill then finding every image already there."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from components.images import parse_image_ref
from oci.registry import RegistryClient
from tests.bundle.conftest import STORAGE_ADDRESS, bundle_cli, fill_from_layout
from tests.harness.private_registry import PrivateRegistry

pytestmark = pytest.mark.e2e


def stop_pid(pidfile: Path) -> None:
    """TERM, then KILL, the registry this test's start command launched (and nothing else)."""
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    try:
        if b"docker-registry" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[1][:3]:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass


@pytest.mark.parametrize("registry_binary", [None, "docker-registry"], ids=["api", "loopback"])
def test_storage_written_while_stopped_serves_every_digest(crossing, tmp_path, registry_binary):
    into = tmp_path / "inside"
    assert bundle_cli("import", crossing.r0, "--into", into).returncode == 0
    layout = into / "images"
    scratch = tmp_path / "tmp"  # the command's TMPDIR: the loopback process's directory goes there
    scratch.mkdir()

    private = PrivateRegistry(STORAGE_ADDRESS, 5443)
    pidfile = tmp_path / "registry.pid"
    try:
        private.start()  # renders config, certificate and htpasswd as the component does
        private.stop()
        config, log = private.state_dir / "config.yml", private.log_file
        start = (f"docker-registry serve {shlex.quote(str(config))} >> {shlex.quote(str(log))} 2>&1 "
                 f"& echo $! > {shlex.quote(str(pidfile))}")
        common = ["--endpoint", private.endpoint, "--ca-file", private.cert_dir / "ca.crt",
                  "--authfile", private.auth_file()]
        result = bundle_cli("import-registry-storage", "--layout", layout, "--storage", private.storage,
                            "--start-command", start, *common,
                            *(["--registry-binary", registry_binary] if registry_binary else []),
                            env={**os.environ, "TMPDIR": str(scratch)})
        assert result.returncode == 0, result.stderr
        images = crossing.catalog0.images
        if registry_binary:
            blobs = len({blob for image in images for platform in image.manifests
                         for blob in (platform.config.digest, *(layer.digest for layer in platform.layers))})
            assert (f"the manifests and {blobs} blobs of {len(images)} images verified through {registry_binary} "
                    f"serving the storage read-only (") in result.stdout
            assert f"{private.endpoint}: {len(images)} tags verified through the API (" in result.stdout
            assert list(scratch.iterdir()) == [], "the loopback process's socket, config and log are gone"
        else:
            assert f"{private.endpoint}: {len(images)} tags, their manifests and" in result.stdout
            assert "verified through the API" in result.stdout
        assert f"{private.endpoint}: answering " in result.stdout

        # Distribution's own layout, as its API would have written it.
        v2 = private.storage / "docker" / "registry" / "v2"
        nginx = crossing.catalog0.image("docker.io/library/nginx:1.25")
        tag_link = v2 / "repositories" / "docker.io/library/nginx" / "_manifests" / "tags" / "1.25" / "current" / "link"
        assert tag_link.read_text() == nginx.digest
        for platform in nginx.manifests:
            hexdigest = platform.manifest.digest.split(":", 1)[1]
            revisions = v2 / "repositories/docker.io/library/nginx/_manifests/revisions/sha256"
            assert (revisions / hexdigest / "link").read_text() == platform.manifest.digest
            assert (v2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data").read_bytes() == \
                (crossing.catalog0.layout / "blobs" / "sha256" / hexdigest).read_bytes()

        # Through the API, independently of the command's own check.
        client = RegistryClient(
            private.endpoint, ssl.create_default_context(cafile=str(private.cert_dir / "ca.crt")),
            json.loads(private.auth_file().read_text())["auths"][private.endpoint]["auth"])
        for image in images:
            ref = parse_image_ref(image.ref)
            assert client.digest(ref.private_path, ref.private_tag) == image.digest, image.ref

        # The fill (what `pulumi up` runs) finds every image there and uploads nothing.
        before = log.read_text()
        lock, messages = fill_from_layout(tmp_path, layout, private, crossing.catalog0.refs)
        assert f"{len(images)} of {len(images)} images already present" in messages
        assert "/blobs/uploads/" not in log.read_text()[len(before):]
        assert {ref: entry["digest"] for ref, entry in lock.items()} == {i.ref: i.digest for i in images}

        # Writing under a running registry is refused; checking it is not.
        running = bundle_cli("import-registry-storage", "--layout", layout, "--storage", private.storage, *common)
        assert running.returncode == 1 and "the registry is running; stop it first" in running.stderr
        checked = bundle_cli("import-registry-storage", "--layout", layout, "--verify-only", *common)
        assert checked.returncode == 0, checked.stderr
    finally:
        stop_pid(pidfile)
        private.close()


def _import_layout(crossing, tmp_path) -> Path:
    into = tmp_path / "inside"
    assert bundle_cli("import", crossing.r0, "--into", into).returncode == 0
    return into / "images"


def test_concurrent_verification_names_every_broken_blob_manifest_and_tag(crossing, tmp_path):
    """Checks run on several connections at once; each problem is still reported by image and
    digest, every other check still made, and the count is right."""
    from bundle import registry_storage
    from bundle.images import Layout

    layout = _import_layout(crossing, tmp_path)
    private = PrivateRegistry(STORAGE_ADDRESS, 5444)
    try:
        private.start()
        private.stop()
        written = bundle_cli("import-registry-storage", "--layout", layout, "--storage", private.storage)
        assert written.returncode == 0, written.stderr
        assert "start the registry, then check it" in written.stdout

        images = {image.name: image for image in registry_storage.plan(Layout(layout))}
        v2 = private.storage / "docker" / "registry" / "v2"
        nginx = images["docker.io/library/nginx:1.25"]  # an index: platform manifests are checked too
        single = next(image for image in images.values() if len(image.manifests) == 1 and image.repository !=
                      nginx.repository)
        # A blob whose data lost bytes (every repository that uses it is told), a layer link gone
        # from one repository only, a platform manifest's revision link gone, a tag moved away.
        truncated, size = max(single.blobs, key=lambda blob: blob[1])
        data = v2 / "blobs" / "sha256" / truncated[7:9] / truncated[7:] / "data"
        data.write_bytes(data.read_bytes()[: size // 2])
        unlinked = next(digest for digest, _ in nginx.blobs if digest != truncated)
        (v2 / "repositories" / nginx.repository / "_layers" / "sha256" / unlinked[7:] / "link").unlink()
        platform = nginx.manifests[1]
        revisions = v2 / "repositories" / nginx.repository / "_manifests" / "revisions" / "sha256"
        (revisions / platform[7:] / "link").unlink()
        moved = next(image for image in images.values() if image.repository not in (nginx.repository,
                                                                                    single.repository))
        (v2 / "repositories" / moved.repository / "_manifests" / "tags" / moved.tag / "current" / "link").write_text(
            single.digest)

        private.start()
        common = ["--endpoint", private.endpoint, "--ca-file", private.cert_dir / "ca.crt",
                  "--authfile", private.auth_file()]
        checked = bundle_cli("import-registry-storage", "--layout", layout, "--verify-only", *common)
        assert checked.returncode == 1
        lines = checked.stderr.splitlines()
        users = [image for image in images.values() if truncated in dict(image.blobs)]
        expected = [
            *[f"bundle: {image.name}: blob {truncated} answers 200 ({size // 2} bytes, {size} expected)"
              for image in users],
            f"bundle: {nginx.name}: manifest {platform} answers 404",
        ]
        for line in expected:
            assert line in lines, checked.stderr
        found = [line for line in lines if line.startswith(f"bundle: {nginx.name}: blob {unlinked} answers 404 (")
                 and line.endswith(f" bytes, {dict(nginx.blobs)[unlinked]} expected)")]
        # The tag moved to a manifest its repository does not have: it resolves to nothing.
        found += [line for line in lines if line == f"bundle: {moved.name}: the registry serves None for "
                  f"{moved.repository}:{moved.tag}, the layout has {moved.digest}"]
        assert len(found) == 2, checked.stderr
        assert len(users) > 1 and lines[-1] == \
            f"bundle: {len(expected) + 2} problems; the registry does not serve the layout"

        # The same storage served read-only on a Unix socket, no TLS, no auth: the same problems.
        with registry_storage.LoopbackRegistry("docker-registry", private.storage) as loopback:
            client = loopback.start().wait(10)
            found = registry_storage.verify_through(client, registry_storage.checks(list(images.values())))
        assert sorted(f"bundle: {problem}" for problem in found) == sorted(lines[:-1])
    finally:
        private.close()


def test_the_loopback_listener_is_private_and_read_only(crossing, tmp_path):
    """The process the import checks through listens on a Unix socket in a directory only its user
    enters, on no TCP port, refuses writes, and leaves nothing behind."""
    from bundle import registry_storage

    layout = _import_layout(crossing, tmp_path)
    storage = tmp_path / "storage"
    images = registry_storage.write_storage(layout, storage, log=lambda message: None)[0]
    before = sorted(p.relative_to(storage).as_posix() for p in storage.rglob("*"))
    with registry_storage.LoopbackRegistry("docker-registry", storage) as loopback:
        client = loopback.start().wait(10)
        assert loopback.process is not None
        assert os.stat(loopback.directory).st_mode & 0o777 == 0o700
        listening = subprocess.run(["ss", "-Hlnp"], capture_output=True, text=True, check=True).stdout
        own = [line for line in listening.splitlines() if f"pid={loopback.process.pid}," in line]
        assert len(own) == 1 and own[0].split()[0] == "u_str" and loopback.socket in own[0], listening
        status, headers, _ = client.request("POST", images[0].repository, "blobs/uploads/")
        assert (status, headers.get("allow")) == (405, "GET, HEAD"), "read-only"
        assert registry_storage.verify_through(client, registry_storage.checks(images)) == []
    assert loopback.process.poll() is not None and not os.path.exists(loopback.directory)
    assert sorted(p.relative_to(storage).as_posix() for p in storage.rglob("*")) == before, "nothing written"


def test_problems_the_loopback_finds_fail_the_import_and_the_registry_still_starts(crossing, tmp_path):
    """A loopback process that does not serve what was written (here: a binary that serves an
    empty directory instead) fails the import, naming each digest; the registry is started all
    the same, and its tags are still checked."""
    layout = _import_layout(crossing, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    wrong = tmp_path / "wrong-registry"
    wrong.write_text("#!/bin/sh\n"
                     f"sed 's#\"rootdirectory\": \"[^\"]*\"#\"rootdirectory\": \"{elsewhere}\"#' \"$2\" > \"$2.x\"\n"
                     f"exec {shutil.which('docker-registry')} serve \"$2.x\"\n")
    wrong.chmod(0o755)
    private = PrivateRegistry(STORAGE_ADDRESS, 5445)
    pidfile = tmp_path / "registry.pid"
    try:
        private.start()
        private.stop()
        start = (f"docker-registry serve {shlex.quote(str(private.state_dir / 'config.yml'))} "
                 f">> {shlex.quote(str(private.log_file))} 2>&1 & echo $! > {shlex.quote(str(pidfile))}")
        result = bundle_cli("import-registry-storage", "--layout", layout, "--storage", private.storage,
                            "--start-command", start, "--endpoint", private.endpoint,
                            "--ca-file", private.cert_dir / "ca.crt", "--authfile", private.auth_file(),
                            "--registry-binary", wrong)
        assert result.returncode == 1
        lines = result.stderr.splitlines()
        images = crossing.catalog0.images
        unknown = [line for line in lines if line.startswith("bundle: ") and " answers 404" in line]
        assert len(unknown) == len(lines) - 1 and len(unknown) > len(images), result.stderr
        assert lines[-1] == f"bundle: {len(unknown)} problems; the registry does not serve the layout"
        assert f"{private.endpoint}: {len(images)} tags verified through the API (" in result.stdout
        assert pidfile.exists(), "the registry was started"
    finally:
        stop_pid(pidfile)
        private.close()


def test_rewriting_storage_repairs_it_and_writes_nothing_twice(crossing, tmp_path):
    """A second run writes no blob; a cut data file, an emptied link and a stale temporary file
    (a hard link into the layout, left by a crash) are repaired without touching the layout;
    `--link` writes the same tree with the layout's inodes."""
    from bundle import registry_storage

    layout = _import_layout(crossing, tmp_path)

    def tree(root: Path) -> dict[str, bytes | int]:
        return {p.relative_to(root).as_posix(): (p.read_bytes() if p.name == "link" else p.stat().st_size)
                for p in sorted(root.rglob("*")) if p.is_file()}

    copied, linked = tmp_path / "copied", tmp_path / "linked"
    images, blobs, size = registry_storage.write_storage(layout, copied, log=lambda message: None)
    assert blobs == len({d for i in images for d in i.manifests} | {d for i in images for d, _ in i.blobs})
    before = tree(copied)
    assert registry_storage.write_storage(layout, copied, log=lambda message: None)[1:] == (0, 0)

    v2 = copied / "docker" / "registry" / "v2"
    data = sorted(v2.glob("blobs/sha256/*/*/data"))
    data[0].write_bytes(b"cut")
    tags = v2 / "repositories" / images[0].repository / "_manifests" / "tags"
    (tags / images[0].tag / "current" / "link").write_text("")
    layer = images[0].blobs[0][0]
    (v2 / "repositories" / images[0].repository / "_layers" / "sha256" / layer[7:] / "link").write_text("sha256:0")
    source = layout / "blobs" / "sha256" / data[1].parent.name
    layout_bytes = source.read_bytes()
    data[1].unlink()
    stale = data[1].parent / f".data.{os.getpid()}"  # write_storage runs in this process
    os.link(source, stale)
    assert registry_storage.write_storage(layout, copied, log=lambda message: None)[1] == 2
    assert tree(copied) == before
    assert source.read_bytes() == layout_bytes

    registry_storage.write_storage(layout, linked, link=True, log=lambda message: None)
    assert tree(linked) == before
    for path in (linked / "docker" / "registry" / "v2").glob("blobs/sha256/*/*/data"):
        assert path.stat().st_ino == (layout / "blobs" / "sha256" / path.parent.name).stat().st_ino


def test_layout_digests_that_are_not_hex_are_refused(tmp_path):
    """A digest becomes a storage path: anything but sha256 and 64 hex digits is refused."""
    import hashlib

    from bundle import registry_storage
    from bundle.images import Layout
    from bundle.manifest import BundleError

    blobs = tmp_path / "layout" / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": "sha256:" + "../" * 21 + "x", "size": 1},
                           "layers": []}).encode()
    digest = hashlib.sha256(manifest).hexdigest()
    (blobs / digest).write_bytes(manifest)
    (tmp_path / "layout" / "index.json").write_text(json.dumps({"manifests": [{
        "digest": f"sha256:{digest}", "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "example.com/app:1.0"}}]}))
    with pytest.raises(BundleError, match="is not sha256: and 64 lowercase hex digits"):
        registry_storage.plan(Layout(tmp_path / "layout"))
    assert not (tmp_path / "storage").exists()


def test_each_repository_blob_is_checked_once():
    from bundle.registry_storage import StoredImage, checks

    blob, other, index, platform = (f"sha256:{c * 64}" for c in "abcd")
    images = [StoredImage("r/app:1", "r/app", "1", index, (index, platform), ((blob, 1), (other, 2))),
              StoredImage("r/app:2", "r/app", "2", index, (index, platform), ((blob, 1),)),
              StoredImage("r/tool:1", "r/tool", "1", platform, (platform,), ((blob, 1),))]
    found = [(check.image.name, check.kind, check.digest) for check in checks(images)]
    assert found == [("r/app:1", "tag", index), ("r/app:1", "manifest", platform), ("r/app:1", "blob", blob),
                     ("r/app:1", "blob", other), ("r/app:2", "tag", index),
                     ("r/tool:1", "tag", platform), ("r/tool:1", "blob", blob)]


def test_a_registry_that_stops_answering_fails_the_check_quickly():
    """Connections refused: the first failures are reported (after the client's retries), the
    rest of the checks counted as not made rather than each retried in turn."""
    import ssl

    from bundle.registry_storage import StoredImage, checks, verify_registry

    images = [StoredImage(f"r/app{n}:1", f"r/app{n}", "1", f"sha256:{n:064x}", (f"sha256:{n:064x}",),
                          tuple((f"sha256:{n * 100 + b:064x}", 1) for b in range(5))) for n in range(20)]
    started = time.monotonic()
    problems = verify_registry(f"{STORAGE_ADDRESS}:5449", images, ssl.create_default_context(), None, workers=4)
    assert time.monotonic() - started < 10
    assert 1 <= len(problems) - 1 <= 4 and all("Connection refused" in line for line in problems[:-1]), problems
    assert problems[-1] == (f"{STORAGE_ADDRESS}:5449: {len(checks(images)) - len(problems) + 1} further checks "
                            f"not made after the connection failed")
