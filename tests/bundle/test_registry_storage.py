"""import-registry-storage against a real Docker Distribution: storage written while it is
stopped, the registry started by the command, every digest checked through the API, and the
project's fill then finding every image already there."""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from pathlib import Path

import pytest

from components.images import parse_image_ref
from components.render import fill_program
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


def test_storage_written_while_stopped_serves_every_digest(crossing, tmp_path):
    into = tmp_path / "inside"
    assert bundle_cli("import", crossing.r0, "--into", into).returncode == 0
    layout = into / "images"

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
                            "--start-command", start, *common)
        assert result.returncode == 0, result.stderr
        images = crossing.catalog0.images
        assert f"{len(images)} tags, their manifests and" in result.stdout
        assert "verified through the API" in result.stdout

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
        client = fill_program.RegistryClient(
            private.endpoint, fill_program.ssl.create_default_context(cafile=str(private.cert_dir / "ca.crt")),
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
