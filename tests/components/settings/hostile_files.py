"""Files on the admin machine that look right and are not: written once per test process into a
directory of their own, which the edits list under `adminFileRoots`."""

from __future__ import annotations

import atexit
import datetime
import functools
import shutil
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from offline.stackfile import PROJECT_DIR

from .stack_edits import Edit, edits, set_path

PROD_CERT = PROJECT_DIR / "examples/prod/registry.crt"
SECRET_KEY = PROJECT_DIR / "sandbox/data/upstream-keys/rpm.secret.asc"


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@functools.cache
def other_key() -> str:
    """A PEM private key no certificate here was issued for."""
    return _pem_key(ec.generate_private_key(ec.SECP256R1()))


def _other_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some Other CA")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@functools.cache
def directory() -> Path:
    """The files, made on first use and removed when the process ends."""
    made = Path(tempfile.mkdtemp(prefix="airgap-hostile-"))
    atexit.register(shutil.rmtree, made, ignore_errors=True)
    (made / "cert-with-key.pem").write_text(PROD_CERT.read_text() + other_key())
    (made / "other-ca.pem").write_text(_other_ca())
    (made / "relabelled-secret.asc").write_text(SECRET_KEY.read_text().replace("PRIVATE KEY BLOCK", "PUBLIC KEY BLOCK"))
    (made / "key-beside-public.asc").write_text(
        (PROJECT_DIR / "sandbox/data/upstream-keys/rpm.asc").read_text() + SECRET_KEY.read_text())
    (made / ".hidden").mkdir()
    (made / ".hidden/falco_rules.yaml").write_bytes((PROJECT_DIR / "sandbox/data/artifacts/falco_rules.yaml")
                                                    .read_bytes())
    return made


def with_file(path: str, name: str) -> Edit:
    """Set the key at `path` to the hostile file `name`, its directory listed under adminFileRoots."""
    def edit(config: dict) -> None:
        edits(set_path("adminFileRoots", [str(directory())]), set_path(path, str(directory() / name)))(config)
    return edit
