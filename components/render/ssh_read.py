"""A local shell command that reads from a host over SSH (OpenSSH client on the admin machine),
with the host keys pinned exactly as the remote steps pin them, through a bastion if any.

Used for what `pulumi up` must see fresh every run (a mirror's latest update reports), where a
resource would only run when its inputs change. The private key arrives on stdin and lives in
a private temporary directory for the length of the command.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import programs


@dataclass(frozen=True)
class Hop:
    address: str
    port: int
    user: str
    host_key: str


def _known_host(hop: Hop) -> str:
    name = hop.address if hop.port == 22 else f"[{hop.address}]:{hop.port}"
    return f"{name} {hop.host_key}"


def read_command(target: Hop, remote_command: str, bastion: Hop | None = None) -> str:
    """A POSIX sh script: key from stdin, pinned known_hosts, `ssh … remote_command`
    (programs/ssh/read.sh)."""
    known = [_known_host(target)] + ([_known_host(bastion)] if bastion else [])
    return programs.with_settings(
        "ssh/read.sh", KNOWN_HOSTS="\n".join(known), TARGET=f"{target.user}@{target.address}", PORT=target.port,
        COMMAND=remote_command, BASTION=f"{bastion.user}@{bastion.address}" if bastion else "",
        BASTION_PORT=bastion.port if bastion else 22)
