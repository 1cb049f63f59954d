"""Applying a stack for real to sandbox hosts, and the package clients on them (apt; dnf on a Debian host)."""

from __future__ import annotations

from pathlib import Path

from offline.executor import Executor
from offline.program import ProgramRun, run_program
from offline.stackfile import StackConfig
from sandbox.hosts import SandboxHost

# apt-get install that never asks.
APT_INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y -q"
# dnf on a Debian client: its own installroot and an rpm database rpm can find there.
DNF = ("HOME=/root/dnf-home dnf --assumeyes --quiet --disableplugin=local --installroot=/root/rpmroot --releasever=12 "
       "--setopt=reposdir=/etc/yum.repos.d --setopt=cachedir=/var/cache/dnf")


def apply(config: StackConfig, work: Path, engine_state: dict | None = None) -> tuple[ProgramRun, Executor]:
    """The program run under mocks with every step executed over SSH (`pulumi up`, as tested here)."""
    executor = Executor(local_dir=work, engine_state=engine_state)
    try:
        return run_program(config, executor=executor), executor
    finally:
        executor.close()


def prepare_dnf_client(client: SandboxHost) -> None:
    client.ssh("install -d -m 0700 /root/dnf-home /root/rpmroot && "
               "printf '%%_dbpath /var/lib/rpm\\n' > /root/dnf-home/.rpmmacros")


def rpm_version(client: SandboxHost, name: str) -> str:
    return client.ssh(f"rpm --root /root/rpmroot --dbpath /var/lib/rpm -q --qf '%{{VERSION}}' {name}").stdout.strip()
