"""Throwaway Debian hosts on this machine, reached over real SSH, for end-to-end tests.

A sandbox host is an overlay over one cached Debian bookworm chroot (the *base*), booted in its own
PID, mount and UTS namespace with a systemctl replacement as PID 1, and running its own sshd on its
own loopback address. The program under test provisions it exactly as it would a VM: over SSH, with
unit files, `systemctl enable --now` and `apt-get`. Starting a host takes about a second, stopping
it about one more; the base is built once per recipe (1-2 minutes) and shared read-only by all.

    with Sandbox() as sandbox:
        host = sandbox.up("alpha", "127.0.0.11")
        host.ssh("systemctl is-active ssh")

`python -m sandbox.hosts base|up NAME ADDRESS|down [--all]|status` does the same by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox import keys

# Resolved: mounts and /proc/PID/root name real paths, and leftovers() compares against them.
CACHE = Path(os.environ.get("AIRGAP_CACHE", "/var/tmp/airgap-infra-cache")).resolve()
RUNS = CACHE / "runs"
CLI_RUN = RUNS / "cli"

SUITE = "bookworm"
BASE_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "python3",  # the systemctl replacement is a Python script
    "ca-certificates",
    "curl",
    "systemd-standalone-tmpfiles",  # creates /run/<pkg> directories at boot
    "gnupg",
    "docker-registry",
    "nginx-light",
    "aptly",
    "skopeo",
    "createrepo-c",
    "dnf",
    "dnf-plugins-core",  # dnf reposync
    "rpm",
    "apache2",  # rpmMirror.server: httpd
    "apache2-utils",
    "debmirror",
    "jq",
)


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    sha256: str


# Pinned by hash like any other download the base depends on.
SYSTEMCTL_REPLACEMENT = Wheel(
    "docker-systemctl-replacement",
    "1.7.1097",
    "a73781b1fda952817174f33b2a4624403ae79e879ab0449b92e4eeda70ca8edb",
)

# Recommends would pull in the real systemd (openssh-server recommends libpam-systemd).
APT_NO_RECOMMENDS = 'APT::Install-Recommends "0";\nAPT::Install-Suggests "0";\n'
# The replacement answers `preset` with "disabled" when no preset file exists, so packages
# installed later in a host would leave their services off where real systemd turns them on.
PRESET = "enable *\n"
# Only sshd starts at boot; the provisioning under test enables the rest, on its own addresses.
BOOT_SERVICES = ("ssh",)
# Type=notify costs seconds per start under the replacement, and `systemctl restart ssh` from an
# SSH session waits TimeoutStopSec for its own session; a Type= drop-in is ignored, so copy the unit.
SSH_UNIT_TYPE = "simple"
SSH_UNIT_STOP_TIMEOUT = 3
# Bump when the build steps change in a way none of the constants above shows.
BASE_LAYOUT = 1

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHROOT_ENV = {
    "PATH": STANDARD_PATH,
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}

# Bounds of the waits; a host usually answers within 1.5 s and stops within 1.5 s.
SSHD_WAIT_SECONDS = 20.0
STOP_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05

# Everything the harness runs as root in a chroot lives in fresh namespaces: the mounts made
# inside vanish with the last process, and nothing inside can signal the machine's processes.
# --kill-child: should `unshare` itself die, the namespace's PID 1 (and so all of it) dies too.
PRIVATE_NAMESPACES = (
    "unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private",
)

# The kernel filesystems a chroot needs, mounted by a shell script where $R is the root.
# /dev is the machine's (bind, not recursive); its shm and pts get instances of their own.
MOUNT_KERNEL_FILESYSTEMS = """\
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --bind /dev "$R/dev"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$R/dev/pts"
mount -t tmpfs -o mode=1777,size=64m tmpfs "$R/dev/shm"
mount -t tmpfs -o mode=755,size=64m tmpfs "$R/run"
"""

RUN_CHROOTED = 'R=$1\n' + MOUNT_KERNEL_FILESYSTEMS + 'exec chroot "$R" /bin/sh -euc "$2"\n'

# PID 1 of a host's namespace: $1 root, $2 host name, $3 the cache.
HOST_INIT = (
    "set -eu\nR=$1\n"
    # The namespace starts with a copy of the machine's mounts; without this it would keep the
    # overlays of hosts started earlier alive after the machine unmounts them.
    """awk -v r="$R" -v c="$3/" 'index($5, c) == 1 && $5 != r {print $5}' /proc/self/mountinfo \\
  | sort -r | while read -r m; do umount "$m"; done\n"""
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


class SandboxError(RuntimeError):
    """A sandbox host or the base could not be built, started or stopped."""


class SandboxCommandError(subprocess.CalledProcessError):
    """An SSH command on a sandbox host failed; the message carries its stderr."""

    def __init__(self, host: str, command: str, result: subprocess.CompletedProcess) -> None:
        super().__init__(result.returncode, result.args, result.stdout, result.stderr)
        self.host = host
        self.command = command

    def __str__(self) -> str:
        return f"{self.host}: `{self.command}` exited {self.returncode}\n{_tail(self.stderr)}"


# --- the machine's apt sources ---------------------------------------------------------------


@dataclass(frozen=True)
class AptSource:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str = ""

    def deb822(self) -> str:
        stanza = (
            f"Types: deb\nURIs: {self.uri}\nSuites: {' '.join(self.suites)}\n"
            f"Components: {' '.join(self.components)}\n"
        )
        return stanza + (f"Signed-By: {self.signed_by}\n" if self.signed_by else "")


def parse_deb822_sources(text: str) -> list[AptSource]:
    """The enabled `deb` entries of a `.sources` file."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled") == "no":
            continue
        for uri in fields.get("uris", "").split():
            sources.append(
                AptSource(
                    uri,
                    tuple(fields.get("suites", "").split()),
                    tuple(fields.get("components", "").split()),
                    fields.get("signed-by", ""),
                )
            )
    return sources


