"""A detached OpenPGP signature over MANIFEST.json, made and checked with gpg.

Signing uses the operator's GNUPGHOME and key (by fingerprint). Checking never touches a
keyring of the machine: the given public key is imported into a throwaway GNUPGHOME, so only a
signature by that key (or one of its subkeys) verifies, whatever else the machine trusts.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .manifest import SIGNATURE_NAME, BundleError

GPG_TIMEOUT = 120


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--no-tty", *args],
                              input=stdin, capture_output=True, timeout=GPG_TIMEOUT, check=False)
    except FileNotFoundError:
        raise BundleError("gpg is not installed; install it (apt-get install gnupg)") from None


def sign(manifest: Path, fingerprint: str, gnupghome: Path, passphrase_file: Path | None = None) -> Path:
    """Write `MANIFEST.json.asc` beside `manifest`, signed by `fingerprint`'s key."""
    signature = manifest.with_name(SIGNATURE_NAME)
    passphrase = (["--pinentry-mode", "loopback", "--passphrase-file", str(passphrase_file)]
                  if passphrase_file else [])
    result = _gpg(gnupghome, "--yes", *passphrase, "--local-user", fingerprint, "--armor",
                  "--detach-sign", "--output", str(signature), str(manifest))
    if result.returncode != 0:
        raise BundleError(f"signing {manifest.name} with {fingerprint} failed: "
                          f"{result.stderr.decode(errors='replace').strip()}")
    return signature


@contextlib.contextmanager
def throwaway_gnupghome() -> Iterator[Path]:
    """A private GNUPGHOME under /tmp (gpg's socket paths must stay short), removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="bundle-gpg-", dir="/tmp"))
    try:
        yield home
    finally:
        # Stops only agents serving this home directory, if any started.
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"],
                       capture_output=True, timeout=10, check=False)
        shutil.rmtree(home, ignore_errors=True)


def verify(manifest: Path, signature: Path, public_key: Path) -> str:
    """The primary fingerprint of the key that made a good signature; BundleError otherwise."""
    try:
        key = public_key.read_bytes()
    except OSError as error:
        raise BundleError(f"{public_key}: cannot be read ({error.strerror})") from None
    with throwaway_gnupghome() as home:
        imported = _gpg(home, "--import", stdin=key)
        if imported.returncode != 0:
            raise BundleError(f"{public_key}: not an OpenPGP public key "
                              f"({imported.stderr.decode(errors='replace').strip()})")
        result = _gpg(home, "--status-fd", "1", "--trust-model", "always", "--verify", str(signature), str(manifest))
    status = result.stdout.decode(errors="replace").splitlines()
    valid = [line.split() for line in status if line.startswith("[GNUPG:] VALIDSIG ")]
    good = any(line.startswith("[GNUPG:] GOODSIG ") for line in status)
    if result.returncode != 0 or not good or not valid:
        reason = "not made by the given key" if any("NO_PUBKEY" in line for line in status) else "bad signature"
        if any(line.startswith(("[GNUPG:] EXPKEYSIG", "[GNUPG:] REVKEYSIG")) for line in status):
            reason = "made by an expired or revoked key"
        raise BundleError(f"{signature.name}: {reason} (checked with {public_key})")
    fields = valid[0]
    return fields[-1] if len(fields) >= 12 else fields[2]
