"""Throwaway Debian hosts on this machine, reached over real SSH, for end-to-end tests.

A sandbox host is an overlay over the cached base chroot (`base_chroot.py`), booted in its own
PID, mount and UTS namespace with a systemctl replacement as PID 1, and running its own sshd on its
own loopback address. The program under test provisions it exactly as it would a VM: over SSH, with
unit files, `systemctl enable --now` and `apt-get`. Starting a host takes about a second, stopping
it about one more; the base is built once per recipe (1-2 minutes) and shared read-only by all.

    with Sandbox() as sandbox:
        host = sandbox.up("alpha", "127.0.0.11")
        host.ssh("systemctl is-active ssh")

A host can also live in a network namespace made for it (`netns=`, with an address there): then
its network, and its firewall, are its own rather than the machine's. SSH reaches it from another
namespace (`ssh_from=`, the one standing for the admin machine), through `ip netns exec`.

`python -m sandbox.hosts base|up NAME ADDRESS|down [--all]|status` does the same by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox import keys
from sandbox.base_chroot import (
    CACHE,
    MOUNT_KERNEL_FILESYSTEMS,
    PRIVATE_NAMESPACES,
    STANDARD_PATH,
    SandboxError,
    cache_lock,
    ensure_base,
    tail,
)
from sandbox.mounts import mount_points_under, pids_rooted_under, remove_tree
from sandbox.process import ManagedProcess, Pid, ProcessError, children, polls

RUNS = CACHE / "runs"
CLI_RUN = RUNS / "cli"
NETNS_DIR = Path("/run/netns")

# Bounds of the waits; a host usually answers within 1.5 s and stops within 1.5 s.
INIT_WAIT_SECONDS = 5.0
SSHD_WAIT_SECONDS = 20.0
STOP_GRACE_SECONDS = 10.0

# PID 1 of a host's namespace: $1 root, $2 host name, $3 the cache.
HOST_INIT = (
    "set -eu\nR=$1\n"
    # The namespace starts with a copy of the machine's mounts; without this it would keep the
    # overlays of hosts started earlier alive after the machine unmounts them.
    """awk -v r="$R" -v c="$3/" 'index($5, c) == 1 && $5 != r {print $5}' /proc/self/mountinfo \\
  | sort -r | while read -r m; do umount "$m"; done\n"""
    # Nor the machine's named network namespaces, which `ip netns delete` could then not remove.
    """awk 'index($5, "/run/netns/") == 1 {print $5}' /proc/self/mountinfo | while read -r m; do umount "$m"; done\n"""
    + MOUNT_KERNEL_FILESYSTEMS
    + """\