def parse_one_line_sources(text: str) -> list[AptSource]:
    """The `deb` lines of a `sources.list` file."""
    sources = []
    for line in text.splitlines():
        options = re.search(r"\[([^]]*)\]", line)
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) < 3 or words[0] != "deb":
            continue
        option = dict(o.split("=", 1) for o in options.group(1).split() if "=" in o) if options else {}
        sources.append(AptSource(words[1], (words[2],), tuple(words[3:]), option.get("signed-by", "")))
    return sources


def machine_debian_sources(apt_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    """The machine's own Debian entries for SUITE (and its -updates/-security), never a guess."""
    found: list[AptSource] = []
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        found += parse_deb822_sources(path.read_text())
    one_line = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            found += parse_one_line_sources(path.read_text())
    ours = []
    for source in found:
        suites = tuple(s for s in source.suites if s == SUITE or s.startswith(f"{SUITE}-"))
        if suites:
            ours.append(AptSource(source.uri, suites, source.components, source.signed_by))
    if not any(SUITE in source.suites for source in ours):
        raise SandboxError(f"no `deb` entry for {SUITE} in {apt_dir}: the base needs the machine's mirror")
    return ours


def debootstrap_mirror(sources: list[AptSource]) -> str:
    return next(source.uri for source in sources if SUITE in source.suites)


# --- the base chroot -------------------------------------------------------------------------


def base_recipe(sources: list[AptSource]) -> dict:
    """Everything that shapes the base; its hash names the cached build."""
    return {
        "suite": SUITE,
        "packages": list(BASE_PACKAGES),
        "apt_sources": "\n".join(source.deb822() for source in sources),
        "apt_conf": APT_NO_RECOMMENDS,
        "preset": PRESET,
        "boot_services": list(BOOT_SERVICES),
        "ssh_unit": [SSH_UNIT_TYPE, SSH_UNIT_STOP_TIMEOUT],
        "systemctl_replacement": [SYSTEMCTL_REPLACEMENT.version, SYSTEMCTL_REPLACEMENT.sha256],
        "layout": BASE_LAYOUT,
    }


def base_path(sources: list[AptSource]) -> Path:
    recipe = json.dumps(base_recipe(sources), sort_keys=True).encode()
    return CACHE / f"base-{hashlib.sha256(recipe).hexdigest()[:16]}"


@contextlib.contextmanager
def cache_lock(operation: int = fcntl.LOCK_EX) -> Iterator[None]:
    """Exclusive while a base is built or pruned; shared while a host mounts one."""
    CACHE.mkdir(parents=True, exist_ok=True)
    fd = os.open(CACHE / "base.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, operation)
        yield
    finally:
        os.close(fd)


def ensure_base() -> Path:
    """The cached base for the current recipe, built first if needed (1-2 minutes)."""
    sources = machine_debian_sources()
    path = base_path(sources)
    with cache_lock():
        if not path.is_dir():
            _remove_abandoned_builds()
            _build_base(path, sources)
        _prune_old_bases(keep=path)
    return path


def _build_base(path: Path, sources: list[AptSource]) -> None:
    # Built beside its final name and renamed once complete, so a base-* directory is always whole.
    build = Path(tempfile.mkdtemp(prefix=f".{path.name}.build-", dir=CACHE))
    log = CACHE / f"{path.name}.log"
    log.write_text("")
    _run_logged(
        [*PRIVATE_NAMESPACES, "debootstrap", "--variant=minbase", SUITE, str(build),
         debootstrap_mirror(sources)],
        log,
    )
    build.chmod(0o755)  # mkdtemp made it 0700: the hosts' service users must traverse "/"
    _configure_apt(build, sources)
    _run_chrooted(
        build,
        "apt-get update -qq\n"
        f"apt-get install -y -qq --no-install-recommends {' '.join(BASE_PACKAGES)}\n"
        "apt-get clean\n",
        log,
    )
    _install_systemctl_replacement(build)
    _prepare_ssh(build)
    sysv_scripts = _disable_installed_services(build)
    _run_chrooted(
        build,
        "".join(f"update-rc.d -f {name} remove\n" for name in sysv_scripts)
        # Else every host's first apt call writes its own ~80 MB package cache into its overlay.
        + "apt-cache gencaches >/dev/null\n",
        log,
    )
    build.rename(path)
    log.unlink()


def _configure_apt(root: Path, sources: list[AptSource]) -> None:
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        "\n".join(source.deb822() for source in sources)
    )
    (root / "etc/apt/apt.conf.d/99sandbox-no-recommends").write_text(APT_NO_RECOMMENDS)
    # No daemon starts while the base is built; each host removes this file.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)


def _install_systemctl_replacement(root: Path) -> None:
    wheel = SYSTEMCTL_REPLACEMENT
    with tempfile.TemporaryDirectory(dir=CACHE) as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", download,
             f"{wheel.name}=={wheel.version}"],
            check=True,
        )
        (path,) = Path(download).glob("*.whl")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != wheel.sha256:
            raise SandboxError(f"{path.name}: sha256 {digest}, expected {wheel.sha256}")
        with zipfile.ZipFile(path) as archive:
            for member, target in (("systemctl3.py", "systemctl"), ("journalctl3.py", "journalctl")):
                installed = root / "usr/bin" / target
                installed.write_bytes(archive.read(f"systemctl2/{member}"))
                installed.chmod(0o755)
    # journalctl3.py runs systemctl3.py from its own directory.
    (root / "usr/bin/systemctl3.py").symlink_to("systemctl")


