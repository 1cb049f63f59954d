"""Key material where it belongs: certificate files hold certificates only, public key files hold
public keys only, TLS keys match their certificates, and secrets stay secret.

- A PEM file given as a certificate or CA bundle may hold no other block (a private key in it
  would be exported with the CA bundle); a CA bundle holds CA certificates, and a server
  certificate file with a CA bundle is issued by one of them.
- An armored OpenPGP public key file is read packet by packet: a secret key packet is refused
  even under a `PUBLIC KEY BLOCK` header (clients receive these files).
- Every entry of `secrets` is stored encrypted in the stack file, and no plain setting holds a
  secret's value (a plan would show it mid-string).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from ..images import ImageRef
from .admin_files import PROJECT_DIR, confined, existing_file, read_small
from .collector import item_path, key_path

PEM_LABEL = re.compile(rb"-----BEGIN ([^-\r\n]*)-----")
ARMOR = re.compile(r"-----BEGIN PGP ([A-Z ]+)-----\r?\n(.*?)-----END PGP \1-----", re.S)
# OpenPGP packet tags a public key (certificate) is made of (RFC 4880 §4.3, RFC 9580 §5).
PUBLIC_PACKETS = {2: "signature", 6: "public key", 12: "trust", 13: "user id", 14: "public subkey",
                  17: "user attribute"}
SECRET_PACKETS = {5: "secret key", 7: "secret subkey"}
MIN_SECRET = 6
"""Shortest secret (or line of one) the check below looks for; the plan masks the same ones."""


def certificates(path: Path, value: str) -> list[x509.Certificate]:
    """The certificates of a PEM file that holds nothing else; ValueError naming the file otherwise."""
    data = read_small(path, value)
    others = sorted({label.decode(errors="replace") for label in PEM_LABEL.findall(data)} - {"CERTIFICATE"})
    if others:
        raise ValueError(f"{value!r} holds a {others[0]} block; a certificate file holds certificates only "
                         "(a private key goes in `secrets`)")
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        found = []
    if not found:
        raise ValueError(f"{value!r} holds no PEM certificate; give the PEM file (chain allowed)")
    return found


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def certificate_file(value: str, info: Any) -> str:
    path = existing_file(value)
    certificates(path, value)
    return str(confined(path, value, info))


def ca_file(value: str, info: Any) -> str:
    path = existing_file(value)
    for certificate in certificates(path, value):
        if not is_ca(certificate):
            raise ValueError(f"{value!r}: {certificate.subject.rfc4514_string()} is not a CA certificate; give the "
                             "CA bundle clients trust")
    return str(confined(path, value, info))


def issued_by_bundle(cert_path: str, ca_path: str) -> bool:
    """Whether the server chain in `cert_path` ends in a certificate one of `ca_path` issued (or holds)."""
    chain = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())
    bundle = x509.load_pem_x509_certificates(Path(ca_path).read_bytes())
    for certificate in chain:
        for ca in bundle:
            if certificate == ca:
                return True
            try:
                certificate.verify_directly_issued_by(ca)
            except (InvalidSignature, ValueError, TypeError):  # another issuer, signature or key type
                continue
            return True
    return False


def private_key_matches(key_pem: str, cert_path: str) -> bool | None:
    """Whether the PEM private key is the certificate's (None: not a readable unencrypted PEM key)."""
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return None
    leaf = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())[0]
    raw = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(key.public_key().public_bytes(serialization.Encoding.DER, raw)
                == leaf.public_key().public_bytes(serialization.Encoding.DER, raw))


def _new_length(data: bytes, at: int) -> tuple[int, int, bool]:
    """(length, next offset, partial) of a new-format packet length at `at`."""
    first = data[at]
    if first < 192:
        return first, at + 1, False
    if first < 224:
        return ((first - 192) << 8) + data[at + 1] + 192, at + 2, False
    if first == 255:
        return int.from_bytes(data[at + 1:at + 5], "big"), at + 5, False
    return 1 << (first & 0x1F), at + 1, True


def packet_tags(data: bytes) -> Iterator[int]:
    """The tag of each OpenPGP packet in `data`; ValueError when the packets do not parse."""
    at = 0
    try:
        while at < len(data):
            header = data[at]
            if not header & 0x80:
                raise ValueError("not an OpenPGP packet")
            if header & 0x40:
                tag = header & 0x3F
                length, at, partial = _new_length(data, at + 1)
                while partial:
                    at += length
                    length, at, partial = _new_length(data, at)
            else:
                tag, kind = (header >> 2) & 0x0F, header & 0x03
                if kind == 3:
                    length, at = len(data) - at - 1, at + 1
                else:
                    size = 1 << kind
                    length, at = int.from_bytes(data[at + 1:at + 1 + size], "big"), at + 1 + size
            if at + length > len(data):
                raise ValueError("a packet runs past the end of the key")
            yield tag
            at += length
    except IndexError:
        raise ValueError("the key data ends inside a packet header") from None


