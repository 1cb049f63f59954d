"""A local shell command that reads from a host over SSH (OpenSSH client on the admin machine),
with the host keys pinned exactly as the remote steps pin them, through a bastion if any.

Used for what `pulumi up` must see fresh every run (a mirror's latest update reports), where a
resource would only run when its inputs change. The private key arrives on stdin and lives in
a private temporary directory for the length of the command; the client's arguments name it
and the pinned hosts relative to that directory, so the jump through a bastion (`ProxyCommand`,
written here by formats/ssh.py) uses the very same arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import programs
from .formats import ssh

# Run from the command's private directory, which holds `key` and `known_hosts`.
CLIENT = ("-F", "/dev/null", "-i", "./key", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
          "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=./known_hosts", "-o", "ConnectTimeout=15")


@dataclass(frozen=True)
class Hop:
    address: str
    port: int
    user: str
    host_key: str


def read_command(target: Hop, remote_command: str, bastion: Hop | None = None) -> str:
    """A POSIX sh script: key from stdin, pinned known_hosts, `ssh … remote_command`
    (programs/ssh/read.sh)."""
    known = [ssh.known_host(hop.address, hop.port, hop.host_key) for hop in (target, bastion) if hop is not None]
    proxy = ssh.proxy_command(CLIENT, bastion.user, bastion.address, bastion.port, target.address) if bastion else ""
    return programs.with_settings(
        "ssh/read.sh", KNOWN_HOSTS="\n".join(known), CLIENT=" ".join(ssh.arguments(CLIENT)),
        TARGET=ssh.destination(target.user, target.address), PORT=int(target.port), COMMAND=remote_command,
        PROXY_COMMAND=proxy)
