"""The quick start: the `sandbox` stack on sandbox hosts on this machine, the loop a user lives in.

    python -m offline.quickstart up        # (make sandbox) start what is not running, preview, apply
    python -m offline.quickstart preview   # (make sandbox-preview) what `up` would change
    python -m offline.quickstart ssh HOST  # (make sandbox-ssh HOST=client) a root shell on a host
    python -m offline.quickstart down      # (make sandbox-down) stop everything, forget the state

`up` starts, when they are not running yet, the upstream fixtures on 127.0.0.2 (public registries
on :5000, a signed Debian archive and RPM repository on :8080), a bastion (127.0.0.10), a registry
host (.11), a mirror host (.12) and a client (.13). Then it applies the stack: with `pulumi up`
when the Pulumi CLI is installed (a local file backend under the cache), otherwise through the
offline engine (`python -m offline`), which previews, then runs every step that changed for real
over SSH and keeps its state under the cache. Run again after editing `Pulumi.sandbox.yaml`, it
applies only what changed; run twice, the second run changes nothing. Everything keeps running
until `down`; the endpoints and a ready skopeo command are printed.
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

from offline import cli
from offline.stackfile import EXAMPLE_PASSPHRASE, PROJECT_DIR, StackConfig, load_stack
from sandbox.hosts import CACHE, Sandbox, sshd_answers
from sandbox.oci_images import generate
from sandbox.upstream import UpstreamRegistry
from sandbox.upstream_repos import UpstreamRepos

STATE = CACHE / "quickstart"
RUN_DIR = STATE / "hosts"
ENGINE_STATE = STATE / "state.json"
HOSTS = (("bastion", "127.0.0.10"), ("registry", "127.0.0.11"), ("mirror", "127.0.0.12"), ("client", "127.0.0.13"))
OUT = PROJECT_DIR / "out" / "sandbox"


def _fixture_pids() -> list[int]:
    record = STATE / "upstream.json"
    return json.loads(record.read_text())["pids"] if record.exists() else []


def _ours(pid: int) -> bool:
    """A fixture this quick start started: alive, and its command line names the quick start's state."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return str(STATE) in cmdline.read_bytes().decode(errors="replace")
    except OSError:
        return False


def running() -> bool:
    """Whether the fixtures and every host of an earlier `up` are still there."""
    pids = _fixture_pids()
    return bool(pids) and all(_ours(pid) for pid in pids) and all(sshd_answers(a) for _, a in HOSTS)


def start() -> None:
    """Start the fixtures and the hosts (after clearing what is left of an earlier run)."""
    if (STATE / "upstream.json").exists() or RUN_DIR.exists():
        print("quickstart: the sandbox is partly down; starting it afresh")
        down()
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


def sandbox_stack() -> StackConfig:
    return load_stack("sandbox", passphrase=EXAMPLE_PASSPHRASE)


def up(config: StackConfig | None = None) -> int:
    """Start what is not running, then apply `config` (the sandbox stack as the file says)."""
    if not running():
        start()
    config = config or sandbox_stack()
    if shutil.which("pulumi"):
        exports = apply_with_pulumi()
    else:
        print("quickstart: the Pulumi CLI is not installed: the offline engine (python -m offline) previews the "
              "sandbox stack, then applies what changed, running every step for real over SSH")
        preview = cli.shown_run("preview", config, ENGINE_STATE)
        if not preview.ok:
            print(f"quickstart: the preview failed:\n{preview.error}", file=sys.stderr)
            return 1
        if preview.changes() == 0:
            print("quickstart: nothing to change")
        outcome = cli.shown_run("up", config, ENGINE_STATE) if preview.changes() else preview
        if not outcome.ok or outcome.run is None:
            print(f"quickstart: the apply failed:\n{outcome.error}", file=sys.stderr)
            return 1
        exports = outcome.run.exports
    print_endpoints(exports, config)
    return 0


