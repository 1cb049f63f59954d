"""The quick start: apply the `sandbox` stack to sandbox hosts on this machine, and take it down.

    python -m offline.quickstart up     # (what `make sandbox` runs)
    python -m offline.quickstart down   # (`make sandbox-down`)

`up` starts the upstream fixtures on 127.0.0.2 (public registries on :5000, a signed Debian
archive and RPM repository on :8080), a bastion (127.0.0.10), a registry host (.11), a mirror
host (.12) and a client (.13), then applies the stack: with `pulumi up` when
the Pulumi CLI is installed (a local file backend under the cache), otherwise through the mock
runtime, whose executor runs every step for real over SSH. Everything keeps running until
`down`, so the registry can be tried by hand; the endpoints and a ready skopeo command are printed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from offline.executor import Executor
from offline.program import run_program
from offline.stackfile import EXAMPLE_PASSPHRASE, PROJECT_DIR, load_stack
from sandbox.hosts import CACHE, Sandbox
from sandbox.oci_images import generate
from sandbox.upstream import UpstreamRegistry
from sandbox.upstream_repos import UpstreamRepos

STATE = CACHE / "quickstart"
RUN_DIR = STATE / "hosts"
HOSTS = (("bastion", "127.0.0.10"), ("registry", "127.0.0.11"), ("mirror", "127.0.0.12"), ("client", "127.0.0.13"))
OUT = PROJECT_DIR / "out" / "sandbox"


def up() -> int:
    if (STATE / "upstream.json").exists():
        print("quickstart: already up; run `make sandbox-down` first", file=sys.stderr)
        return 1
    STATE.mkdir(parents=True, exist_ok=True)
    print("quickstart: starting the upstream fixture on 127.0.0.2:5000 (it plays the public registries)")
    catalog = generate(STATE / "upstream" / "layout", "test")
    upstream = UpstreamRegistry(catalog, state_dir=STATE / "upstream", remove_state_on_close=False).start()
    print("quickstart: starting the package fixture on 127.0.0.2:8080 (a signed Debian archive and RPM repository)")
    repos = UpstreamRepos(revision=0, state_dir=STATE / "repos", remove_state_on_close=False).start()
    (STATE / "upstream.json").write_text(json.dumps({"pids": [upstream.pid, repos.pid]}))

    sandbox = Sandbox(RUN_DIR)
    for name, address in HOSTS:
        print(f"quickstart: starting sandbox host {name} on {address}")
        trust = {upstream.endpoint: upstream.ca_pem} if name == "registry" else None
        sandbox.up(name, address, trust=trust)

    config = load_stack("sandbox", passphrase=EXAMPLE_PASSPHRASE)
    if shutil.which("pulumi"):
        exports = apply_with_pulumi()
    else:
        print("quickstart: the Pulumi CLI is not installed: applying the sandbox stack through the mock "
              "runtime (offline/), which runs every step for real over SSH")
        started = time.monotonic()
        executor = Executor(local_dir=PROJECT_DIR)
        try:
            run = run_program(config, executor=executor)
        finally:
            executor.close()
        if run.error is not None:
            print(f"quickstart: the apply failed:\n{run.error}", file=sys.stderr)
            return 1
        for step in executor.log:
            print(f"  {step.name:<22} {step.kind:<14} {step.seconds:6.1f}s")
        print(f"quickstart: applied in {time.monotonic() - started:.0f}s")
        exports = run.exports
    print_endpoints(exports, config)
    return 0


def apply_with_pulumi() -> dict:
    """`pulumi up` against a file backend in the cache; returns the stack outputs."""
    backend = STATE / "pulumi-state"
    backend.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": EXAMPLE_PASSPHRASE,
           "PULUMI_SKIP_UPDATE_CHECK": "true"}
    subprocess.run(["pulumi", "stack", "select", "--create", "sandbox"], cwd=PROJECT_DIR, env=env, check=True)
    subprocess.run(["pulumi", "up", "--yes", "--stack", "sandbox"], cwd=PROJECT_DIR, env=env, check=True)
    result = subprocess.run(["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", "sandbox"],
                            cwd=PROJECT_DIR, env=env, check=True, capture_output=True, text=True)
    return json.loads(result.stdout)


def print_endpoints(exports: dict, config) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ca.crt").write_text(exports["registryCaBundle"])
    (OUT / "certs.d").mkdir(exist_ok=True)
    shutil.copy(OUT / "ca.crt", OUT / "certs.d" / "ca.crt")
    password = config.values["airgap-infra:secrets"]["registryPassword"]
    auth = OUT / "auth.json"
    auth.write_text(json.dumps({"auths": {exports["registryEndpoint"]: {
        "auth": base64.b64encode(f"airgap:{password}".encode()).decode()}}}))
    auth.chmod(0o600)
    lock = exports.get("imageLock") or []
    print(f"\nregistry:   https://{exports['registryEndpoint']}  (user airgap; CA in {OUT / 'ca.crt'})")
    print(f"images:     {len(lock)} copied with their source digests; lock in {OUT / 'image-lock.json'}")
    if lock:
        print(f"try:        skopeo inspect --cert-dir {OUT / 'certs.d'} --authfile {auth} docker://{lock[0]['private']}")
    apt, rpm = exports.get("aptMirror") or {}, exports.get("rpmMirror") or {}
    if apt:
        print(f"apt mirror: {apt['baseUrl']}  (repos: {', '.join(apt['sources'])}; signed, key in the stack output)")
    if rpm:
        print(f"rpm mirror: {rpm['baseUrl']}  (repos: {', '.join(rpm['repoFiles'])})")
    if apt or rpm:
        print("client:     127.0.0.13 installs through both; try `apt-get install airgap-hello` there")
    print("stop:       make sandbox-down")


def down() -> int:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    Sandbox(RUN_DIR).close()
    record = STATE / "upstream.json"
    if record.exists():
        for pid in json.loads(record.read_text())["pids"]:
            cmdline = Path(f"/proc/{pid}/cmdline")
            # only what this quick start started: its command line names the quick start's state
            if cmdline.exists() and str(STATE) in cmdline.read_bytes().decode(errors="replace"):
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not cmdline.exists():
                        break
                    time.sleep(0.05)
        record.unlink()
    shutil.rmtree(STATE, ignore_errors=True)
    print("quickstart: sandbox hosts and upstream fixture stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.quickstart", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    return up() if args.command == "up" else down()


if __name__ == "__main__":
    sys.exit(main())