def _prepare_ssh(root: Path) -> None:
    # Each host gets its own key at `up`; none may be shared through the base.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    (root / "etc/hostname").write_text("sandbox\n")
    unit = (root / "lib/systemd/system/ssh.service").read_text()
    if "Type=notify" not in unit or "[Service]\n" not in unit:
        raise SandboxError("ssh.service no longer has the shape the base expects (Type=notify)")
    unit = unit.replace("Type=notify", f"Type={SSH_UNIT_TYPE}")
    unit = unit.replace("[Service]\n", f"[Service]\nTimeoutStopSec={SSH_UNIT_STOP_TIMEOUT}\n", 1)
    (root / "etc/systemd/system/ssh.service").write_text(unit)
    # The sshd.service alias must lead to the same copy, not to the packaged unit.
    alias = root / "etc/systemd/system/sshd.service"
    if alias.is_symlink():
        alias.unlink()
        alias.symlink_to("ssh.service")
    preset = root / "usr/lib/systemd/system-preset/99-sandbox.preset"
    preset.parent.mkdir(parents=True, exist_ok=True)
    preset.write_text(PRESET)


def _disable_installed_services(root: Path) -> list[str]:
    """Unhook what the package installs enabled; return the SysV scripts whose links must go.

    A booting host would otherwise start them, all listening on every address of the machine.
    """
    boot_units = {f"{name}.service" for name in BOOT_SERVICES}
    for link in (root / "etc/systemd/system").glob("*.wants/*"):
        if link.name not in boot_units:
            link.unlink()
    # The replacement also starts rc3.d/rc5.d S-links, and its `disable` leaves them in place.
    # Their links are removed rather than turned into K-links (`update-rc.d disable`): the
    # replacement "stops" every K-link at shutdown, which costs seconds for a service never
    # started (nginx waits 4 s for its PID file). Each has a unit file, so systemd ignores them.
    scripts = set()
    for runlevel in ("rc3.d", "rc5.d"):
        for link in (root / "etc" / runlevel).glob("S[0-9][0-9]*"):
            scripts.add(link.name[3:])
    return sorted(scripts - set(BOOT_SERVICES))


