"""Load a `Pulumi.<env>.yaml` as the Pulumi CLI would hand it to the program, offline.

Emulates what the CLI does before it starts a Python program: merge the project's config
defaults from `Pulumi.yaml`, decrypt `secure:` values with the passphrase secrets manager, and
list the keys that hold secrets. The passphrase scheme is Pulumi's own: the stack file's
`encryptionsalt: v1:<salt b64>:<check>` and the passphrase give a 32-byte key by
PBKDF2-HMAC-SHA256 with 1,000,000 iterations; each value is `v1:<nonce b64>:<AES-256-GCM
ciphertext and tag, b64>`; the check decrypts to `pulumi`.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PROJECT_DIR = Path(__file__).resolve().parents[1]
PBKDF2_ITERATIONS = 1_000_000
# The shipped example stacks are encrypted with this passphrase; real stacks use their own.
EXAMPLE_PASSPHRASE = "airgap-infra-example"


class StackFileError(ValueError):
    pass


@functools.lru_cache(maxsize=16)
def derive_key(passphrase: str, salt_b64: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", passphrase.encode(), base64.b64decode(salt_b64), PBKDF2_ITERATIONS, 32)


def decrypt(key: bytes, value: str) -> str:
    version, nonce, ciphertext = value.split(":")
    if version != "v1":
        raise StackFileError(f"unknown secret version {version!r}")
    return AESGCM(key).decrypt(base64.b64decode(nonce), base64.b64decode(ciphertext), None).decode()


def encrypt(key: bytes, plaintext: str, nonce: bytes | None = None) -> str:
    nonce = nonce or os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), None)
    return f"v1:{base64.b64encode(nonce).decode()}:{base64.b64encode(sealed).decode()}"


def new_encryption_salt(passphrase: str, salt: bytes | None = None) -> str:
    """An `encryptionsalt` value, as `pulumi stack init --secrets-provider passphrase` writes it."""
    salt_b64 = base64.b64encode(salt or os.urandom(8)).decode()
    return f"v1:{salt_b64}:{encrypt(derive_key(passphrase, salt_b64), 'pulumi')}"


def key_for(encryption_salt: str, passphrase: str) -> bytes:
    version, salt_b64, check = encryption_salt.split(":", 2)
    if version != "v1":
        raise StackFileError(f"unknown encryptionsalt version {version!r}")
    key = derive_key(passphrase, salt_b64)
    try:
        if decrypt(key, check) != "pulumi":
            raise StackFileError("incorrect passphrase")
    except Exception as error:  # InvalidTag from AES-GCM
        raise StackFileError("incorrect passphrase") from error
    return key


@dataclass
class StackConfig:
    """What the program sees: namespaced keys → values, and which keys are secret."""

    project: str
    stack: str
    values: dict[str, Any]
    secret_keys: set[str] = field(default_factory=set)
    secrets_key: bytes | None = field(default=None, repr=False, compare=False)
    """The stack's secrets key (from its encryptionsalt and the passphrase), when it has one: the
    offline engine seals the secrets it keeps in its state with it, as Pulumi does."""

    def as_program_config(self) -> dict[str, str]:
        """The string map the SDK expects: objects and arrays as JSON, scalars as text."""
        out = {}
        for key, value in self.values.items():
            if isinstance(value, (dict, list)):
                out[key] = json.dumps(value)
            elif isinstance(value, bool):
                out[key] = "true" if value else "false"
            else:
                out[key] = str(value)
        return out

    def with_values(self, **changes: Any) -> StackConfig:
        """A copy with some project keys replaced (`None` removes a key); for tests."""
        values = copy.deepcopy(self.values)
        for short, value in changes.items():
            key = f"{self.project}:{short}"
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        return StackConfig(self.project, self.stack, values, set(self.secret_keys), self.secrets_key)


def passphrase_from_env() -> str:
    if "PULUMI_CONFIG_PASSPHRASE" in os.environ:
        return os.environ["PULUMI_CONFIG_PASSPHRASE"]
    if "PULUMI_CONFIG_PASSPHRASE_FILE" in os.environ:
        return Path(os.environ["PULUMI_CONFIG_PASSPHRASE_FILE"]).read_text().rstrip("\n")
    return EXAMPLE_PASSPHRASE


def project_defaults(project_dir: Path = PROJECT_DIR) -> tuple[str, dict[str, Any]]:
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    name = project["name"]
    defaults = {}
    for key, declaration in (project.get("config") or {}).items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(declaration, dict) and "default" in declaration:
            defaults[full] = copy.deepcopy(declaration["default"])
        elif isinstance(declaration, dict) and "value" in declaration:
            defaults[full] = copy.deepcopy(declaration["value"])
        elif not isinstance(declaration, dict):
            defaults[full] = declaration
    return name, defaults


def load_stack(stack: str, *, passphrase: str | None = None, project_dir: Path = PROJECT_DIR,
               text: str | None = None) -> StackConfig:
    """Load `Pulumi.<stack>.yaml` (or `text` in its place)."""
    project, values = project_defaults(project_dir)
    document = yaml.safe_load(text if text is not None else (project_dir / f"Pulumi.{stack}.yaml").read_text()) or {}
    key = None
    secret_keys: set[str] = set()

    def reveal(value: Any, top: str) -> Any:
        nonlocal key
        if isinstance(value, dict) and set(value) == {"secure"}:
            if key is None:
                if "encryptionsalt" not in document:
                    raise StackFileError(f"{top}: has a secure value but the stack has no encryptionsalt")
                key = key_for(document["encryptionsalt"], passphrase or passphrase_from_env())
            secret_keys.add(top)
            return decrypt(key, value["secure"])
        if isinstance(value, dict):
            return {k: reveal(v, top) for k, v in value.items()}
        if isinstance(value, list):
            return [reveal(v, top) for v in value]
        return value

    for raw_key, value in (document.get("config") or {}).items():
        full = raw_key if ":" in raw_key else f"{project}:{raw_key}"
        values[full] = reveal(value, full)
    if key is None and "encryptionsalt" in document:
        key = key_for(document["encryptionsalt"], passphrase or passphrase_from_env())
    return StackConfig(project=project, stack=stack, values=values, secret_keys=secret_keys, secrets_key=key)


def main(argv: list[str] | None = None) -> int:
    """`python -m offline.stackfile encrypt STACK` reads a value on stdin and prints the
    `secure:` form for that stack (what `pulumi config set --secret` would store), for editing
    stack files on a machine without the Pulumi CLI."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["encrypt"])
    parser.add_argument("stack")
    args = parser.parse_args(argv)
    document = yaml.safe_load((PROJECT_DIR / f"Pulumi.{args.stack}.yaml").read_text())
    key = key_for(document["encryptionsalt"], passphrase_from_env())
    print(f"secure: {encrypt(key, sys.stdin.read().rstrip(chr(10)))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
