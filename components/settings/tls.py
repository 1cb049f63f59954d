"""`tls` of every service: the stack's own CA issues the certificate, or you give PEM files.

Registry and Harbor speak only HTTPS (`TlsSettings`); the web servers of the mirrors and the
file server may also serve plain HTTP (`ServedTlsSettings`, mode `none`). Both check the same
way: in `files` mode the certificate file must hold a PEM certificate and the key secret must be
set; in the other modes the file keys have no meaning and are refused.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic.dataclasses import dataclass

from .fields import MODEL_CONFIG, CertificateFile, Days, SecretName
from .rules import Rules, only_with, required_if, secret_exists

TLS_RULES: Rules = (
    required_if("cert_file", when={"mode": "files"}, why="give a PEM path"),
    required_if("key_secret", when={"mode": "files"}, why="name the secret holding the key PEM"),
    only_with("cert_file", "ca_file", "key_secret", when={"mode": "files"}),
    secret_exists("key_secret"),
)


@dataclass(frozen=True, config=MODEL_CONFIG)
class TlsSettings:
    """TLS for a registry: the stack CA or your PEM files."""

    RULES: ClassVar[Rules] = TLS_RULES

    mode: Literal["generate", "files"] = "generate"
    """`generate`: the stack's own CA issues the certificate; `files`: PEM files you provide."""
    cert_file: CertificateFile | None = None
    """`files` mode: server certificate (PEM, chain allowed), relative to the project."""
    ca_file: CertificateFile | None = None
    """`files` mode: CA bundle clients must trust (defaults to the certificate's own chain)."""
    key_secret: SecretName | None = None
    """`files` mode: name of the entry in `secrets` holding the private key PEM."""
    validity_days: Days = 825
    """`generate` mode: lifetime of the issued server certificate."""


@dataclass(frozen=True, config=MODEL_CONFIG)
class ServedTlsSettings:
    """TLS for a web server: the stack CA, your PEM files, or plain HTTP (`none`)."""

    RULES: ClassVar[Rules] = TLS_RULES

    mode: Literal["generate", "files", "none"] = "generate"
    cert_file: CertificateFile | None = None
    ca_file: CertificateFile | None = None
    key_secret: SecretName | None = None
    validity_days: Days = 825