def preview() -> int:
    if not running():
        print("quickstart: the sandbox is not running; `make sandbox` starts it", file=sys.stderr)
        return 1
    return cli.command("preview", sandbox_stack(), ENGINE_STATE)


def ssh(name: str) -> int:
    """Replace this process with an interactive root shell on sandbox host `name`."""
    sandbox = Sandbox(RUN_DIR) if RUN_DIR.exists() else None
    hosts = {host.name: host for host in sandbox.hosts()} if sandbox else {}
    if sandbox is None or name not in hosts:
        known = ", ".join(sorted(hosts)) or "none is running; `make sandbox` starts them"
        print(f"quickstart: no sandbox host {name!r}; hosts: {known}", file=sys.stderr)
        return 1
    # The run's own client key and known_hosts: the host key is pinned, nothing else is trusted.
    os.execvp("ssh", ["ssh", "-t", "-F", "none", "-i", str(RUN_DIR / "client_key"), "-o", "IdentitiesOnly=yes",
                      "-o", "IdentityAgent=none", "-o", "StrictHostKeyChecking=yes",
                      "-o", f"UserKnownHostsFile={sandbox.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                      "-o", "LogLevel=ERROR", f"root@{hosts[name].address}"])


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


def print_endpoints(exports: dict, config: StackConfig) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    ca = exports.get("caCertificate") or exports.get("registryCaBundle")
    if ca:  # the stack's CA: every service the sandbox stack runs has a certificate from it
        (OUT / "ca.crt").write_text(ca)
        (OUT / "certs.d").mkdir(exist_ok=True)
        shutil.copy(OUT / "ca.crt", OUT / "certs.d" / "ca.crt")
    if exports.get("registryEndpoint"):
        password = config.values["airgap-infra:secrets"]["registryPassword"]
        auth = OUT / "auth.json"
        auth.write_text(json.dumps({"auths": {exports["registryEndpoint"]: {
            "auth": base64.b64encode(f"airgap:{password}".encode()).decode()}}}))
        auth.chmod(0o600)
        lock = exports.get("imageLock") or []
        print(f"\nregistry:   https://{exports['registryEndpoint']}  (user airgap; CA in {OUT / 'ca.crt'})")
        print(f"images:     {len(lock)} copied with their source digests; lock in {OUT / 'image-lock.json'}")
        if lock:
            print(f"try:        skopeo inspect --cert-dir {OUT / 'certs.d'} --authfile {auth} "
                  f"docker://{lock[0]['private']}")
    apt, rpm = exports.get("aptMirror") or {}, exports.get("rpmMirror") or {}
    if apt:
        print(f"apt mirror: {apt['baseUrl']}  (repos: {', '.join(apt['sources'])}; signed, key in the stack output)")
    if rpm:
        print(f"rpm mirror: {rpm['baseUrl']}  (repos: {', '.join(rpm['repoFiles'])})")
    if apt or rpm:
        print("client:     127.0.0.13 installs through the mirrors: `make sandbox-ssh`, then "
              "`apt-get install airgap-hello`")
    print("change:     edit Pulumi.sandbox.yaml, then `make sandbox-preview` and `make sandbox`")
    print("stop:       make sandbox-down")


def down() -> int:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    Sandbox(RUN_DIR).close()
    record = STATE / "upstream.json"
    if record.exists():
        for pid in _fixture_pids():
            if _ours(pid):  # only what this quick start started
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    if not _ours(pid):
                        break
                    time.sleep(0.05)
        record.unlink()
    shutil.rmtree(STATE, ignore_errors=True)
    print("quickstart: sandbox hosts and upstream fixture stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.quickstart", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "preview", "ssh", "down"])
    parser.add_argument("host", nargs="?", help="ssh: the host to enter (bastion, registry, mirror, client)")
    args = parser.parse_args(argv)
    if args.command == "ssh":
        return ssh(args.host or "client")
    return {"up": up, "preview": preview, "down": down}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
