"""TLS for the upstream fixtures: a throwaway CA made per instance, and a server certificate for one address.

The CA is new at every instance's first start and trusted only by what the test hands it to, as
a public CA is trusted by the clients of the internet: nothing on the machine trusts it.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_DNS_NAME = "upstream.test"


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _certificate(subject: str, public_key: ec.EllipticCurvePublicKey, issuer: x509.Name | None,
                 now: datetime.datetime) -> x509.CertificateBuilder:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def write_tls_material(directory: Path, address: str) -> tuple[Path, Path, Path]:
    """A new CA and a server certificate (SAN: IP `address`, DNS `upstream.test`).

    Returns (ca.crt, server.crt, server.key). ECDSA P-256 keeps generation instant and is
    accepted by every client the tests use (Go's crypto/tls, curl, Python's ssl).
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        _certificate("airgap-infra upstream test CA", ca_key.public_key(), None, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        _certificate(SERVER_DNS_NAME, server_key.public_key(), ca_cert.subject, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address(address)), x509.DNSName(SERVER_DNS_NAME)]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.crt"
    cert_file = directory / "server.crt"
    key_file = directory / "server.key"
    ca_file.write_bytes(_pem(ca_cert))
    # The chain lets clients that only hold the CA verify without fetching anything.
    cert_file.write_bytes(_pem(server_cert) + _pem(ca_cert))
    key_file.touch(mode=0o600)
    key_file.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return ca_file, cert_file, key_file
