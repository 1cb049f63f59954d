"""Benchmark: `bundle discover` over 5,000 manifest documents against only parsing them.

The documents are the real rendered manifests kept in tests/data/discover/manifests (kube-prometheus,
ingress-nginx, the Mattermost operator's install with its CRDs), repeated across files of 50
documents each until there are 5,000. Measured, as medians of several rounds from the page cache:

- baseline: reading every file and `yaml.load_all` with PyYAML's C loader (CSafeLoader), nothing else;
- discover: `bundle.discover.discover()` over the same folder (read, parse, find, normalise, sort).

The ratio discover ÷ baseline is the cost of discovery beyond the parse; the target is ≤ 1.3.

Run: `.venv/bin/python bench/discover.py [--rounds 5] [--documents 5000]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bundle import discover  # noqa: E402 (after the path is set, as the other benchmarks do)

SOURCES = ROOT / "tests" / "data" / "discover" / "manifests"
PER_FILE = 50


def corpus(folder: Path, count: int) -> int:
    """Files of PER_FILE documents drawn round-robin from the real manifests; returns the count."""
    documents = []
    for path in sorted(SOURCES.rglob("*.yaml")):
        documents += [text for text in path.read_text().split("\n---") if text.strip()]
    written = 0
    number = 0
    while written < count:
        chunk = [documents[(written + i) % len(documents)] for i in range(min(PER_FILE, count - written))]
        (folder / f"part-{number:04d}.yaml").write_text("\n---\n".join(chunk) + "\n")
        written += len(chunk)
        number += 1
    return written


def parse_only(folder: Path) -> int:
    parsed = 0
    for path in sorted(folder.iterdir()):
        parsed += len(list(yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader)))
    return parsed


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--rounds", type=int, default=5)
    options.add_argument("--documents", type=int, default=5000)
    args = options.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-discover-") as scratch:
        folder = Path(scratch)
        count = corpus(folder, args.documents)
        size = sum(path.stat().st_size for path in folder.iterdir())
        baseline, found = [], []
        parsed, images = 0, 0
        for _ in range(args.rounds):
            seconds, parsed = timed(parse_only, folder)  # type: ignore[assignment]
            baseline.append(seconds)
            seconds, result = timed(lambda: discover.discover(discover.Sources(paths=[str(folder)])))
            found.append(seconds)
            images = len(result.images)  # type: ignore[attr-defined]
        base, mine = statistics.median(baseline), statistics.median(found)
        print(f"{count} documents in {len(list(folder.iterdir()))} files, {size / 1e6:.1f} MB; "
              f"{parsed} parsed, {images} distinct images found; medians of {args.rounds} rounds")
        print(f"  baseline  parse only (CSafeLoader)  {base:7.3f} s")
        print(f"  discover  bundle.discover           {mine:7.3f} s")
        print(f"  ratio     discover / baseline       {mine / base:7.3f}  (target <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
