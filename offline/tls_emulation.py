"""What the `pulumi-tls` provider would return, computed offline and deterministically.

The provider plugin cannot run here, but the certificates it issues flow into scripts that run
for real on sandbox hosts, so they must be real. Keys derive from the resource's name (ECDSA
P-256 with the scalar taken from a hash), signatures are deterministic (RFC 6979) and validity
starts at the beginning of the current year, so two evaluations of a stack yield identical text,
as two `pulumi up` runs would reuse the provider's stored state. A caller may fix the instant of
issue instead (`issued_at`): change review does, so that a plan depends on the code and the stack,
never on the day it is made.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)

TYPES = {
    "tls:index/privateKey:PrivateKey",
    "tls:index/selfSignedCert:SelfSignedCert",
    "tls:index/certRequest:CertRequest",
    "tls:index/locallySignedCert:LocallySignedCert",
}


def _key(seed: str) -> ec.EllipticCurvePrivateKey:
    scalar = int.from_bytes(hashlib.sha256(f"airgap tls emulation {seed}".encode()).digest(), "big")
    return ec.derive_private_key(scalar % (_P256_ORDER - 1) + 1, ec.SECP256R1())


def _load_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"the emulated provider issues ECDSA keys only, not {type(key).__name__}")
    return key


def start_of_year() -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC)
    return datetime.datetime(now.year, 1, 1, tzinfo=datetime.UTC)


def _name(subject: dict | None) -> x509.Name:
    subject = subject or {}
    attributes = []
    if subject.get("organization"):
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
    if subject.get("commonName"):
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
    return x509.Name(attributes)


def _san(inputs: dict) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in inputs.get("dnsNames") or []]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in inputs.get("ipAddresses") or []]
    return names


def _uses(builder: x509.CertificateBuilder, uses: list[str], is_ca: bool) -> x509.CertificateBuilder:
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    builder = builder.add_extension(x509.KeyUsage(
        digital_signature="digital_signature" in uses, content_commitment=False,
        key_encipherment="key_encipherment" in uses, data_encipherment=False, key_agreement=False,
        key_cert_sign="cert_signing" in uses, crl_sign="crl_signing" in uses,
        encipher_only=False, decipher_only=False), critical=True)
    extended = [ExtendedKeyUsageOID.SERVER_AUTH] if "server_auth" in uses else []
    extended += [ExtendedKeyUsageOID.CLIENT_AUTH] if "client_auth" in uses else []
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    return builder


def _certificate(name: str, subject: x509.Name, issuer: x509.Name, public_key, signer, inputs: dict,
                 is_ca: bool, san: list[x509.GeneralName], issuer_public_key, start: datetime.datetime) -> str:
    end = start + datetime.timedelta(hours=int(inputs.get("validityPeriodHours", 24)))
    serial = int.from_bytes(hashlib.sha256(f"serial {name}".encode()).digest()[:16], "big") >> 1
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(serial).not_valid_before(start).not_valid_after(end))
    builder = _uses(builder, inputs.get("allowedUses") or [], is_ca)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False)
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def outputs(typ: str, name: str, inputs: dict[str, Any], issued_at: datetime.datetime | None = None) -> dict[str, Any]:
    """Provider outputs for one tls resource; `name` is `<stack>/<resource name>` (the seed),
    inputs are already unwrapped of secret markers; certificates start at `issued_at` (by default
    the beginning of the current year)."""
    start = issued_at or start_of_year()
    if typ == "tls:index/privateKey:PrivateKey":
        key = _key(name)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
        public = key.public_key()
        return {**inputs, "privateKeyPem": pem,
                "publicKeyPem": public.public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
                "publicKeyOpenssh": public.public_bytes(serialization.Encoding.OpenSSH,
                                                        serialization.PublicFormat.OpenSSH).decode() + "\n"}
    if typ == "tls:index/selfSignedCert:SelfSignedCert":
        key = _load_key(inputs["privateKeyPem"])
        subject = _name(inputs.get("subject"))
        cert = _certificate(name, subject, subject, key.public_key(), key, inputs,
                            bool(inputs.get("isCaCertificate")), _san(inputs), key.public_key(), start)
        return {**inputs, "certPem": cert}
    if typ == "tls:index/certRequest:CertRequest":
        key = _load_key(inputs["privateKeyPem"])
        builder = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
        if _san(inputs):
            builder = builder.add_extension(x509.SubjectAlternativeName(_san(inputs)), critical=False)
        csr = builder.sign(key, hashes.SHA256(), ecdsa_deterministic=True)
        return {**inputs, "certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode()}
    if typ == "tls:index/locallySignedCert:LocallySignedCert":
        csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
        ca_key = _load_key(inputs["caPrivateKeyPem"])
        ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
        try:
            san = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            san = []
        cert = _certificate(name, csr.subject, ca_cert.subject, csr.public_key(), ca_key, inputs,
                            bool(inputs.get("isCaCertificate")), san, ca_key.public_key(), start)
        return {**inputs, "certPem": cert}
    raise KeyError(typ)