def _run_chrooted(root: Path, script: str, log: Path) -> None:
    _run_logged([*PRIVATE_NAMESPACES, "/bin/sh", "-euc", RUN_CHROOTED, "sh", str(root), script], log)


def _run_logged(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=CHROOT_ENV)
    if result.returncode != 0:
        step = argv[len(PRIVATE_NAMESPACES)]
        raise SandboxError(f"base build: {step} exited {result.returncode}; log {log}:\n"
                           f"{_tail(log.read_text(errors='replace'))}")


def _remove_abandoned_builds() -> None:
    # Called under the exclusive lock: no build is in progress, so any build directory is a crash's.
    for build in CACHE.glob(".base-*.build-*"):
        remove_tree(build)


def _prune_old_bases(keep: Path) -> None:
    in_use = mounted_lowerdirs()
    for base in CACHE.glob("base-*"):
        if base.is_dir() and base != keep and str(base) not in in_use:
            remove_tree(base)


# --- mounts and processes --------------------------------------------------------------------


def _mountinfo() -> list[tuple[str, str]]:
    """(mount point, super options) of every mount the machine sees."""
    rows = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, after = line.split(" - ", 1)
        point = before.split()[4]
        rows.append((_unescape(point), after.split()[-1]))
    return rows


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points_under(path: Path) -> list[str]:
    prefix = str(path).rstrip("/") + "/"
    return [point for point, _ in _mountinfo() if point == str(path) or point.startswith(prefix)]


def mounted_lowerdirs() -> set[str]:
    lowers = set()
    for _, options in _mountinfo():
        for option in options.split(","):
            if option.startswith("lowerdir="):
                lowers.update(option[len("lowerdir="):].split(":"))
    return lowers


def remove_tree(path: Path) -> None:
    """rm -rf that refuses to descend into anything still mounted (a bound /dev, an overlay)."""
    mounted = mount_points_under(path)
    if mounted:
        raise SandboxError(f"not removing {path}: still mounted: {', '.join(mounted)}")
    shutil.rmtree(path)


def _polls(seconds: float) -> Iterator[None]:
    """Rounds of a wait, bounded in count and in time, with a short sleep between them."""
    deadline = time.monotonic() + seconds
    for _ in range(max(1, round(seconds / POLL_SECONDS))):
        yield
        if time.monotonic() > deadline:
            return
        time.sleep(POLL_SECONDS)


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from the state field on (the command name may hold spaces); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _stat(int(entry.name))
        if stat and int(stat[1]) == pid:
            children.append(int(entry.name))
    return children


@dataclass(frozen=True)
class Process:
    """A process this harness started, named so that a reused PID is never signalled."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> Process:
        stat = _stat(pid)
        if stat is None:
            raise SandboxError(f"process {pid} exited before it could be recorded")
        return cls(pid, int(stat[19]))

    def alive(self) -> bool:
        """Running (a zombie has exited: its PID stays taken until reaped, so it is still ours)."""
        stat = _stat(self.pid)
        return stat is not None and int(stat[19]) == self.start and stat[0] != "Z"

    def handles(self, sig: int) -> bool:
        """Whether the process has a handler for `sig` (SigCgt in /proc/PID/status)."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
        return False

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