def _armored_bodies(text: str, value: str) -> Iterator[bytes]:
    blocks = ARMOR.findall(text)
    if not blocks or len(blocks) != text.count("-----BEGIN "):
        raise ValueError(f"{value!r} is not an armored OpenPGP public key; export one with `gpg --armor --export`")
    for label, body in blocks:
        if label != "PUBLIC KEY BLOCK":
            raise ValueError(f"{value!r} is not an armored OpenPGP public key alone: it holds a PGP {label} "
                             "(export with `gpg --armor --export`, never --export-secret-keys)")
        lines = body.splitlines()
        start = lines.index("") + 1 if "" in lines else 0  # armor headers end at the first blank line
        data = "".join(line.strip() for line in lines[start:] if not line.startswith("="))
        try:
            yield base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{value!r}: its armored key is not valid base64") from None


def pgp_public_key_file(value: str, info: Any) -> str:
    path = existing_file(value)
    text = read_small(path, value).decode(errors="replace")
    for body in _armored_bodies(text, value):
        try:
            tags = list(packet_tags(body))
        except ValueError as error:
            raise ValueError(f"{value!r}: {error}") from None
        secret = [SECRET_PACKETS[tag] for tag in tags if tag in SECRET_PACKETS]
        if secret:
            raise ValueError(f"{value!r} holds a {secret[0]} packet; a public key file holds public keys only "
                             "(export with `gpg --armor --export`, never --export-secret-keys)")
        unknown = sorted({tag for tag in tags if tag not in PUBLIC_PACKETS})
        if unknown or 6 not in tags:
            raise ValueError(f"{value!r} does not hold a public key alone (packet tags {unknown or tags})")
    return str(confined(path, value, info))


def stack_file(stack: str) -> Path:
    """Where the Pulumi CLI keeps the stack's configuration (`stackConfigDir` honoured)."""
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text()) or {}
    return PROJECT_DIR / (project.get("stackConfigDir") or ".") / f"Pulumi.{stack}.yaml"


def plain_secret_entries(stack: str, project: str) -> list[str] | None:
    """Names of the `secrets` entries the stack file stores in plain text (None: no stack file here).

    Pulumi marks a whole object secret when any part of it is; only the file says which entries are."""
    path = stack_file(stack)
    if not path.is_file():
        return None
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    entries = config.get(f"{project}:secrets", config.get("secrets")) or {}
    if not isinstance(entries, Mapping):
        return []
    return sorted(name for name, value in entries.items()
                  if not (isinstance(value, Mapping) and set(value) == {"secure"}))


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(key path, text) of every plain string in the settings, map keys included."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, ImageRef):
        yield path, str(node)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for field in dataclasses.fields(node):
            if field.name not in ("stack", "secret_values"):
                yield from _strings(getattr(node, field.name), key_path(path, field.name))
    elif isinstance(node, (tuple, list)):
        for index, item in enumerate(node):
            yield from _strings(item, f"{path}[{index}]")
    elif isinstance(node, Mapping):
        for key, item in node.items():
            where = item_path(path, str(key))
            yield where, str(key)
            yield from _strings(item, where)


def secret_pieces(secret_values: Mapping[str, str]) -> dict[str, str]:
    """Each secret, and each line of one, long enough to recognise, with the secret's name."""
    pieces: dict[str, str] = {}
    for name, value in secret_values.items():
        for piece in [value, *value.splitlines()]:
            piece = piece.strip()
            if len(piece) >= MIN_SECRET and not piece.startswith("-----"):  # PEM armour lines say nothing
                pieces.setdefault(piece, name)
    return pieces


class SecretsStaySecret:
    """No plain setting holds the value of a secret (or a line of one): refer to secrets by name."""

    def check(self, model: Any, path: str, root: Any) -> Iterator[str]:
        pieces = secret_pieces(root.secret_values)
        for where, text in _strings(model, path):
            for piece, name in pieces.items():
                if piece in text:  # never quote the value
                    yield (f"{where}: holds the value of secret {name!r}; a plain setting may not hold a secret "
                           "(refer to the secret by its name, or change the secret)")
                    break
