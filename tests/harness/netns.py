"""A network namespace of its own for tests that must not use loopback addresses.

Container runtimes treat registries on 127.0.0.0/8 as insecure (Docker skips TLS verification
for them), so a test that proves a CA file is what makes a pull trusted needs the registry on
another address. `NetNamespace` makes one that no packet can leave: a veth pair whose two ends
both stay inside (no host-side end, no route out), `lo` up, and the address on one end.

    with NetNamespace("runtimes") as ns:
        registry = ns.popen(["docker-registry", "serve", config])   # a ManagedProcess's `spawn`
        ns.run(["skopeo", "inspect", "docker://registry.airgap.test:5443/…"])

Everything runs through `ip netns exec`, which also bind-mounts each entry of
`/etc/netns/<name>/` over `/etc/<entry>` for the command it starts (in a mount namespace of that
command's own, so nothing shows on the machine). `hosts` and `resolv.conf` are written there, so
names resolve inside and a name that is not in `hosts` fails at once instead of reaching the
machine's resolver; tests put more under `etc_dir` (e.g. `docker/`, which becomes `/etc/docker`).

Namespaces are named `airgap-<name>-<owner pid>-<n>`. Ones left by a run that crashed (owner
gone, no process inside) are removed when the next one is made. `close()` stops every process
still inside by PID (those started here first), then deletes the namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from sandbox.process import Pid, ProcessError

PREFIX = "airgap-"
RUN_NETNS = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
DEFAULT_ADDRESS = "10.231.0.2/24"
DEFAULT_HOSTS = {"registry.airgap.test": "10.231.0.2"}
# Both ends stay inside the namespace: the address needs a link that is up, and the `dummy`
# module is not available on every kernel these tests run on, while veth is.
LINK, PEER = "gap0", "gap1"
RUN_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0

_STALE_NAME = re.compile(rf"^{PREFIX}[a-z0-9-]+-(\d+)-\d+$")
_sequence = itertools.count(1)


def _is_mount_point(path: Path) -> bool:
    """From mountinfo: `os.path.ismount` misses a bind mount of a directory onto itself."""
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == str(path) for line in mountinfo)


# `ip netns add` makes /run/netns a mount point (a bind onto itself) and leaves it so; closing
# the last namespace undoes that only if it was not one before this process made any.
_RUN_NETNS_WAS_MOUNTED = _is_mount_point(RUN_NETNS)
_RUN_NETNS_EXISTED = RUN_NETNS.exists()
_ETC_NETNS_EXISTED = ETC_NETNS.exists()


class NetNamespaceError(RuntimeError):
    pass


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise NetNamespaceError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _pids_in(netns_file: Path) -> list[int]:
    """PIDs whose network namespace is the one bound at `netns_file` (as `ip netns pids`)."""
    try:
        target = netns_file.stat()
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            own = (entry / "ns/net").stat()
            if (own.st_dev, own.st_ino) == (target.st_dev, target.st_ino):
                found.append(int(entry.name))
    return found


def remove_stale() -> list[str]:
    """Remove `airgap-*` namespaces whose owner process is gone and that no process is in."""
    removed = []
    names = {p.name for p in RUN_NETNS.glob(f"{PREFIX}*")} | {p.name for p in ETC_NETNS.glob(f"{PREFIX}*")}
    for name in sorted(names):
        match = _STALE_NAME.match(name)
        if not match or Path(f"/proc/{match.group(1)}").exists():
            continue  # not named by this module, or its run is still going
        if _pids_in(RUN_NETNS / name):
            continue
        if (RUN_NETNS / name).exists():
            with contextlib.suppress(NetNamespaceError):
                _ip("netns", "delete", name)
        shutil.rmtree(ETC_NETNS / name, ignore_errors=True)
        removed.append(name)
    return removed


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, type, options) of the machine's cgroup file systems, parents first."""
    with open("/proc/cgroups") as table:
        controllers = {line.split()[0] for line in table if not line.startswith("#")}
    mounts = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            point = fields[4]
            fs_type, superopts = fields[fields.index("-") + 1], fields[fields.index("-") + 3]
            if point != "/sys/fs/cgroup" and not point.startswith("/sys/fs/cgroup/"):
                continue
            if fs_type == "cgroup":
                options = [o for o in superopts.split(",") if o in controllers or o.startswith("name=")]
                if not any(o in controllers for o in options):
                    options.insert(0, "none")
                mounts.append((point, fs_type, ",".join(options)))
            elif fs_type in ("cgroup2", "tmpfs"):
                mounts.append((point, fs_type, "mode=755" if fs_type == "tmpfs" else ""))
    return mounts


