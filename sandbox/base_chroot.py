"""The base every sandbox host overlays: one Debian bookworm chroot, built once per recipe and cached.

`debootstrap` from the machine's own Debian mirror (read from its apt sources, never guessed),
then the packages the stacks install on hosts (`BASE_PACKAGES`), a systemctl replacement that
can run as PID 1 without systemd, and sshd prepared for per-host keys. Every service the
packages enabled is unhooked: a host starts only sshd, and the provisioning under test enables
the rest. A build takes 1-2 minutes and is named by the hash of its recipe
(`$AIRGAP_CACHE/base-<hash>`); hosts mount it read-only, so it is never changed once built.

`hosts.py` runs hosts over it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.mounts import mounted_lowerdirs, remove_tree

# Resolved: mounts and /proc/PID/root name real paths, and leftovers() compares against them.
CACHE = Path(os.environ.get("AIRGAP_CACHE", "/var/tmp/airgap-infra-cache")).resolve()

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
    "nftables",  # the network lockdown
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


class SandboxError(RuntimeError):
    """A sandbox host or the base could not be built, started or stopped."""


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
                           f"{tail(log.read_text(errors='replace'))}")


def _remove_abandoned_builds() -> None:
    # Called under the exclusive lock: no build is in progress, so any build directory is a crash's.
    for build in CACHE.glob(".base-*.build-*"):
        remove_tree(build)


def _prune_old_bases(keep: Path) -> None:
    in_use = mounted_lowerdirs()
    for base in CACHE.glob("base-*"):
        if base.is_dir() and base != keep and str(base) not in in_use:
            remove_tree(base)


def tail(text: str, limit: int = 4000) -> str:
    """The end of a long output, for an error message."""
    return text if len(text) <= limit else "…" + text[-limit:]
