"""`hosts`: the machines the program reaches over SSH, each with its pinned host key."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator
from pydantic.dataclasses import dataclass

from .fields import MODEL_CONFIG, Address, Flag, HostName, Pattern, Port, SecretName
from .rules import Root, Rules, SecretKind, host_exists, secret_exists

_KEY_TYPES = (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "ssh-rsa", "rsa-sha2-256", "rsa-sha2-512",
)


def _host_key(value: str) -> str:
    parts = value.split()
    if len(parts) not in (2, 3) or parts[0] not in _KEY_TYPES:
        raise ValueError(
            "must be a public host key as `<type> <base64>` (from `ssh-keyscan` or "
            f"/etc/ssh/ssh_host_*.pub); types: {', '.join(_KEY_TYPES)}"
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):  # ValueError: not ASCII
        raise ValueError("host key data is not base64; copy the key from `ssh-keyscan`") from None
    if len(blob) < 4 or blob[4 : 4 + int.from_bytes(blob[:4], "big")].decode(errors="replace") != (
        "ssh-rsa" if parts[0].startswith("rsa-sha2") else parts[0]
    ):
        raise ValueError(f"host key data does not hold a {parts[0]} key; give the type the key has")
    return f"{parts[0]} {parts[1]}"


HostKey = Annotated[str, AfterValidator(_host_key)]
Login = Annotated[str, Pattern(r"[a-z_][a-z0-9_-]{0,31}",
                               "is not a login name; use lowercase letters, digits, '_' and '-'")]

SSH_PRIVATE_KEY = SecretKind(marker="PRIVATE KEY-----", what="a PEM/OpenSSH private key")


class _OneHopBastion:
    """A host's bastion is another host, itself reached directly."""

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        name = next(name for name, host in root.hosts.items() if host is model)
        bastion = model.bastion
        if bastion == name:
            yield f"{path}.bastion: a host cannot be its own bastion; name another host or none"
        elif bastion in root.hosts and root.hosts[bastion].bastion is not None:
            yield f"{path}.bastion: {bastion!r} itself has a bastion; one hop is supported"


@dataclass(frozen=True, config=MODEL_CONFIG)
class HostSettings:
    """One machine the program reaches over SSH."""

    RULES: ClassVar[Rules] = (
        host_exists("bastion"),
        _OneHopBastion(),
        secret_exists("private_key_secret", holds=SSH_PRIVATE_KEY),
    )

    address: Address
    """IP address or DNS name the admin machine (or the bastion) connects to."""
    host_key: HostKey
    """Pinned public host key, `ssh-ed25519 AAAA…`. Connections to any other key are refused."""
    port: Port = 22
    """SSH port."""
    user: Login = "root"
    """Login user; with `sudo: true` steps run through `sudo -n`."""
    bastion: HostName | None = None
    """Name of another host to jump through (one hop)."""
    private_key_secret: SecretName = "sshPrivateKey"
    """Name of the entry in `secrets` that holds the private key."""
    sudo: Flag = False
    """Run steps as root through passwordless sudo."""
