"""The fake upstream's signing keys, and signing with them in a throwaway GNUPGHOME.

Three RSA-3072 keys: the Debian archive's, the RPM repository's, and a "wrong" one that signs
nothing, for negative tests. They live in the repository (sandbox/data/upstream-keys, armored):
`Pulumi.sandbox.yaml` names the upstream's public keys, so they must be the same on every
machine. `_generate_keys` made them, and makes new ones if that directory is removed. Every
signing run imports them into its own GNUPGHOME; the machine's keyrings are never touched.
They sign test packages of a fake upstream, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sandbox.oci_images import BUILD_TIME, build_once

# Keys predate every signature (a month before the first revision): gpg refuses a signature
# older than its key.
KEY_TIME = BUILD_TIME - 31 * 86400
TOOL_TIMEOUT_S = 120.0
AGENT_STOP_TIMEOUT_S = 5.0

KEY_USER_IDS = {
    "debian": "airgap-infra upstream Debian archive <debian@upstream.test>",
    "rpm": "airgap-infra upstream RPM repository <rpm@upstream.test>",
    "wrong": "airgap-infra wrong key (signs nothing) <wrong@upstream.test>",
}


@dataclass(frozen=True)
class SigningKey:
    role: str
    """`debian`, `rpm` or `wrong`."""
    fingerprint: str
    public_file: Path
    """ASCII-armored public key."""
    secret_file: Path

    @property
    def public_armored(self) -> str:
        return self.public_file.read_text()


def _gpg(home: Path, *args: str, at: int | None = None, stdin: bytes | None = None) -> bytes:
    """Run gpg non-interactively on `home`; `at` freezes its clock (key and signature times)."""
    clock = ["--faked-system-time", f"{at}!"] if at is not None else []
    result = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--quiet", "--no-tty", "--no-auto-check-trustdb",
         "--pinentry-mode", "loopback", "--passphrase", "", *clock, *args],
        input=stdin, capture_output=True, timeout=TOOL_TIMEOUT_S, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)} failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout


@contextlib.contextmanager
def private_gnupg_home() -> Iterator[Path]:
    """A throwaway GNUPGHOME; its gpg-agent is stopped and the directory removed afterwards.

    Made under /tmp: the agent's socket lives in it, and a socket path must stay short.
    """
    home = Path(tempfile.mkdtemp(prefix="airgap-gpg-", dir="/tmp"))
    try:
        yield home
    finally:
        # Stops only the agent serving this home directory (it started for our signing).
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, timeout=AGENT_STOP_TIMEOUT_S, check=False)
        shutil.rmtree(home, ignore_errors=True)


def _generate_keys(directory: Path) -> None:
    """Generate every role's key pair and write them armored, with their fingerprints."""
    fingerprints = {}
    with private_gnupg_home() as home:
        for role, user_id in KEY_USER_IDS.items():
            # Sign-only primary keys, no expiry: a test cache must not rot.
            _gpg(home, "--quick-gen-key", user_id, "rsa3072", "sign", "never", at=KEY_TIME)
            listing = _gpg(home, "--with-colons", "--list-secret-keys", user_id).decode()
            fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                               if line.startswith("fpr:"))
            (directory / f"{role}.asc").write_bytes(_gpg(home, "--armor", "--export", fingerprint))
            secret = directory / f"{role}.secret.asc"
            secret.touch(mode=0o600)
            secret.write_bytes(_gpg(home, "--armor", "--export-secret-keys", fingerprint))
            fingerprints[role] = fingerprint
    (directory / "fingerprints.json").write_text(json.dumps(fingerprints, indent=2) + "\n")


KEYS_DIR = Path(__file__).resolve().parent / "data" / "upstream-keys"


def cached_keys() -> dict[str, SigningKey]:
    """The `debian`, `rpm` and `wrong` keys (from sandbox/data/upstream-keys; `_generate_keys`
    made them, and makes new ones if that directory is removed)."""
    directory = KEYS_DIR
    if not (directory / "fingerprints.json").exists():
        build_once(directory, _generate_keys)
    fingerprints = json.loads((directory / "fingerprints.json").read_text())
    return {role: SigningKey(role, fingerprint, directory / f"{role}.asc",
                             directory / f"{role}.secret.asc")
            for role, fingerprint in fingerprints.items()}


class Signer:
    """Signs with secret keys imported into a private GNUPGHOME, at a pinned time."""

    def __init__(self, home: Path, keys: dict[str, SigningKey]) -> None:
        self.home = home
        for key in keys.values():
            _gpg(home, "--import", str(key.secret_file))

    def clearsign(self, source: Path, target: Path, key: SigningKey, at: int) -> None:
        _gpg(self.home, "--local-user", key.fingerprint, "--output", str(target),
             "--clearsign", str(source), at=at)

    def detach_sign(self, source: Path, target: Path, key: SigningKey, at: int) -> None:
        """An ASCII-armored detached signature (Release.gpg, repomd.xml.asc)."""
        _gpg(self.home, "--local-user", key.fingerprint, "--output", str(target),
             "--armor", "--detach-sign", str(source), at=at)


def dearmor(armored: Path, target: Path) -> Path:
    """A binary keyring from an armored key: gpgv's and aptly's `--keyring` read only these."""
    with private_gnupg_home() as home:
        target.write_bytes(_gpg(home, "--dearmor", stdin=armored.read_bytes()))
    return target

