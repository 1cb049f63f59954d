"""The fill program: its schedule as a property, then real fills from the upstream fixture into a
private registry configured as the component renders it, the program run as the fill step runs it
(a file, under `python3 -I`)."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from components.images import parse_image_ref
from components.registry import fill_image
from components.render import registry_fill
from oci import fill
from oci.plan import FillImage
from sandbox.upstream import start_upstream
from tests.harness.private_registry import PrivateRegistry

PROGRAM = Path(fill.__file__)


def planned(source: str) -> FillImage:
    return FillImage(source=source, location=f"docker://up/{source}:1", repository=source, tag="1", digest=None)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sets(st.integers(0, 12), min_size=1, max_size=5), min_size=1, max_size=12),
       st.integers(1, 4))
def test_schedule_never_uploads_a_missing_blob_twice_at_once(blob_sets, parallel):
    images = [planned(f"img-{i}") for i in range(len(blob_sets))]
    blobs = {f"img-{i}": {f"b{n}" for n in s} for i, s in enumerate(blob_sets)}
    lock = threading.Lock()
    running: dict[str, set[str]] = {}
    present: set[str] = set()
    violations, ran = [], []

    def run(copied: FillImage) -> None:
        name = copied.source
        with lock:
            for other, other_blobs in running.items():
                shared = (blobs[name] & other_blobs) - present
                if shared:
                    violations.append((name, other, shared))
            running[name] = blobs[name]
            assert len(running) <= parallel
        time.sleep(0.002)
        with lock:
            del running[name]
            present.update(blobs[name])
            ran.append(name)

    fill.schedule(images, blobs, parallel, run)
    assert not violations
    assert sorted(ran) == sorted(i.source for i in images)


def test_schedule_stops_starting_copies_after_a_failure():
    images = [planned(s) for s in ("a", "b", "c", "d")]
    blobs = {"a": {"x"}, "b": {"y"}, "c": {"z"}, "d": {"w"}}
    ran = []

    def run(copied: FillImage) -> None:
        ran.append(copied.source)
        time.sleep(0.05 if copied.source == "b" else 0)
        if copied.source == "a":
            raise fill.FillError("a broke")

    with pytest.raises(fill.FillError, match=r"a broke; 2 images not attempted: c, d"):
        fill.schedule(images, blobs, 2, run)
    assert sorted(ran) == ["a", "b"], "the copy already running finishes; nothing new starts"


def test_a_malformed_plan_fails_before_anything_is_asked(tmp_path):
    plan = json.loads(registry_fill.fill_plan("127.0.0.5:5447", [planned("a")], parallel=1, retries=0))
    (tmp_path / "plan.json").write_text(json.dumps({**plan, "parallel": 0}))
    result = subprocess.run(
        [sys.executable, "-I", str(PROGRAM), "--plan", str(tmp_path / "plan.json"),
         "--authfile", str(tmp_path / "absent.json"), "--cert-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == f"fill: failed: {tmp_path / 'plan.json'}: parallel: expected a whole number >= 1, got 0\n"
    assert result.stdout == ""


@pytest.fixture(scope="module")
def upstream():
    registry = start_upstream("test", address="127.0.0.4", port=5000)
    yield registry
    registry.close()


def run_fill(tmp_path, upstream, private, refs):
    upstreams = {r: upstream.mirror_prefix(r) for r in upstream.catalog.registries}
    images = [fill_image(parse_image_ref(r), upstreams, None) for r in refs]
    (tmp_path / "plan.json").write_text(registry_fill.fill_plan(private.endpoint, images, parallel=4, retries=2))
    return subprocess.Popen(
        [sys.executable, "-I", str(PROGRAM), "--plan", str(tmp_path / "plan.json"),
         "--authfile", str(private.auth_file()),
         "--cert-dir", str(private.cert_dir), "--source-cert-dir", str(upstream.cert_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=upstream.skopeo_env())


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_fill_keeps_digests_dedups_layers_and_skips_what_is_there(tmp_path, upstream):
    catalog = upstream.catalog
    with PrivateRegistry("127.0.0.5", 5443) as private:
        status, out, err = finish(run_fill(tmp_path, upstream, private, catalog.refs))
        assert status == 0, err
        lock = {entry["source"]: entry for entry in json.loads(out)["images"]}
        assert {ref: lock[ref]["digest"] for ref in catalog.refs} == {i.ref: i.digest for i in catalog.images}
        index = next(i for i in catalog.images if i.is_index)
        assert lock[index.ref]["platforms"] == sorted(index.platforms)
        uploads, mounts = private.blob_transfers()
        assert uploads and max(uploads.values()) == 1, "a shared blob crossed the wire twice"
        assert set(uploads) | set(mounts) >= {b.digest for i in catalog.images for b in i.blobs()}
        assert private.blob_bytes_stored() <= catalog.unique_blob_bytes() * 1.05

        before = private.log_file.read_text()
        status, again, err = finish(run_fill(tmp_path, upstream, private, catalog.refs))
        assert status == 0, err
        assert again == out, "the lock is identical when nothing changed"
        assert f"{len(catalog.refs)} of {len(catalog.refs)} images already present" in err
        new_log = private.log_file.read_text()[len(before):]
        assert "/blobs/uploads/" not in new_log, "nothing is uploaded when nothing changed"


def test_a_pinned_digest_the_source_lacks_fails_clearly(tmp_path, upstream):
    """Tag and digest: the digest wins, as with Docker; a source without it fails the fill."""
    ref = "docker.io/library/alpine:3.19@sha256:" + "0" * 64
    with PrivateRegistry("127.0.0.5", 5444) as private:
        status, _, err = finish(run_fill(tmp_path, upstream, private, [ref]))
        assert private.blob_transfers() == ({}, {})
    assert status == 1
    assert "cannot read" in err and "alpine@sha256:" + "0" * 64 in err


def test_fill_survives_a_registry_restart(tmp_path, upstream):
    """Transient failure: the private registry goes away mid-fill and comes back; retries finish it."""
    catalog = upstream.catalog
    private = PrivateRegistry("127.0.0.5", 5445)
    private.start()
    try:
        process = run_fill(tmp_path, upstream, private, catalog.refs)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not private.blob_transfers()[0]:
            time.sleep(0.05)
        assert private.blob_transfers()[0], "the fill never started uploading"
        private.stop()
        time.sleep(1.5)
        private.start()
        status, out, err = finish(process)
        assert status == 0, err
        lock = {e["source"]: e["digest"] for e in json.loads(out)["images"]}
        assert lock == {i.ref: i.digest for i in catalog.images}
    finally:
        private.close()


def test_fill_from_an_oci_layout_keeps_digests(tmp_path, upstream):
    """Images carried across the gap as an OCI layout: no source registry involved."""
    catalog = upstream.catalog
    refs = [r for r in catalog.refs if "pause" not in r] + [
        f"registry.k8s.io/pause@{catalog.image('registry.k8s.io/pause:3.9').digest}"]
    images = [fill_image(parse_image_ref(r), {}, str(catalog.layout)) for r in refs]
    (tmp_path / "plan.json").write_text(registry_fill.fill_plan("127.0.0.5:5446", images, parallel=4, retries=1))
    with PrivateRegistry("127.0.0.5", 5446) as private:
        result = subprocess.run(
            [sys.executable, "-I", str(PROGRAM), "--plan", str(tmp_path / "plan.json"),
             "--authfile", str(private.auth_file()), "--cert-dir", str(private.cert_dir)],
            capture_output=True, text=True, env=upstream.skopeo_env(), timeout=300)
        assert result.returncode == 0, result.stderr
        uploads, _ = private.blob_transfers()
    lock = {e["source"]: e["digest"] for e in json.loads(result.stdout)["images"]}
    assert lock[refs[-1]] == catalog.image("registry.k8s.io/pause:3.9").digest
    assert {s: d for s, d in lock.items() if s != refs[-1]} == {
        i.ref: i.digest for i in catalog.images if "pause" not in i.ref}
    assert max(uploads.values()) == 1


def test_an_image_missing_from_the_layout_is_named(tmp_path, upstream):
    image = fill_image(parse_image_ref("docker.io/library/absent:1"), {}, str(upstream.catalog.layout))
    (tmp_path / "plan.json").write_text(registry_fill.fill_plan("127.0.0.5:5447", [image], parallel=1, retries=0))
    with PrivateRegistry("127.0.0.5", 5447) as private:
        result = subprocess.run(
            [sys.executable, "-I", str(PROGRAM), "--plan", str(tmp_path / "plan.json"),
             "--authfile", str(private.auth_file()), "--cert-dir", str(private.cert_dir)],
            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "docker.io/library/absent:1: not in the OCI layout" in result.stderr