def cgroup_prelude() -> str:
    """Shell that mounts the machine's cgroup hierarchies again inside `ip netns exec`.

    `ip netns exec` mounts a fresh sysfs on /sys for the namespace, which hides
    /sys/fs/cgroup; dockerd refuses to start without the devices cgroup. The mounts are made
    in the command's own mount namespace (its / is a slave), so the machine never sees them.
    """
    lines = []
    for point, fs_type, options in _cgroup_mounts():
        option = f" -o {shlex.quote(options)}" if options else ""
        point = shlex.quote(point)
        lines.append(f"mkdir -p {point} && mount -t {fs_type}{option} {fs_type} {point}")
    return " && ".join(lines) or "true"


def _hosts_file(hosts: dict[str, str]) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{address}\t{name}" for name, address in hosts.items()]
    return "\n".join(lines) + "\n"


class NetNamespace:
    """A network namespace with one non-loopback address, names in `hosts`, and no way out."""

    def __init__(self, name: str, address: str = DEFAULT_ADDRESS,
                 hosts: dict[str, str] | None = None) -> None:
        """`name` labels the namespace, which is called `airgap-<name>-<pid>-<n>` to be unique."""
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?", name):
            raise ValueError(f"{name!r}: a namespace name is lowercase letters, digits and '-'")
        self.interface = ipaddress.IPv4Interface(address)
        if self.interface.ip.is_loopback:
            raise ValueError(f"{address}: the point of a namespace here is a non-loopback address")
        self.hosts = dict(DEFAULT_HOSTS if hosts is None else hosts)
        for host_address in self.hosts.values():
            ipaddress.ip_address(host_address)  # fail on a typo here, not in a resolver
        self.name = f"{PREFIX}{name}-{os.getpid()}-{next(_sequence)}"
        self.etc_dir = ETC_NETNS / self.name
        """Each entry here is bind-mounted over /etc/<entry> for commands run inside."""
        self._popens: list[subprocess.Popen] = []
        self._started: list[Pid] = []
        self._seen: set[Pid] = set()  # every process seen inside, for leftovers()
        self._open = False

    @property
    def address(self) -> str:
        return str(self.interface.ip)

    # -- life cycle ----------------------------------------------------------------------------

    def open(self) -> NetNamespace:
        remove_stale()
        self.etc_dir.mkdir(parents=True)
        (self.etc_dir / "hosts").write_text(_hosts_file(self.hosts))
        # Nothing listens on the namespace's own loopback: a name missing from `hosts` fails
        # at once, and no lookup reaches the machine's resolver.
        (self.etc_dir / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self._open = True
        try:
            _ip("netns", "add", self.name)
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self.name, "link", "add", LINK, "type", "veth", "peer", "name", PEER)
            _ip("-n", self.name, "addr", "add", str(self.interface), "dev", LINK)
            _ip("-n", self.name, "link", "set", PEER, "up")
            _ip("-n", self.name, "link", "set", LINK, "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every process inside (tracked ones first), delete the namespace and its /etc."""
        if not self._open:
            return
        errors = []
        # What was started here first, newest first; then what those started that is still
        # inside (e.g. the containerd dockerd runs).
        for process in [*reversed(self._started), *self._inside()]:
            try:
                process.stop(grace=STOP_TIMEOUT_S)
            except ProcessError as error:
                errors.append(str(error))
        for popen in self._popens:
            popen.poll()  # reap what ended
        if (RUN_NETNS / self.name).exists():
            try:
                _ip("netns", "delete", self.name)
            except NetNamespaceError as error:
                errors.append(str(error))
        shutil.rmtree(self.etc_dir, ignore_errors=True)
        self._open = False
        _undo_shared_dirs()
        if errors:
            raise NetNamespaceError(f"{self.name}: " + "; ".join(errors))

    def __enter__(self) -> NetNamespace:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- running things inside -----------------------------------------------------------------

    def inside(self, path: Path | str) -> str:
        """The path a process inside sees for `path`: under `etc_dir` that is /etc/…."""
        path = Path(path)
        if path.is_relative_to(self.etc_dir):
            return str(Path("/etc") / path.relative_to(self.etc_dir))
        return str(path)

    def listening(self, pid: int, port: int) -> bool:
        """True once process `pid` (inside) has a TCP socket listening on address:port.

        Read from /proc/PID/net/tcp, which shows the namespace of that process: no probe traffic.
        """
        wanted = f"{self.interface.ip.packed[::-1].hex().upper()}:{port:04X}"
        try:
            table = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
        except OSError:
            return False
        return any(f[1] == wanted and f[3] == "0A" for f in (line.split() for line in table))

    def command(self, argv: list[str], *, cgroups: bool = False, scratch: tuple[str, ...] = ()) -> list[str]:
        """`ip netns exec` argv for `argv`, which is exec'd in place (same PID as `ip`).

        Each command gets a mount namespace of its own from `ip netns exec`, so mounts made
        for it never reach the machine: `cgroups` mounts the machine's cgroup hierarchies again
        (see `cgroup_prelude`); `scratch` mounts an empty tmpfs over each directory named, for
        daemons that write to fixed paths whatever their flags say.
        """
        prelude = [cgroup_prelude()] if cgroups else []
        prelude += [f"mount -t tmpfs -o mode=755 airgap-scratch {shlex.quote(d)}" for d in scratch]
        if prelude:
            argv = ["sh", "-c", " && ".join(prelude) + ' && exec "$@"', "sh", *argv]
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: list[str], *, cgroups: bool = False, scratch: tuple[str, ...] = (),
            **kwargs) -> subprocess.CompletedProcess:
        """`subprocess.run` inside the namespace; a timeout applies unless one is given."""
        kwargs.setdefault("timeout", RUN_TIMEOUT_S)
        return subprocess.run(self.command(argv, cgroups=cgroups, scratch=scratch), **kwargs)

    def popen(self, argv: list[str], *, cgroups: bool = False, scratch: tuple[str, ...] = (),
              **kwargs) -> subprocess.Popen:
        """A long-running process inside; `close()` stops it (TERM, then KILL) if it still runs."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        popen = subprocess.Popen(self.command(argv, cgroups=cgroups, scratch=scratch), **kwargs)
        self._popens.append(popen)
        process = Pid.of(popen.pid)  # not reaped yet, so it is in /proc
        if process is not None:
            self._started.append(process)
            self._seen.add(process)
        return popen

    def pids(self) -> list[int]:
        """Every process now inside, whoever started it."""
        return [process.pid for process in self._inside()]

    def _inside(self) -> list[Pid]:
        found = [process for process in map(Pid.of, _pids_in(RUN_NETNS / self.name)) if process]
        self._seen.update(found)
        return found

    def leftovers(self) -> list[str]:
        """What of this namespace outlived `close()`: empty when it cleaned up after itself."""
        found = []
        if (RUN_NETNS / self.name).exists():
            found.append(f"namespace {self.name}")
        if self.etc_dir.exists():
            found.append(f"directory {self.etc_dir}")
        found += [f"pid {process.pid}" for process in sorted(self._seen, key=lambda p: p.pid) if process.alive()]
        with open("/proc/self/mountinfo") as mountinfo:
            found += [f"mount {line.split()[4]}" for line in mountinfo if self.name in line]
        return found


def _undo_shared_dirs() -> None:
    """Put /run/netns and /etc/netns back as they were before this process used them, once empty.

    A plain umount (never lazy) fails while any namespace is still bound below, so a namespace
    made meanwhile by another process keeps its mount point.
    """
    if not _RUN_NETNS_WAS_MOUNTED and _is_mount_point(RUN_NETNS) and not any(RUN_NETNS.iterdir()):
        subprocess.run(["umount", str(RUN_NETNS)], capture_output=True, timeout=30, check=False)
    if not _RUN_NETNS_EXISTED and not _is_mount_point(RUN_NETNS):
        with contextlib.suppress(OSError):
            RUN_NETNS.rmdir()
    if not _ETC_NETNS_EXISTED:
        with contextlib.suppress(OSError):
            ETC_NETNS.rmdir()