def pids_rooted_under(path: Path) -> list[int]:
    """PIDs whose root directory is `path` or inside it (a chroot, an sshd privsep child)."""
    prefix = str(path).rstrip("/") + "/"
    pids = []
    for link in Path("/proc").glob("[0-9]*/root"):
        with contextlib.suppress(OSError):
            root = os.readlink(link)
            if root == str(path) or root.startswith(prefix):
                pids.append(int(link.parent.name))
    return pids


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


class SandboxHost:
    """One running host; made by `Sandbox.up`."""

    def __init__(self, name: str, address: str, directory: Path, client_key: Path,
                 known_hosts: Path) -> None:
        self.name = name
        self.address = address
        self.directory = directory
        self.root = directory / "root"
        self.host_key = keys.openssh_public(keys.host_key(address))
        self._client_key = client_key
        self._known_hosts = known_hosts
        self._unshare: Process | None = None
        self._init: Process | None = None  # PID 1 of the host's namespace, as the machine sees it
        self._popen: subprocess.Popen | None = None
        self._terminated = False
        self.running = False

    def __repr__(self) -> str:
        return f"SandboxHost({self.name!r}, {self.address!r})"

    # -- SSH ----------------------------------------------------------------------------------

    def ssh_argv(self, command: str, *, known_hosts: Path | None = None) -> list[str]:
        """The `ssh` command line that runs `command` as root, pinned to this host's key."""
        return [
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

    def _boot(self) -> None:
        with (self.directory / "init.log").open("ab") as log:
            self._popen = subprocess.Popen(
                [*PRIVATE_NAMESPACES, "--uts", "/bin/sh", "-c", HOST_INIT, "sh",
                 str(self.root), self.name, str(CACHE)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": STANDARD_PATH, "LANG": "C.UTF-8", "HOME": "/root"},
                # Its own session: a Ctrl-C meant for the test run must not skip the teardown.
                start_new_session=True,
            )
        self._unshare = Process.of(self._popen.pid)
        self._init = self._await_init()

    def _await_init(self) -> Process:
        for _ in _polls(5):
            children = _children(self._popen.pid)
            if children:
                return Process.of(children[0])
        raise SandboxError(f"{self.name}: the namespace's init did not start\n{self.boot_log()}")

    def _await_sshd(self) -> None:
        """Until sshd answers and PID 1 has entered its init loop.

        A namespace's PID 1 ignores signals it has no handler for: a TERM sent before the
        replacement installs its handlers would be lost, and the host would never stop.
        """
        for _ in _polls(SSHD_WAIT_SECONDS):
            if self._popen.poll() is not None:
                raise SandboxError(
                    f"{self.name}: init exited with {self._popen.returncode}\n{self.boot_log()}")
            if self._init.handles(signal.SIGTERM) and sshd_answers(self.address):
                return
        raise SandboxError(f"{self.name}: sshd not up on {self.address}:22 after "
                           f"{SSHD_WAIT_SECONDS:.0f} s\n{self.boot_log()}")

    def boot_log(self) -> str:
        """The tail of the init log and of the ssh unit's log, for error messages."""
        parts = []
        for path in (self.directory / "init.log", self.root / "var/log/journal/ssh.service.log"):
            if path.is_file():
                parts.append(f"--- {path}\n{_tail(path.read_text(errors='replace'))}")
        return "\n".join(parts)

    def _terminate(self) -> None:
        """TERM the namespace's PID 1: the replacement stops its services and exits, and the
        kernel then ends everything else in the namespace with it."""
        if self._init and not self._terminated:
            self._init.signal(signal.SIGTERM)
            self._terminated = True

    def stop(self) -> None:
        """TERM the namespace's PID 1, KILL it after a grace period, then unmount the overlay."""
        if not self.running:
            return
        if self._unshare is not None:
            self._terminate()
            if not self._await_exit(STOP_GRACE_SECONDS):
                # Killing PID 1 ends the whole namespace; without a known PID 1, killing our
                # `unshare` does it through --kill-child.
                (self._init or self._unshare).signal(signal.SIGKILL)
                if not self._await_exit(KILL_WAIT_SECONDS):
                    raise SandboxError(f"{self.name}: namespace still alive after SIGKILL")
        self._unmount()
        self.running = False

    def _await_exit(self, seconds: float) -> bool:
        if self._popen is not None:
            try:
                self._popen.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                return False
            return True
        for _ in _polls(seconds):
            if not self._unshare.alive():
                return True
        return False

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
            "unshare": [self._unshare.pid, self._unshare.start] if self._unshare else None,
            "init": [self._init.pid, self._init.start] if self._init else None,
        }

    def restore(self, record: dict) -> None:
        self._unshare = Process(*record["unshare"]) if record["unshare"] else None
        self._init = Process(*record["init"]) if record["init"] else None
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

    def __exit__(self, *exc_info) -> None:
        self.close()

    def hosts(self) -> list[SandboxHost]:
        return [host for host in self._hosts if host.running]

    def up(self, name: str, address: str, *, trust: dict[str, str] | None = None) -> SandboxHost:
        """Start a host and return once root can log in over SSH (about a second)."""
        host = self._new_host(host_name(name), loopback_address(address))
        trust = {trusted_endpoint(endpoint): pem for endpoint, pem in (trust or {}).items()}
        if sshd_answers(host.address):
            raise SandboxError(f"{host.address}:22 is taken, by another sandbox run? "
                               "`python -m sandbox.hosts status` lists them, "
                               "`... down --all` stops them")
        self._base = self._base or ensure_base()
        self._hosts.append(host)
        try:
            self._mount_overlay(host)
            host._write_identity()
            host._write_trust(trust)
            self._write_known_hosts()
            host._boot()
            self._save()
            host._await_sshd()
            if trust:
                host.ssh("update-ca-certificates >/dev/null")
            else:
                host.ssh("true", timeout=15)
        except BaseException:
            # The first error is the one worth reading; leftovers() reports a failed cleanup.
            with contextlib.suppress(SandboxError):
                host.stop()
            self._save()
            raise
        return host

    def close(self) -> None:
        """Stop every host of the run; safe to call again."""
        running = self.hosts()
        for host in running:  # all at once: each takes seconds to stop its services
            host._terminate()
        errors = []
        for host in running:
            try:
                host.stop()
            except SandboxError as error:
                errors.append(error)
        if running:
            self._save()
        if errors:
            raise errors[0]
        if self._owns_run_dir and self.run_dir.exists():
            remove_tree(self.run_dir)

    # -- internals ----------------------------------------------------------------------------

    def _new_host(self, name: str, address: str) -> SandboxHost:
        for other in self._hosts:
            if other.name == name:
                raise ValueError(f"host {name!r} was already started in this run")
            if other.address == address and other.running:
                raise ValueError(f"{address} is already used by host {other.name!r}")
        directory = self.run_dir / "hosts" / name
        return SandboxHost(name, address, directory, self._client_key, self.known_hosts)

    def _mount_overlay(self, host: SandboxHost) -> None:
        for part in ("upper", "work", "root"):
            (host.directory / part).mkdir(parents=True)
        # Shared lock: a newer recipe's ensure_base must not prune this base while it is mounted.
        with cache_lock(fcntl.LOCK_SH):
            if not self._base.is_dir():
                raise SandboxError(f"{self._base} was removed by another recipe's build; run again")
            options = f"lowerdir={self._base},upperdir={host.directory}/upper,workdir={host.directory}/work"
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
                               self._client_key, self.known_hosts)
            host.restore(record)
            self._hosts.append(host)


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.hosts", description=__doc__.split("\n")[0])
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
                alive = bool(record["init"]) and Process(*record["init"]).alive()
                print(f"{state.parent.name}\t{record['name']}\t{record['address']}\t"
                      f"{'up' if alive else 'down'}")
        for leftover in leftovers():
            print(f"leftover: {leftover}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
