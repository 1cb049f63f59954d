"""Benchmark: crossing the gap with `python -m bundle`, against named baselines, in one run.

The upstream fixture at `bench` scale (40 single-platform images sharing 16 MiB base layers plus
a multi-arch index) and the upstream package trees, revisions 0 and 1. Measured:

- size:   bundle bytes ÷ unique blob bytes, plain and split into parts, beside the naive way of
          carrying images: one `skopeo copy … docker-archive:` tarball per image;
- delta:  bytes of a revision-1 delta bundle (built against revision 0's manifest) ÷ the bytes
          that changed (new blobs by digest, the new OCI index, changed tree files: computed
          from the catalogs and the trees themselves, not from the bundle);
- verify: `bundle verify` (every size and sha256, extra files looked for) against `sha256sum`
          of the same files, plain and split;
- import: `bundle import-registry-storage --registry-binary` into an empty Docker Distribution
          (storage written while stopped; every manifest and blob checked through a read-only
          process of the same binary on a Unix socket while the registry starts; every tag
          checked through the started registry's API, TLS and auth) against `cp -a` of the same
          unique blobs. By phase: write; check, from the end of the write to the end, made of
          loopback (those checks) beside start (the start command), answer (until the registry
          answers) and API (the tags through it); other (the interpreter, reading the layout's
          manifests, the is-it-running check). The start command runs the unit's storage repair
          first, as `systemctl start` does. The same with `--link` (hard links, the storage on the
          layout's filesystem), and without `--registry-binary` (every check through the
          registry's authenticated API, after the start), as separate rows; the project's fill
          from the same layout through the API is shown for scale.
- floor:  what any import that proves every digest must at least spend, against the same `cp -a`:
          SHA-256 of every blob once (as `bundle verify` hashes: OpenSSL's code, on threads) and
          an interpreter start (`python3 -I -S -c pass`); then with the registry started once until it answers
          (the start command and first answer of the `--link` rows), the least a proof that the
          registry serves the storage costs.

Every copy and import starts after `sync`, so none is throttled behind what an earlier one wrote,
and half the available memory is written once before the rounds (`touch_memory`): on a virtual
machine, a copy whose page cache landed in memory not used since boot took up to 8× as long
(cp -a of the blobs: 0.06 s in the first round, 0.5 s in the later ones), whichever command ran.

Run: `.venv/bin/python bench/bundle.py [--rounds 3]`. Timings are medians; everything is read
from the page cache, so they compare CPU and copying, not disks.
"""

from __future__ import annotations

import argparse
import hashlib
import mmap
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bundle.manifest import Manifest, parallel_map, sha256_file  # noqa: E402
from components.images import parse_image_ref  # noqa: E402
from components.registry import fill_image  # noqa: E402
from components.render import registry as render_registry, registry_fill  # noqa: E402
from oci import fill  # noqa: E402
from sandbox.oci_images import generate  # noqa: E402
from sandbox.upstream import start_upstream  # noqa: E402
from sandbox.upstream_repos import cached_repos  # noqa: E402
from tests.harness.private_registry import PrivateRegistry  # noqa: E402

UPSTREAM_ADDRESS = "127.0.0.34"
STORAGE_ADDRESS = "127.0.0.35"
FILL_ADDRESS = "127.0.0.36"
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # what a unit's commands see


def bundle(*args: object, env: dict | None = None) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bundle", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                            env={**(env or os.environ), "PYTHONPATH": str(ROOT)}, timeout=3600)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"bundle {args[0]} failed:\n{result.stderr}")
    return elapsed, result.stdout


def timed(command: list[str], **kwargs) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=3600, **kwargs)
    return time.monotonic() - started


def directory_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def tree_state(root: Path) -> dict[str, tuple[str, int]]:
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size)
            for p in root.rglob("*") if p.is_file()}


def catalog_blobs(catalog) -> dict[str, int]:
    """Digest → size of every blob of a catalog, manifests and indexes included."""
    found = {}
    for image in catalog.images:
        found[image.digest] = image.size
        for platform in image.manifests:
            found[platform.manifest.digest] = platform.manifest.size
            for blob in (platform.config, *platform.layers):
                found[blob.digest] = blob.size
    return found


def hash_blobs(blobs: Path) -> float:
    """Seconds to SHA-256 every file below `blobs` once, as `bundle verify` hashes (threads)."""
    files = sorted(p for p in blobs.rglob("*") if p.is_file())
    started = time.monotonic()
    found = parallel_map(sha256_file, files)
    seconds = time.monotonic() - started
    assert all(f == p.name for (_, f), p in zip(found, files, strict=True)), "a blob file is not named by its digest"
    return seconds


