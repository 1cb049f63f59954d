"""Field types of the settings: each says once what a value may be and what to write instead.

Most are a `Pattern`: a regular expression the whole value must match and the message that
follows the quoted value when it does not (`'Bad_Name' is not a host name; use …`). The rest
need more than a pattern (an IP address, a file on the admin machine, a URL, an image
reference) and are small functions that raise `ValueError` with the same shape. Service
modules build their own types from `Pattern` too; the ones several services share live here.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Le
from cryptography import x509
from pydantic import AfterValidator, ConfigDict, GetCoreSchemaHandler, Strict
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, core_schema

from ..images import parse_image_ref

PROJECT = "airgap-infra"
PROJECT_DIR = Path(__file__).resolve().parents[2]

# Every settings model: unknown keys are errors, keys are camelCase in the stack file.
MODEL_CONFIG = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

# Where persistent data may live on a host: never `/`, `/etc`, `/usr`, `/tmp`, a home directory.
DATA_ROOTS = ("/srv", "/var/lib", "/var/opt", "/opt", "/data", "/mnt")


@dataclasses.dataclass(frozen=True)
class Pattern:
    """A field rule: the whole value matches `regex`; otherwise the problem reads `'<value>' <message>`."""

    regex: str
    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        compiled = re.compile(self.regex)

        def check(value: str) -> str:
            if not compiled.fullmatch(value):
                raise ValueError(f"{value!r} {self.message}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))


def one_of(values: Iterable[str], what: str) -> Pattern:
    """A `Pattern` that accepts exactly `values`, named `what` in the message."""
    choices = sorted(values)
    return Pattern("|".join(map(re.escape, choices)), f"is not {what}; use one of {', '.join(choices)}")


def _lower(value: str) -> str:
    return value.lower()


# DNS labels as Docker Distribution's reference grammar has them (components/images.py).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
DNS_NAME = rf"(?=.{{1,253}}\Z){DOMAIN}"

HostName = Annotated[str, Pattern(r"[a-z][a-z0-9-]{0,62}",
                                  "is not a host name; use lowercase letters, digits and '-', starting with a letter")]
SecretName = Annotated[str, Pattern(r"[A-Za-z][A-Za-z0-9_-]{0,63}",
                                    "is not a secret name; use letters, digits, '_' and '-', starting with a letter")]
DnsName = Annotated[str, Pattern(DNS_NAME, "is not a DNS name; use letters, digits, '-' and '.'"),
                    AfterValidator(_lower)]
Port = Annotated[int, Strict(), Ge(1), Le(65535)]
Flag = Annotated[bool, Strict()]
Days = Annotated[int, Strict(), Ge(1), Le(3650)]
Sha256 = Annotated[str, Pattern(r"[0-9a-f]{64}", "is not a sha256; give 64 lowercase hex digits (sha256sum's output)")]

AbsolutePath = Annotated[
    str,
    Pattern(r"/|(?:/(?!\.\.?(?:/|\Z))[^/]+)+", "is not an absolute, normalised path (no '..', no trailing '/')"),
    Pattern(r"[A-Za-z0-9._/+-]+", "may hold only letters, digits and . _ / + -"),
]
"""A path on a host: absolute, normalised, and safe to write into any file format unquoted."""

DataPath = Annotated[
    AbsolutePath,
    Pattern("(?:" + "|".join(map(re.escape, DATA_ROOTS)) + ")/.+",
            f"is outside the data roots; use a directory below one of {', '.join(DATA_ROOTS)}"),
]
"""Where a service keeps persistent data on its host."""

ProjectOutput = Annotated[
    str,
    Pattern(r"(?!/)(?!(?:.*/)?\.\.(?:/|\Z))[^\x00]+", "is not a relative path inside the project directory (no '..')"),
    Pattern(r"[A-Za-z0-9._/-]+", "may hold only letters, digits and . _ / -"),
]
"""A file the program writes on the admin machine, relative to the project directory."""


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not re.fullmatch(DNS_NAME, value):
        raise ValueError(f"{value!r} is neither an IP address nor a DNS name")
    return value.lower()


def _project_path(value: str) -> Path:
    return Path(value) if Path(value).is_absolute() else PROJECT_DIR / value


def project_file(value: str) -> str:
    """The absolute path of a file on the admin machine given relative to the project (or absolute)."""
    if "\x00" in value or not value:
        raise ValueError("must be a file path")
    if not _project_path(value).is_file():
        raise ValueError(f"file {value!r} not found (paths are relative to the project directory)")
    return str(_project_path(value))


def _certificate_file(value: str) -> str:
    path = project_file(value)
    try:
        certificates = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except ValueError:
        certificates = []
    if not certificates:
        raise ValueError(f"{value!r} holds no PEM certificate; give the PEM file (chain allowed)")
    return path


def _pgp_public_key_file(value: str) -> str:
    path = project_file(value)
    if "-----BEGIN PGP PUBLIC KEY BLOCK-----" not in Path(path).read_text(errors="replace"):
        raise ValueError(f"{value!r} is not an armored OpenPGP public key; export one with `gpg --armor --export`")
    return path


def _oci_layout(value: str) -> str:
    path = _project_path(value)
    if not (path / "oci-layout").is_file() or not (path / "index.json").is_file():
        raise ValueError(f"{value!r} is not an OCI image layout (no oci-layout and index.json in it)")
    if ":" in str(path):
        raise ValueError(f"{value!r}: an OCI layout path may not contain ':' (skopeo's oci: syntax)")
    return str(path)


def _url(value: str) -> str:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise ValueError(f"{value!r} is not an http:// or https:// URL without query or fragment")
    if not re.fullmatch(r"[A-Za-z0-9._~:/%+@-]+", value) or "/../" in parsed.path + "/":
        raise ValueError(f"{value!r} holds characters a URL here may not (spaces, quotes, '..', …)")
    return value.rstrip("/")


def _image_reference(value: str) -> str:
    parse_image_ref(value)  # its ImageRefError (a ValueError) says what is wrong
    return value


Address = Annotated[str, AfterValidator(_address)]
"""An IP address (normalised) or a DNS name (lowercased)."""
ProjectFile = Annotated[str, AfterValidator(project_file)]
"""A file on the admin machine, relative to the project directory (or absolute); becomes absolute."""
CertificateFile = Annotated[str, AfterValidator(_certificate_file)]
"""A project file holding at least one PEM certificate."""
PgpPublicKeyFile = Annotated[str, AfterValidator(_pgp_public_key_file)]
"""A project file holding an armored OpenPGP public key."""
OciLayout = Annotated[str, AfterValidator(_oci_layout)]
"""An OCI image layout directory on the admin machine, carried across the gap."""
Url = Annotated[str, AfterValidator(_url)]
"""An http(s) URL without query or fragment, safe to write unquoted; trailing '/' dropped."""
ImageReference = Annotated[str, AfterValidator(_image_reference)]
"""An image reference Docker Distribution accepts, pinned by tag or digest."""