mkdir -p "$R/run/sshd" "$R/run/lock"
# Debian's maintainer scripts hand services to systemctl only when this directory exists.
mkdir -p "$R/run/systemd/system"
hostname "$2"
# Some tmpfiles.d entries name things a minimal host lacks; the /run/<pkg> ones are what matter.
chroot "$R" systemd-tmpfiles --create --boot >/dev/null 2>&1 || true
chroot "$R" /usr/sbin/sshd -t
exec chroot "$R" /usr/bin/systemctl --init default
"""
)



class SandboxCommandError(subprocess.CalledProcessError):
    """An SSH command on a sandbox host failed; the message carries its stderr."""

    def __init__(self, host: str, command: str, result: subprocess.CompletedProcess) -> None:
        super().__init__(result.returncode, result.args, result.stdout, result.stderr)
        self.host = host
        self.command = command

    def __str__(self) -> str:
        return f"{self.host}: `{self.command}` exited {self.returncode}\n{tail(self.stderr)}"



def leftovers() -> list[str]:
    """Mounts under CACHE and processes rooted inside it: empty once every host is down."""
    found = [f"mount {point}" for point in mount_points_under(CACHE)]
    for pid in pids_rooted_under(CACHE):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            found.append(f"pid {pid} rooted in {os.readlink(f'/proc/{pid}/root')}: {command}")
    return found



# --- hosts -----------------------------------------------------------------------------------


def loopback_address(address: str) -> str:
    try:
        parsed = ipaddress.IPv4Address(address)
    except ipaddress.AddressValueError:
        raise ValueError(f"{address!r}: a sandbox host needs an IPv4 address in 127.0.0.0/8") from None
    if not parsed.is_loopback:
        raise ValueError(f"{address}: sandbox hosts live on 127.0.0.0/8 only")
    return str(parsed)


def namespace_address(address: str) -> str:
    """The address of a host in a network namespace of its own: IPv4, not loopback (that is the machine's)."""
    try:
        parsed = ipaddress.IPv4Address(address)
    except ipaddress.AddressValueError:
        raise ValueError(f"{address!r}: a sandbox host needs an IPv4 address") from None
    if parsed.is_loopback:
        raise ValueError(f"{address}: in a network namespace of its own a host takes an address of that namespace")
    return str(parsed)


def network_namespace(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) or not (NETNS_DIR / name).exists():
        raise ValueError(f"{name!r}: no network namespace of that name (ip netns list)")
    return name


def host_name(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
        raise ValueError(f"{name!r}: a host name is one lowercase DNS label")
    return name


def sshd_config(address: str) -> str:
    return f"""\
ListenAddress {address}:22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# Apart from any authorized_keys the provisioning under test may manage for root.
AuthorizedKeysFile /etc/ssh/sandbox_authorized_keys
# The host serves as an SSH bastion in tests.
AllowTcpForwarding yes
# Independent provisioning steps connect in parallel.
MaxStartups 100
PidFile /run/sshd.pid
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
"""


def trusted_endpoint(endpoint: str) -> str:
    # It names directories inside the host (certs.d/<host:port>/ca.crt).
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?", endpoint) or ".." in endpoint:
        raise ValueError(f"trust key {endpoint!r}: expected host or host:port")
    return endpoint


def etc_hosts(name: str, address: str) -> str:
    return f"127.0.0.1\tlocalhost\n{address}\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def sshd_answers(address: str) -> bool:
    try:
        with socket.create_connection((address, 22), timeout=0.5) as conn:
            return conn.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def listening(pid: int, address: str, port: int) -> bool:
    """Whether a TCP socket listens on address:port in the network namespace of process `pid`
    (read from /proc/PID/net/tcp: no traffic, from any namespace)."""
    wanted = f"{ipaddress.IPv4Address(address).packed[::-1].hex().upper()}:{port:04X}"
    try:
        table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(f[1] == wanted and f[3] == "0A" for f in (line.split() for line in table))



class SandboxHost(ManagedProcess):
    """One running host; made by `Sandbox.up`.

    Its managed process is the namespace: our `unshare`, whose child is the namespace's PID 1
    (the systemctl replacement, which starts sshd and whatever the provisioning enables).
    """

    stop_grace = STOP_GRACE_SECONDS

    def __init__(self, name: str, address: str, directory: Path, client_key: Path,
                 known_hosts: Path, netns: str | None = None, ssh_from: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.address = address
        self.netns = netns
        """The network namespace the host lives in; None: the machine's."""
        self.ssh_from = ssh_from
        """The network namespace SSH to it starts from; None: the machine's."""
        self.directory = directory
        self.root = directory / "root"
        self.host_key = keys.openssh_public(keys.host_key(address))
        self._client_key = client_key
        self._known_hosts = known_hosts
        self._init: Pid | None = None  # PID 1 of the host's namespace, as the machine sees it
        self.running = False  # its overlay is mounted

    def __repr__(self) -> str:
        return f"SandboxHost({self.name!r}, {self.address!r})"

    def __str__(self) -> str:
        return f"sandbox host {self.name} (sshd on {self.address}:22)"

    # -- SSH ----------------------------------------------------------------------------------

    def ssh_argv(self, command: str, *, known_hosts: Path | None = None) -> list[str]:
        """The `ssh` command line that runs `command` as root, pinned to this host's key."""
        via = ["ip", "netns", "exec", self.ssh_from] if self.ssh_from else []
        return [
            *via,
            "ssh", "-F", "none",
            "-i", str(self._client_key),
            "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts or self._known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "ConnectTimeout=5",
            # The post-quantum default key exchange costs ~0.15 s of CPU per connection here, half
            # of each command's time; this traffic never leaves loopback.
            "-o", "KexAlgorithms=curve25519-sha256",
            "-o", "LogLevel=ERROR",
            f"root@{self.address}",
            command,
        ]

    def ssh(self, command: str, *, input: str | bytes | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        data = input.encode() if isinstance(input, str) else input
        raw = subprocess.run(
            self.ssh_argv(command),
            input=data,
            stdin=subprocess.DEVNULL if data is None else None,
            capture_output=True,
            timeout=timeout,
        )
        result = subprocess.CompletedProcess(
            raw.args, raw.returncode,
            raw.stdout.decode(errors="replace"), raw.stderr.decode(errors="replace"),
        )
        if check and result.returncode != 0:
            raise SandboxCommandError(self.name, command, result)
        return result

    # -- lifecycle ----------------------------------------------------------------------------

    def _write_identity(self) -> None:
        etc = self.root / "etc"
        (etc / "hostname").write_text(f"{self.name}\n")
        (etc / "hosts").write_text(etc_hosts(self.name, self.address))
        # Services may start for real in a host, as on a VM.
        (self.root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
        private = etc / "ssh/ssh_host_ed25519_key"
        private.write_text(keys.openssh_private(keys.host_key(self.address)))
        private.chmod(0o600)
        (etc / "ssh/ssh_host_ed25519_key.pub").write_text(f"{self.host_key} root@{self.name}\n")
        (etc / "ssh/sandbox_authorized_keys").write_text(keys.openssh_public(keys.client_key()) + "\n")
        (etc / "ssh/sshd_config").write_text(sshd_config(self.address))

    def _write_trust(self, trust: dict[str, str]) -> None:
        """Make the host trust each CA for its `host:port`, as a host trusts the internet's CAs."""
        for endpoint, pem in trust.items():
            for certs_d in ("etc/containers/certs.d", "etc/docker/certs.d"):
                directory = self.root / certs_d / endpoint
                directory.mkdir(parents=True, exist_ok=True)
                (directory / "ca.crt").write_text(pem)
            store = self.root / "usr/local/share/ca-certificates"
            (store / f"sandbox-{endpoint.replace(':', '_')}.crt").write_text(pem)

    def _start(self) -> None:
        self._boot()
        self._await_sshd()

    def _boot(self) -> None:
        """Start the namespace and find its PID 1."""
        # nsenter joins the host's network namespace, then execs unshare in place (same PID).
        network = ["nsenter", f"--net={NETNS_DIR / self.netns}"] if self.netns else []
        self._launch(
            [*network, *PRIVATE_NAMESPACES, "--uts", "/bin/sh", "-c", HOST_INIT, "sh", str(self.root), self.name,
             str(CACHE)],
            output=self.directory / "init.log",
            env={"PATH": STANDARD_PATH, "LANG": "C.UTF-8", "HOME": "/root"},
            # Its own session: a Ctrl-C meant for the test run must not skip the teardown.
            start_new_session=True,
        )
        self._init = self._await_init()

    def _await_init(self) -> Pid:
        unshare = self._command
        for _ in polls(INIT_WAIT_SECONDS):
            init = next(filter(None, map(Pid.of, children(unshare.pid))), None) if unshare else None
            if init is not None:
                return init
        raise SandboxError(f"{self.name}: the namespace's init did not start\n{self.log_tail()}")

    def _await_sshd(self) -> None:
        """Until sshd answers and PID 1 has entered its init loop.

        A namespace's PID 1 ignores signals it has no handler for: a TERM sent before the
        replacement installs its handlers would be lost, and the host would never stop.
        """
        init = self._init

        def answers() -> bool:
            if init is None or not init.handles(signal.SIGTERM):
                return False
            # In a namespace of its own the machine cannot connect; it can read what listens there.
            return listening(init.pid, self.address, 22) if self.netns else sshd_answers(self.address)

        self._wait_ready(answers, SSHD_WAIT_SECONDS)

    def log_tail(self, lines: int = 40) -> str:
        """The end of the init log and of the ssh unit's log, for error messages."""
        parts = []
        for path in (self.directory / "init.log", self.root / "var/log/journal/ssh.service.log"):
            if path.is_file():
                parts.append(f"--- {path}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts)

    def _signal_target(self) -> Pid | None:
        """PID 1 of the namespace: the replacement stops its services and exits on TERM, and the
        kernel then ends everything else in the namespace with it. Without a known PID 1, our
        `unshare`: its end ends the namespace too (--kill-child)."""
        return self._init or self._command

    def stop(self) -> None:
        """Stop the namespace (TERM, then KILL after a grace period), then unmount the overlay."""
        if not self.running:
            return
        super().stop()
        self._init = None
        self._unmount()
        self.running = False

    def _unmount(self) -> None:
        if str(self.root) not in mount_points_under(self.root):
            return
        result = subprocess.run(["umount", str(self.root)], capture_output=True, text=True)
        if result.returncode != 0:
            raise SandboxError(f"{self.name}: umount {self.root}: {result.stderr.strip()}; "
                               f"processes rooted there: {pids_rooted_under(self.root)}")

    # -- the record `down` reads from another process -----------------------------------------

    def record(self) -> dict:
        return {
            "name": self.name,
            "address": self.address,
            "running": self.running,
            "unshare": [self._command.pid, self._command.start] if self._command else None,
            "init": [self._init.pid, self._init.start] if self._init else None,
            "netns": self.netns,
            "ssh_from": self.ssh_from,
        }

    def restore(self, record: dict) -> None:
        """Take over a host another process started: stopped by PID, its end awaited by polling."""
        self._command = Pid(*record["unshare"]) if record["unshare"] else None
        self._init = Pid(*record["init"]) if record["init"] else None
        self.running = record["running"]


class Sandbox:
    """A test run's hosts, with the run directory (overlays, keys, known_hosts) they live in.

    A run directory passed in is kept after `close` and may hold a record of hosts that another
    process started; one made here is removed once its hosts are down.
    """

    def __init__(self, run_dir: Path | None = None) -> None:
        if run_dir is None:
            RUNS.mkdir(parents=True, exist_ok=True)
            self.run_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=RUNS))
        else:
            self.run_dir = Path(run_dir)
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._owns_run_dir = run_dir is None
        self.known_hosts = self.run_dir / "known_hosts"
        self._client_key = self.run_dir / "client_key"
        self._write_client_key()
        self._base: Path | None = None
        self._hosts: list[SandboxHost] = []
        self._restore()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def hosts(self) -> list[SandboxHost]:
        return [host for host in self._hosts if host.running]

    def up(self, name: str, address: str, *, trust: dict[str, str] | None = None, netns: str | None = None,
           ssh_from: str | None = None) -> SandboxHost:
        """Start a host and return once root can log in over SSH (about a second).

        `netns` puts it in that network namespace (`address` is then one of the namespace's);
        `ssh_from` is where SSH to it starts (`ip netns exec`)."""
        if netns is None:
            host = self._new_host(host_name(name), loopback_address(address))
        elif ssh_from is None:
            raise ValueError(f"{name}: a host in a network namespace of its own needs ssh_from, the namespace "
                             "SSH to it starts from")
        else:
            host = self._new_host(host_name(name), namespace_address(address), network_namespace(netns),
                                  network_namespace(ssh_from))
        trust = {trusted_endpoint(endpoint): pem for endpoint, pem in (trust or {}).items()}
        if netns is None and sshd_answers(host.address):
            raise SandboxError(f"{host.address}:22 is taken, by another sandbox run? "
                               "`python -m sandbox.hosts status` lists them, "
                               "`... down --all` stops them")
        base = self._base = self._base or ensure_base()
        self._hosts.append(host)
        try:
            self._mount_overlay(host, base)
            host._write_identity()
            host._write_trust(trust)
            self._write_known_hosts()
            host._boot()
            self._save()  # from here `down` finds the host even if this process dies
            host._await_sshd()
            if trust:
                host.ssh("update-ca-certificates >/dev/null")
            else:
                host.ssh("true", timeout=15)
        except BaseException:
            # The first error is the one worth reading; leftovers() reports a failed cleanup.
            with contextlib.suppress(SandboxError, ProcessError):
                host.stop()
            self._save()
            raise
        return host

    def close(self) -> None:
        """Stop every host of the run; safe to call again."""
        running = self.hosts()
        for host in running:  # all at once: each takes seconds to stop its services
            host.terminate()
        errors: list[Exception] = []
        for host in running:
            try:
                host.stop()
            except (SandboxError, ProcessError) as error:
                errors.append(error)
        if running:
            self._save()
        if errors:
            raise errors[0]
        if self._owns_run_dir and self.run_dir.exists():
            remove_tree(self.run_dir)

    # -- internals ----------------------------------------------------------------------------

    def _new_host(self, name: str, address: str, netns: str | None = None, ssh_from: str | None = None) -> SandboxHost:
        for other in self._hosts:
            if other.name == name:
                raise ValueError(f"host {name!r} was already started in this run")
            if other.address == address and other.netns == netns and other.running:
                raise ValueError(f"{address} is already used by host {other.name!r}")
        directory = self.run_dir / "hosts" / name
        return SandboxHost(name, address, directory, self._client_key, self.known_hosts, netns, ssh_from)

    def _mount_overlay(self, host: SandboxHost, base: Path) -> None:
        for part in ("upper", "work", "root"):
            (host.directory / part).mkdir(parents=True)
        # Shared lock: a newer recipe's ensure_base must not prune this base while it is mounted.
        with cache_lock(fcntl.LOCK_SH):
            if not base.is_dir():
                raise SandboxError(f"{base} was removed by another recipe's build; run again")
            options = f"lowerdir={base},upperdir={host.directory}/upper,workdir={host.directory}/work"
            mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(host.root)],
                                     capture_output=True, text=True)
        if mounted.returncode != 0:
            raise SandboxError(f"{host.name}: overlay mount failed: {mounted.stderr.strip()}")
        host.running = True

    def _write_client_key(self) -> None:
        if not self._client_key.exists():
            fd = os.open(self._client_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(keys.openssh_private(keys.client_key()))

    def _write_known_hosts(self) -> None:
        # Host keys derive from the address, so an entry stays true after its host stops.
        pinned = {f"{host.address} {host.host_key}" for host in self._hosts}
        self.known_hosts.write_text("".join(f"{line}\n" for line in sorted(pinned)))

    def _save(self) -> None:
        records = [host.record() for host in self._hosts]
        (self.run_dir / "hosts.json").write_text(json.dumps(records, indent=1) + "\n")

    def _restore(self) -> None:
        state = self.run_dir / "hosts.json"
        if not state.is_file():
            return
        for record in json.loads(state.read_text()):
            host = SandboxHost(record["name"], record["address"], self.run_dir / "hosts" / record["name"],
                               self._client_key, self.known_hosts, record.get("netns"), record.get("ssh_from"))
            host.restore(record)
            self._hosts.append(host)


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.hosts", description=(__doc__ or "").split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("base", help="build the cached base if needed and print its path")
    up = commands.add_parser("up", help=f"start a host in the manual run ({CLI_RUN})")
    up.add_argument("name")
    up.add_argument("address")
    down = commands.add_parser("down", help="stop the manual run's hosts")
    down.add_argument("--all", action="store_true", help="every recorded run, test runs included")
    commands.add_parser("status", help="recorded hosts and leftovers")
    args = parser.parse_args(argv)

    if args.command == "base":
        print(ensure_base())
    elif args.command == "up":
        host = Sandbox(CLI_RUN).up(args.name, args.address)
        print(f"{host.name} up: ssh -i {CLI_RUN}/client_key -o UserKnownHostsFile={CLI_RUN}/known_hosts "
              f"root@{host.address}")
    elif args.command == "down":
        for run_dir in sorted(RUNS.glob("*")) if args.all else [CLI_RUN]:
            if run_dir.is_dir():
                Sandbox(run_dir).close()
                remove_tree(run_dir)
    elif args.command == "status":
        for state in sorted(RUNS.glob("*/hosts.json")):
            for record in json.loads(state.read_text()):
                alive = bool(record["init"]) and Pid(*record["init"]).alive()
                print(f"{state.parent.name}\t{record['name']}\t{record['address']}\t"
                      f"{'up' if alive else 'down'}")
        for leftover in leftovers():
            print(f"leftover: {leftover}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