def touch_memory(fraction: float = 0.5) -> float:
    """Write to `fraction` of the available memory once and free it: every later page-cache page
    comes from pages the guest has used before. Returns the GiB touched."""
    available = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemAvailable:"))
    size = int(available * fraction) // 2**26 * 2**26
    chunk = b"\x01" * 2**26
    with mmap.mmap(-1, size) as memory:
        for _ in range(size // 2**26):
            memory.write(chunk)
    return size / 2**30


def median(values: list[float]) -> float:
    return statistics.median(values)


def stop_pid(pidfile: Path) -> None:
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    try:
        if b"docker-registry" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.05)
            else:
                os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        pass
    pidfile.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="bench", help="upstream fixture scale (test, medium, bench)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the timed runs; medians are reported")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bundle-", dir="/var/tmp"))
    upstream = start_upstream(args.scale, address=UPSTREAM_ADDRESS, port=5000)
    try:
        return run(args, work, upstream)
    finally:
        upstream.close()
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, upstream) -> int:
    catalog0 = upstream.catalog
    env = {**os.environ, **upstream.skopeo_env()}
    mapping = [a for r in catalog0.registries for a in ("--images-from", f"{r}={upstream.mirror_prefix(r)}")]
    repos0, repos1 = cached_repos(0), cached_repos(1)
    unique = catalog0.unique_blob_bytes()

    def create(out: Path, catalog, repos, *extra) -> float:
        (work / f"{out.name}.txt").write_text("".join(f"{ref}\n" for ref in catalog.refs))
        trees = ["--apt-tree", f"upstream={repos.debian}", "--rpm-tree", f"upstream={repos.rpm}"] if repos else []
        seconds, _ = bundle("create", "--out", out, "--images-file", work / f"{out.name}.txt", *mapping,
                            "--src-cert-dir", upstream.cert_dir, "--work", work / "working-layout", *trees, *extra,
                            env=env)
        return seconds

    # -- size --------------------------------------------------------------------------------
    print(f"images: {len(catalog0.images)} ({args.scale} scale), unique blob bytes {unique / 2**20:.1f} MiB, "
          f"per image {catalog0.total_blob_bytes() / 2**20:.1f} MiB", flush=True)
    create_seconds = create(work / "images", catalog0, None)
    create(work / "images-split", catalog0, None, "--split-size", "64M")
    plain, split = directory_bytes(work / "images"), directory_bytes(work / "images-split")
    archives = work / "archives"
    archives.mkdir()
    started = time.monotonic()
    for number, ref in enumerate(catalog0.refs):
        subprocess.run(["skopeo", "copy", "--quiet", "--src-cert-dir", str(upstream.cert_dir),
                        f"docker://{upstream.served_ref(ref)}",
                        f"docker-archive:{archives / f'{number:03d}.tar'}:{ref}"],
                       check=True, env=env, timeout=600)
    archive_seconds = time.monotonic() - started
    naive = directory_bytes(archives)
    shutil.rmtree(archives)

    # -- delta -------------------------------------------------------------------------------
    create(work / "r0", catalog0, repos0)
    catalog1 = generate(work / "layout-r1", args.scale, revision=1)
    upstream.update(catalog1)
    delta_seconds = create(work / "r1-delta", catalog1, repos1, "--delta-against", work / "r0" / "MANIFEST.json")
    blobs0, blobs1 = catalog_blobs(catalog0), catalog_blobs(catalog1)
    changed_blob_bytes = sum(size for digest, size in blobs1.items() if digest not in blobs0)
    changed_tree_bytes = 0
    for old, new in ((repos0.debian, repos1.debian), (repos0.rpm, repos1.rpm)):
        before, after = tree_state(old), tree_state(new)
        changed_tree_bytes += sum(size for path, (digest, size) in after.items()
                                  if before.get(path, ("",))[0] != digest)
    index_bytes = (work / "r1-delta" / "images" / "index.json").stat().st_size  # the new index: always changed
    changed = changed_blob_bytes + changed_tree_bytes + index_bytes
    delta_bytes = directory_bytes(work / "r1-delta")
    delta_manifest = Manifest.read(work / "r1-delta" / "MANIFEST.json")

    # -- verify ------------------------------------------------------------------------------
    def files_of(directory: Path) -> list[str]:
        return sorted(str(p) for p in directory.rglob("*") if p.is_file())

    verify_plain, sum_plain, verify_split, sum_split = [], [], [], []
    for _ in range(args.rounds):
        verify_plain.append(bundle("verify", work / "images")[0])
        sum_plain.append(timed(["sha256sum", *files_of(work / "images")]))
        verify_split.append(bundle("verify", work / "images-split")[0])
        sum_split.append(timed(["sha256sum", *files_of(work / "images-split")]))

    # -- import into a registry ----------------------------------------------------------------
    inside = work / "inside"
    bundle("import", work / "images", "--into", inside)
    layout = inside / "images"
    copy_seconds, fill_seconds, tree_seconds, hash_seconds, start_seconds = [], [], [], [], []
    modes = ("copy", "link", "api")
    phases: dict[str, dict[str, list[float]]] = {mode: {} for mode in modes}
    repair = work / "repair-storage.sh"
    repair.write_text(render_registry.REPAIR_STORAGE)
    binary = shutil.which("docker-registry") or "docker-registry"

    def import_storage(round_number: int, mode: str) -> Path:
        """One import into a fresh registry (its state under `work`, so `--link` can link);
        records its phases and returns its storage, the registry stopped."""
        state = work / f"registry-{mode}-{round_number}"
        private = PrivateRegistry(STORAGE_ADDRESS, 5443 + len(modes) * round_number + modes.index(mode),
                                  state_dir=state)
        pidfile = work / "registry.pid"
        try:
            private.start()
            private.stop()
            # As the unit starts it: the storage repair (ExecStartPre, with systemd's default PATH,
            # so the host's python3), then the registry.
            start = (f"PATH={SYSTEMD_PATH} /bin/sh {shlex.quote(str(repair))} {shlex.quote(str(private.storage))} && "
                     f"{{ docker-registry serve {shlex.quote(str(private.state_dir / 'config.yml'))} "
                     f">> {shlex.quote(str(private.log_file))} 2>&1 & echo $! > {shlex.quote(str(pidfile))}; }}")
            os.sync()  # see the rounds below
            seconds, out = bundle("import-registry-storage", "--layout", layout, "--storage", private.storage,
                                  "--start-command", start, "--endpoint", private.endpoint,
                                  "--ca-file", private.cert_dir / "ca.crt", "--authfile", private.auth_file(),
                                  *(["--link"] if mode == "link" else []),
                                  *(["--registry-binary", binary] if mode != "api" else []))
            write = float(out.split("storage written in ", 1)[1].split("s", 1)[0])
            started = float(out.split("start command done ", 1)[1].split("s", 1)[0])
            answer = float(out.split(": answering ", 1)[1].split("s", 1)[0])
            api = float(out.split("verified through the API (", 1)[1].split("s)", 1)[0])
            if mode == "api":  # one after the other
                loopback, check = 0.0, started + answer + api
            else:  # the loopback checks beside the start, the answer and the tags through the API
                loopback = float(out.split(" serving the storage read-only (", 1)[1].split("s)", 1)[0])
                check = float(out.split("checked ", 1)[1].split("s", 1)[0])
            for phase, value in (("total", seconds), ("write", write), ("check", check), ("loopback", loopback),
                                 ("start", started), ("answer", answer), ("API", api),
                                 ("other", seconds - write - check)):
                phases[mode].setdefault(phase, []).append(value)
        finally:
            stop_pid(pidfile)
            private.close()
        return private.storage

    # Nothing written here is deleted before the end: on ext4 without a journal, new inodes skip
    # every inode freed in the last minutes (`recently_deleted`), and creating a directory after
    # a tree of them was removed costs several times as much, whoever creates it.
    print(f"touched {touch_memory():.1f} GiB of memory once")
    for round_number in range(args.rounds):
        target = work / f"cp-{round_number}"
        target.mkdir()
        # Each copy and import starts with nothing left to write back: otherwise the kernel throttles
        # whichever comes next behind what the last one wrote (cp -a of the blobs took 0.06 s or
        # 0.5 s by its place in the run, and the ratios swung from 1.2 to 9).
        os.sync()
        copy_seconds.append(timed(["cp", "-a", str(layout / "blobs" / "sha256"), str(target)]))
        hash_seconds.append(hash_blobs(layout / "blobs" / "sha256"))
        start_seconds.append(timed([sys.executable, "-I", "-S", "-c", "pass"]))

        storage = import_storage(round_number, "copy")
        # The same files and directories the import wrote, copied: Distribution's layout has a
        # directory per blob and per link, and creating them is a cost of the layout itself.
        os.sync()
        tree_seconds.append(timed(["cp", "-a", str(storage), str(work / f"storage-copy-{round_number}")]))
        import_storage(round_number, "link")
        import_storage(round_number, "api")

    # For scale, once: the same images through the API, as the fill pushes them.
    with PrivateRegistry(FILL_ADDRESS, 5443, state_dir=work / "registry-fill") as private:
        images = [fill_image(parse_image_ref(ref), {}, str(layout)) for ref in catalog0.refs]
        (work / "plan.json").write_text(registry_fill.fill_plan(private.endpoint, images, parallel=4, retries=1))
        fill_seconds.append(timed([sys.executable, "-I", fill.__file__, "--plan", str(work / "plan.json"),
                                   "--authfile", str(private.auth_file()), "--cert-dir", str(private.cert_dir)],
                                  env=upstream.skopeo_env(), stderr=subprocess.DEVNULL))

    # -- report --------------------------------------------------------------------------------
    print(f"\nmedians of {args.rounds} rounds; created the image bundle in {create_seconds:.1f}s "
          f"(docker-archive tarballs: {archive_seconds:.1f}s)\n")
    print(f"{'size':38} {'MiB':>9} {'÷ unique blob bytes':>20}")
    for name, size in (("bundle (one OCI layout)", plain), ("bundle split into 64 MiB parts", split),
                       ("per-image docker-archive tarballs", naive)):
        print(f"{name:38} {size / 2**20:9.1f} {size / unique:20.3f}")
    print(f"bundle bytes / unique blob bytes: {plain / unique:.3f} (target <= 1.01); "
          f"docker-archive tarballs: {naive / unique:.3f}\n")
    print(f"delta: {delta_bytes / 2**20:.2f} MiB for {changed / 2**20:.2f} MiB changed "
          f"({len(delta_manifest.files)} files, {len(delta_manifest.carried)} carried; "
          f"created in {delta_seconds:.1f}s)")
    print(f"delta bytes / changed bytes: {delta_bytes / changed:.3f} (target <= 1.05)\n")
    rows = (("bundle verify, plain", verify_plain, sum_plain), ("bundle verify, split", verify_split, sum_split))
    for name, ours, baseline in rows:
        print(f"{name:24} {median(ours):6.2f}s   sha256sum of the same files {median(baseline):6.2f}s   "
              f"ratio {median(ours) / median(baseline):.2f} (target <= 1.2)")
    storage_seconds, write_seconds = phases["copy"]["total"], phases["copy"]["write"]
    print(f"\nimport-registry-storage {median(storage_seconds):6.2f}s (storage written in "
          f"{median(write_seconds):.2f}s, manifests and blobs checked on a loopback listener, the tags "
          f"through the started registry's API)")
    print(f"cp -a of the unique blobs {median(copy_seconds):6.2f}s")
    print(f"cp -a of the storage tree the import wrote (same files and directories) {median(tree_seconds):6.2f}s")
    ratios = [total / copied for total, copied in zip(storage_seconds, copy_seconds, strict=True)]
    print(f"import / cp -a of the blobs: {median(storage_seconds) / median(copy_seconds):.2f} (target <= 1.5; "
          f"by round {', '.join(f'{ratio:.2f}' for ratio in ratios)}); "
          f"writing alone: {median(write_seconds) / median(copy_seconds):.2f}; "
          f"import / cp -a of the same tree: {median(storage_seconds) / median(tree_seconds):.2f}; "
          f"writing / cp -a of the same tree: {median(write_seconds) / median(tree_seconds):.2f}")
    floor = median(hash_seconds) + median(start_seconds)
    serving = median(phases["link"]["start"]) + median(phases["link"]["answer"])
    print(f"floor of a verified import: SHA-256 of the blobs {median(hash_seconds):.3f}s + an interpreter "
          f"{median(start_seconds):.3f}s = {floor:.3f}s, {floor / median(copy_seconds):.2f} × cp -a of the blobs; "
          f"with the registry started once to answer ({serving:.3f}s), "
          f"{(floor + serving) / median(copy_seconds):.2f} × cp -a")
    names = ("total", "write", "check", "loopback", "start", "answer", "API", "other")
    print(f"\n{'import-registry-storage, by phase':40}" + "".join(f"{name:>9}" for name in names)
          + f"{'total ÷ cp -a':>15}")
    for mode, label in (("copy", "blobs copied"), ("link", "--link (hard links, same filesystem)"),
                        ("api", "without --registry-binary (all via API)")):
        print(f"{label:40}" + "".join(f"{median(phases[mode][name]):8.2f}s" for name in names)
              + f"{median(phases[mode]['total']) / median(copy_seconds):15.2f}")
    print(f"for scale, the fill from the same layout through the API: {fill_seconds[0]:.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
