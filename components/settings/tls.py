"""`tls` of every service: the stack's own CA issues the certificate, or you give PEM files.

Registry and Harbor speak only HTTPS (`TlsSettings`); the web servers of the mirrors and the
file server may also serve plain HTTP (`ServedTlsSettings`, mode `none`). Both check the same
way: in `files` mode the certificate file must hold a PEM certificate and the key secret must be
set; in the other modes the file keys have no meaning and are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic.dataclasses import dataclass

from .fields import MODEL_CONFIG, CaFile, CertificateFile, Days, SecretName
from .key_material import issued_by_bundle, private_key_matches
from .rules import Root, Rules, SecretKind, only_with, required_if, secret_exists

PEM_PRIVATE_KEY = SecretKind(marker="PRIVATE KEY-----", what="a PEM private key",
                             command="pulumi config set --secret --path secrets.{name} < server.key")


class _MaterialMatches:
    """In `files` mode the key is the certificate's, and the certificate is issued by `caFile`."""

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        if model.mode != "files" or model.cert_file is None:
            return
        key = root.secret_values.get(model.key_secret or "")
        if key and private_key_matches(key, model.cert_file) is False:  # never quote the key
            yield (f"{path}.keySecret: secret {model.key_secret!r} is not the private key of certFile's certificate; "
                   "give the key the certificate was issued for")
        if model.ca_file is not None and not issued_by_bundle(model.cert_file, model.ca_file):
            yield (f"{path}.caFile: no certificate in it issued certFile's chain; give the CA bundle that "
                   "issued the server certificate")


TLS_RULES: Rules = (
    required_if("cert_file", when={"mode": "files"}, why="give a PEM path"),
    required_if("key_secret", when={"mode": "files"}, why="name the secret holding the key PEM"),
    only_with("cert_file", "ca_file", "key_secret", when={"mode": "files"}),
    secret_exists("key_secret", holds=PEM_PRIVATE_KEY),
    _MaterialMatches(),
)


@dataclass(frozen=True, config=MODEL_CONFIG)
class TlsSettings:
    """TLS for a registry: the stack CA or your PEM files."""

    RULES: ClassVar[Rules] = TLS_RULES

    mode: Literal["generate", "files"] = "generate"
    """`generate`: the stack's own CA issues the certificate; `files`: PEM files you provide."""
    cert_file: CertificateFile | None = None
    """`files` mode: server certificate (PEM, chain allowed), relative to the project."""
    ca_file: CaFile | None = None
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
    ca_file: CaFile | None = None
    key_secret: SecretName | None = None
    validity_days: Days = 825
