"""Benchmark: filling a private registry, against named baselines, in one run.

40 single-platform images sharing base layers plus a multi-arch index (the upstream fixture at
`bench` scale: 16 MiB base layers, 2 MiB own layers; real base images are larger still) are
copied from an upstream registry into fresh private registries configured as the `Registry`
component renders them (TLS, htpasswd). Measured:

- serial:   one `skopeo copy --all --preserve-digests` per image, one after another (baseline);
- naive:    the same copies, 4 at a time, images listed family by family (what a plain parallel
            loop over such a list does; copies racing on the same blob can fail, and are counted);
- fill:     the project's fill program (4 at a time, shared layers never uploaded twice at once);
- refill:   the fill again with nothing changed.

Blob bytes received are read from each registry's access log (every completed blob upload) and
set against the unique blob bytes of the images. Run: `.venv/bin/python bench/registry_fill.py`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.images import parse_image_ref
from components.registry import fill_image
from components.render import registry_fill
from oci import fill
from sandbox.upstream import start_upstream
from tests.harness.private_registry import PrivateRegistry

# The fill runs with the host's system python3 (Debian's), as the rendered step does.
HOST_PYTHON = "/usr/bin/python3"


def skopeo_copy(upstream, private, ref: str, *, check: bool = True) -> bool:
    upstreams = {r: upstream.mirror_prefix(r) for r in upstream.catalog.registries}
    location = fill_image(parse_image_ref(ref), upstreams, None)
    result = subprocess.run(
        ["skopeo", "copy", "--quiet", "--all", "--preserve-digests", "--authfile", str(private.auth_file()),
         "--dest-cert-dir", str(private.cert_dir), "--src-cert-dir", str(upstream.cert_dir),
         location.location, f"docker://{private.endpoint}/{location.repository}:{location.tag}"],
        check=False, capture_output=True, env=upstream.skopeo_env(), timeout=600)
    if check and result.returncode != 0:
        raise SystemExit(f"skopeo copy of {ref} failed: {result.stderr.decode()}")
    return result.returncode == 0


def family_order(catalog) -> list[str]:
    """Images listed family by family (same base layers together), as stacks often list them."""
    def base(image):
        return min(m.layers[0].digest for m in image.manifests) if image.manifests else ""
    return [image.ref for image in sorted(catalog.images, key=lambda image: (base(image), image.ref))]


def run_fill(upstream, private, work: Path) -> tuple[float, str]:
    upstreams = {r: upstream.mirror_prefix(r) for r in upstream.catalog.registries}
    images = [fill_image(parse_image_ref(r), upstreams, None) for r in upstream.catalog.refs]
    (work / "plan.json").write_text(registry_fill.fill_plan(private.endpoint, images, parallel=4, retries=2))
    started = time.monotonic()
    result = subprocess.run(
        [HOST_PYTHON, "-I", fill.__file__, "--plan", str(work / "plan.json"), "--authfile", str(private.auth_file()),
         "--cert-dir", str(private.cert_dir), "--source-cert-dir", str(upstream.cert_dir),
         "--cache", str(work / "metadata-cache.json")],
        capture_output=True, text=True, env=upstream.skopeo_env(), timeout=1800)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"fill failed: {result.stderr}")
    return elapsed, result.stdout


def received_bytes(private, sizes: dict[str, int]) -> int:
    uploads, _ = private.blob_transfers()
    return sum(count * sizes.get(digest, 0) for digest, count in uploads.items())


def measure_round(upstream, sizes: dict[str, int], round_number: int) -> dict[str, dict]:
    """One round of every run, each into a fresh registry (new ports: no stale blob locations)."""
    catalog = upstream.catalog
    port = 5443 + round_number
    results: dict[str, dict] = {}
    with PrivateRegistry("127.0.0.7", port) as private:
        started = time.monotonic()
        for ref in catalog.refs:
            skopeo_copy(upstream, private, ref)
        results["serial"] = {"seconds": time.monotonic() - started, "bytes": received_bytes(private, sizes)}
    with PrivateRegistry("127.0.0.8", port) as private:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            failures = sum(not ok for ok in pool.map(lambda ref: skopeo_copy(upstream, private, ref, check=False),
                                                    family_order(catalog)))
        results["naive"] = {"seconds": time.monotonic() - started, "bytes": received_bytes(private, sizes),
                            "failures": failures}
    with PrivateRegistry("127.0.0.9", port) as private:
        seconds, lock = run_fill(upstream, private, private.state_dir)
        results["fill"] = {"seconds": seconds, "bytes": received_bytes(private, sizes)}
        digests = {e["source"]: e["digest"] for e in json.loads(lock)["images"]}
        assert digests == {i.ref: i.digest for i in catalog.images}, "a digest changed"
        before = received_bytes(private, sizes)
        seconds, again = run_fill(upstream, private, private.state_dir)
        results["refill"] = {"seconds": seconds, "bytes": received_bytes(private, sizes) - before}
        assert again == lock
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="bench", help="upstream fixture scale (test, medium, bench)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    args = parser.parse_args()

    upstream = start_upstream(args.scale, address="127.0.0.6", port=5000)
    catalog = upstream.catalog
    sizes = {blob.digest: blob.size for image in catalog.images for blob in image.blobs()}
    unique = catalog.unique_blob_bytes()
    try:
        rounds = [measure_round(upstream, sizes, n) for n in range(args.rounds)]
    finally:
        upstream.close()
    results = {name: {key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]}
               for name in rounds[0]}

    single = sum(not i.is_index for i in catalog.images)
    print(f"images: {single} single-platform + {len(catalog.images) - single} multi-arch index; "
          f"unique blob bytes {unique / 2**20:.1f} MiB (per-image total {catalog.total_blob_bytes() / 2**20:.1f} MiB); "
          f"medians of {args.rounds} rounds")
    print(f"{'run':8} {'seconds':>8} {'blob MiB received':>18} {'÷ unique':>9}")
    for name, figures in results.items():
        extra = f"  ({figures['failures']:.0f} copies failed)" if figures.get("failures") else ""
        print(f"{name:8} {figures['seconds']:8.2f} {figures['bytes'] / 2**20:18.1f} "
              f"{figures['bytes'] / unique:9.3f}{extra}")
    speedup = results["serial"]["seconds"] / results["fill"]["seconds"]
    print(f"fill vs serial skopeo copy: {speedup:.2f}x faster (target >= 1.2)")
    print(f"fill blob bytes / unique blob bytes: {results['fill']['bytes'] / unique:.3f} (target <= 1.05); "
          f"naive parallel: {results['naive']['bytes'] / unique:.3f}")
    print(f"refill with nothing changed: {results['refill']['bytes']:.0f} blob bytes moved, "
          f"{100 * results['refill']['seconds'] / results['fill']['seconds']:.1f}% of the full fill's time "
          "(target < 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
