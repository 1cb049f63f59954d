"""Benchmark: updating the Debian mirror with nothing new upstream, against its first mirror.

A sandbox mirror host gets a stack with only `aptMirror` (one repository: the upstream fixture's
signed Debian archive, its four small packages plus `--bulk` filler packages of 256 KiB each),
applied through the mock runtime with the executor that runs every step over SSH. Measured:

- initial: the `apt-mirror-update` step of that apply (the first mirror: every package
           downloaded, snapshotted and published signed), and the whole apply around it;
- update:  the update program run again on the host with nothing new upstream, `--rounds` times
           (medians reported), timed on the host around the program so SSH set-up is left out;
- trace:   one more such update under `bash -x` with timestamps: its slowest lines.

Bytes come from the upstream's access log, package files (`.deb`) apart from indexes (InRelease,
Packages…). Target: an update with nothing new takes < 5 % of the initial
mirror's time and downloads 0 package bytes. Run: `.venv/bin/python bench/mirror_update.py`.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.render.apt_mirror import UPDATE_PROGRAM
from offline.executor import Executor
from offline.program import run_program
from offline.stackfile import StackConfig, load_stack, project_defaults
from sandbox.hosts import Sandbox, SandboxHost, sshd_answers
from sandbox.upstream import port_is_free
from sandbox.upstream_repos import LoggedRequest, UpstreamRepos

# Where the upstream may listen, the first free pair winning: away from the tests' fixtures
# (127.0.0.2:8080, and 127.0.0.3 for their second instance), since a test started while this
# runs would find its address taken, or worse, this fixture's readiness probe answered by the
# test's nginx.
UPSTREAM_CANDIDATES = (("127.0.0.15", 8080), ("127.0.0.16", 8080), ("127.0.0.17", 8080))
MIRROR_ADDRESS = "127.0.0.14"
UPDATE_STEP = "apt-mirror-update"
TARGET_RATIO = 0.05
STEP_TIMEOUT_S = 900.0
LOG_SETTLE_TIMEOUT_S = 5.0
# In front of each traced line: when it started.
TRACE_PS4 = "+ ${EPOCHREALTIME} "


@dataclass(frozen=True)
class Traffic:
    """What the upstream served between two marks in its access log."""

    requests: int
    package_bytes: int
    index_bytes: int

    @classmethod
    def of(cls, requests: list[LoggedRequest]) -> Traffic:
        package_bytes = index_bytes = 0
        for request in requests:
            if request.path.endswith(".deb"):
                package_bytes += request.bytes_sent
            else:
                index_bytes += request.bytes_sent
        return cls(len(requests), package_bytes, index_bytes)


def pick_upstream(requested: str | None) -> tuple[str, int]:
    if requested:
        address, _, port_text = requested.rpartition(":")
        if not port_is_free(address, int(port_text)):
            raise SystemExit(f"--upstream {requested}: already in use; give a free address:port")
        return address, int(port_text)
    for candidate, port in UPSTREAM_CANDIDATES:
        if port_is_free(candidate, port):
            return candidate, port
    raise SystemExit("no free address for the upstream fixture among "
                     f"{', '.join(f'{a}:{p}' for a, p in UPSTREAM_CANDIDATES)}; give --upstream")


def mirror_only(config: StackConfig, host: SandboxHost, debian_url: str) -> StackConfig:
    """The sandbox stack reduced to its apt mirror, on `host`, mirroring `debian_url`; every other
    key is back at the project's default, which leaves its component out."""
    project = config.project
    _, values = project_defaults()
    for key in ("hosts", "secrets", "aptMirror"):
        values[f"{project}:{key}"] = copy.deepcopy(config.values[f"{project}:{key}"])
    mirror = values[f"{project}:hosts"]["mirror"]
    values[f"{project}:hosts"] = {"mirror": {**mirror, "address": host.address, "hostKey": host.host_key}}
    apt_mirror = values[f"{project}:aptMirror"]
    apt_mirror["repos"] = [{**apt_mirror["repos"][0], "url": debian_url}]
    return StackConfig(project, config.stack, values, set(config.secret_keys), config.secrets_key)


def settled_requests(upstream: UpstreamRepos) -> list[LoggedRequest]:
    """The access log once nginx has logged every response it was writing (it logs at the end)."""
    deadline = time.monotonic() + LOG_SETTLE_TIMEOUT_S
    while upstream.responses_in_flight() > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return upstream.requests()


def initial_mirror(config: StackConfig, upstream: UpstreamRepos, work: Path) -> dict:
    mark = len(settled_requests(upstream))
    executor = Executor(local_dir=work, timeout=STEP_TIMEOUT_S)
    started = time.monotonic()
    try:
        run = run_program(config, executor=executor)
    finally:
        executor.close()
    apply_seconds = time.monotonic() - started
    run.raise_error()
    step = next(entry for entry in executor.log if entry.name == UPDATE_STEP)
    report = run.exports["aptMirror"]["reports"][0]
    expected = sum(map(len, upstream.packages.values()))
    if report["status"] != "updated" or len(report["added"]) != expected:
        raise SystemExit(f"the first mirror should add all {expected} upstream packages; it reported "
                         f"{report['status']!r} with {len(report['added'])} added (another fixture on "
                         f"{upstream.base_url}?)")
    return {"seconds": step.seconds, "apply_seconds": apply_seconds,
            "traffic": Traffic.of(settled_requests(upstream)[mark:])}


