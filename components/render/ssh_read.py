"""A local shell command that reads from a host over SSH (OpenSSH client on the admin machine),
with the host keys pinned exactly as the remote steps pin them, through a bastion if any.

Used for what `pulumi up` must see fresh every run (a mirror's latest update reports), where a
resource would only run when its inputs change. The private key arrives on stdin and lives in
a private temporary directory for the length of the command.
"""

from __future__ import annotations

from dataclasses import dataclass

from .shell import q


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
    """A POSIX sh script: key from stdin, pinned known_hosts, `ssh … remote_command`."""
    known = [_known_host(target)] + ([_known_host(bastion)] if bastion else [])
    common = ('-F /dev/null -i "$dir/key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes '
              '-o UserKnownHostsFile="$dir/known_hosts" -o ConnectTimeout=15')
    proxy = ""
    if bastion is not None:
        jump = f'ssh {common} -p {bastion.port} -W %h:%p {q(f"{bastion.user}@{bastion.address}")}'
        proxy = f'-o ProxyCommand="{jump}" '
    return (
        "set -eu\n"
        "dir=$(mktemp -d)\n"
        "trap 'rm -rf \"$dir\"' EXIT\n"
        "umask 077\n"
        "cat > \"$dir/key\"\n"
        + "".join(f"printf '%s\\n' {q(line)} >> \"$dir/known_hosts\"\n" for line in known)
        + f"exec ssh {common} {proxy}-p {target.port} {q(f'{target.user}@{target.address}')} {q(remote_command)}\n"
    )
