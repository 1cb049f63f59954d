"""Deterministic SSH keys for sandbox hosts.

Sandbox hosts live only on loopback and only for a test run, but the `sandbox` stack pins their
host keys and carries the client key as an encrypted secret. Deriving every key from a public
seed keeps `Pulumi.sandbox.yaml` stable across rebuilds. These keys protect nothing: never reuse
the scheme for a real host.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

CLIENT_SEED = "airgap-infra sandbox client"


def derive_ed25519(seed: str) -> Ed25519PrivateKey:
    """An Ed25519 key whose 32-byte private seed is sha256(seed)."""
    return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())


def openssh_private(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


def openssh_public(key: Ed25519PrivateKey) -> str:
    """`ssh-ed25519 AAAA…` (authorized_keys form, no comment)."""
    return key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def client_key() -> Ed25519PrivateKey:
    return derive_ed25519(CLIENT_SEED)


def host_key(address: str) -> Ed25519PrivateKey:
    return derive_ed25519(f"airgap-infra sandbox host {address}")