def update_nothing_new(host: SandboxHost, upstream: UpstreamRepos) -> dict:
    """Run the update program once, timed on the host and, around SSH, here."""
    mark = len(settled_requests(upstream))
    started = time.monotonic()
    result = host.ssh(f's=$EPOCHREALTIME; {UPDATE_PROGRAM}; rc=$?; echo "elapsed $s $EPOCHREALTIME" >&2; exit $rc',
                      timeout=STEP_TIMEOUT_S)
    ssh_seconds = time.monotonic() - started
    begin, end = map(float, re.findall(r"^elapsed (\S+) (\S+)$", result.stderr, re.M)[-1])
    report = json.loads(result.stdout.splitlines()[-1])
    if report["status"] != "unchanged":
        raise SystemExit(f"an update with nothing new upstream reported {report['status']!r}")
    return {"seconds": end - begin, "ssh_seconds": ssh_seconds,
            "traffic": Traffic.of(settled_requests(upstream)[mark:])}


def trace_update(host: SandboxHost, top: int) -> tuple[float, list[tuple[float, str]]]:
    """One more update under `bash -x`: its length, and the `top` lines that took longest until
    the next line at their depth or shallower started (so a `$(…)` line holds what runs inside
    it, and the last stage of a pipeline the stages it waits for)."""
    # Set inside: bash running as root ignores a PS4 from the environment.
    script = shlex.quote(f"PS4={shlex.quote(TRACE_PS4)}; set -x; . {UPDATE_PROGRAM}")
    result = host.ssh(f"bash -c {script} 2>&1 >/dev/null", timeout=STEP_TIMEOUT_S)
    # By start time: the stages of a pipeline print their lines in any order.
    traced = sorted(((len(m[1]), float(m[2]), m[3]) for m in
                     re.finditer(r"^(\++) (\d+\.\d+) (.*)$", result.stdout, re.M)), key=lambda entry: entry[1])
    end = traced[-1][1]
    spans = []
    for index, (depth, at, line) in enumerate(traced):
        if depth == 1:
            continue  # the `. program` line itself
        after = next((t for d, t, _ in traced[index + 1:] if d <= depth), end)
        spans.append((after - at, f"{'+' * depth} {line[:100]}"))
    return end - traced[0][1], sorted(spans, reverse=True)[:top]


def median_update(updates: list[dict]) -> dict:
    return {
        "seconds": statistics.median(u["seconds"] for u in updates),
        "ssh_seconds": statistics.median(u["ssh_seconds"] for u in updates),
        "traffic": Traffic(*(int(statistics.median(getattr(u["traffic"], field) for u in updates))
                             for field in ("requests", "package_bytes", "index_bytes"))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=4000,
                        help="filler packages of 256 KiB upstream (generated once, cached; 4000: ~3 min)")
    parser.add_argument("--rounds", type=int, default=3, help="updates with nothing new; medians are reported")
    parser.add_argument("--upstream", metavar="ADDRESS:PORT", help="where the upstream fixture listens "
                        f"(default: the first free of {', '.join(f'{a}:{p}' for a, p in UPSTREAM_CANDIDATES)})")
    parser.add_argument("--mirror-address", default=MIRROR_ADDRESS, help="the sandbox mirror host's address")
    parser.add_argument("--trace", type=int, default=8, metavar="N",
                        help="the N slowest lines of one more traced update (0: no trace)")
    args = parser.parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds: give 1 or more")
    if sshd_answers(args.mirror_address):
        raise SystemExit(f"{args.mirror_address}:22 is taken; give another --mirror-address")
    address, port = pick_upstream(args.upstream)

    print(f"upstream on {address}:{port} with {args.bulk} bulk packages (generated on first use) …", flush=True)
    upstream = UpstreamRepos(revision=0, address=address, port=port, bulk=args.bulk)
    sandbox = None
    try:
        upstream.start()
        sandbox = Sandbox()
        host = sandbox.up("mirror", args.mirror_address)
        config = mirror_only(load_stack("sandbox"), host, upstream.debian_url)
        with tempfile.TemporaryDirectory(prefix="airgap-bench-") as work:
            initial = initial_mirror(config, upstream, Path(work))
        updates = [update_nothing_new(host, upstream) for _ in range(args.rounds)]
        trace = trace_update(host, args.trace) if args.trace else None
    finally:
        try:
            if sandbox is not None:
                sandbox.close()
        finally:
            upstream.close()

    update = median_update(updates)
    packages = sum(map(len, upstream.packages.values()))
    print(f"upstream: {packages} packages ({args.bulk} of 256 KiB); updates: medians of {args.rounds}")
    print(f"{'run':34} {'seconds':>8} {'.deb MiB':>9} {'index KiB':>10} {'requests':>9}")
    for name, figures in (("initial mirror (update step)", initial), ("update, nothing new (on the host)", update)):
        traffic = figures["traffic"]
        print(f"{name:34} {figures['seconds']:8.2f} {traffic.package_bytes / 2**20:9.1f} "
              f"{traffic.index_bytes / 2**10:10.1f} {traffic.requests:9d}")
    print(f"{'  the whole initial apply':34} {initial['apply_seconds']:8.2f}")
    print(f"{'  the update, over SSH':34} {update['ssh_seconds']:8.2f}")
    ratio = update["seconds"] / initial["seconds"]
    package_bytes = max(u["traffic"].package_bytes for u in updates)
    print(f"update / initial: {100 * ratio:.1f} % (target < {100 * TARGET_RATIO:.0f} %: "
          f"{'met' if ratio < TARGET_RATIO else 'missed'}); package bytes the updates downloaded: "
          f"{package_bytes} (target 0: {'met' if package_bytes == 0 else 'missed'})")
    if trace:
        total, lines = trace
        print(f"slowest lines of one more update under bash -x ({total:.2f} s in all; nested lines overlap):")
        for seconds, line in lines:
            print(f"  {seconds:6.2f}  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
