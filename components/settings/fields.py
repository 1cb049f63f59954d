"""Field types of the settings: each says once what a value may be and what to write instead.

Most are a `Pattern`: a regular expression the whole value must match and the message that
follows the quoted value when it does not (`'Bad_Name' is not a host name; use …`). The rest
need more than a pattern (an IP address, a file on the admin machine, a URL, an image
reference) and are small functions that raise `ValueError` with the same shape. Service
modules build their own types from `Pattern` too; the ones several services share live here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import AfterValidator, ConfigDict, GetCoreSchemaHandler, Strict
from pydantic.alias_generators import to_camel
from pydantic_core import CoreSchema, core_schema

from ..images import parse_image_ref
from ..render.formats.hosts import DNS_NAME, LABEL, dns_name
from ..render.formats.urls import check_url
from ..render.purge import DATA_ROOTS
from .addresses import endpoint, host_address, ip_address, relay
from .admin_files import PROJECT_DIR, admin_root, confined, project_file, project_output, resolved
from .key_material import ca_file, certificate_file, pgp_public_key_file

PROJECT = "airgap-infra"

# Every settings model: unknown keys are errors, keys are camelCase in the stack file.
MODEL_CONFIG = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)



@dataclasses.dataclass(frozen=True)
class Pattern:
    """A field rule: the whole value matches `regex`; otherwise the problem reads `'<value>' <message>`.

    Patterns are ASCII (`re.ASCII`): the tools that read these values are, so `\\d` and `\\w` never
    match a full-width digit or a Cyrillic letter that looks like a Latin one."""

    regex: str
    message: str

    def check(self, value: str) -> str:
        """`value` when it matches; ValueError `'<value>' <message>` otherwise."""
        if not re.fullmatch(self.regex, value, re.ASCII):
            raise ValueError(f"{value!r} {self.message}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))


def one_of(values: Iterable[str], what: str) -> Pattern:
    """A `Pattern` that accepts exactly `values`, named `what` in the message."""
    choices = sorted(values)
    return Pattern("|".join(map(re.escape, choices)), f"is not {what}; use one of {', '.join(choices)}")


# DNS labels as Docker Distribution's reference grammar has them (components/images.py).
_LABEL = LABEL
DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"

HostName = Annotated[str, Pattern(r"[a-z][a-z0-9-]{0,62}",
                                  "is not a host name; use lowercase letters, digits and '-', starting with a letter")]
SecretName = Annotated[str, Pattern(r"[A-Za-z][A-Za-z0-9_-]{0,63}",
                                    "is not a secret name; use letters, digits, '_' and '-', starting with a letter")]
DnsName = Annotated[str, Pattern(DNS_NAME, "is not a DNS name; use letters, digits, '-' and '.'"),
                    AfterValidator(dns_name)]
"""A DNS name (lowercased); never one that reads as an IPv4 address (`127.1`)."""
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
    Pattern("(?:" + "|".join(map(re.escape, DATA_ROOTS)) + ")/[^/].*",
            f"is outside the data roots; use a directory below one of {', '.join(DATA_ROOTS)}"),
]
"""Where a service keeps persistent data on its host."""

ProjectOutput = Annotated[
    str,
    Pattern(r"(?!/)(?!(?:.*/)?\.\.(?:/|\Z))[^\x00]+", "is not a relative path inside the project directory (no '..')"),
    Pattern(r"[A-Za-z0-9._/-]+", "may hold only letters, digits and . _ / -"),
    AfterValidator(project_output),
]
"""A file the program writes on the admin machine, relative to the project directory: never in a
hidden folder, never over the project's own files (admin_files.py)."""


def _oci_layout(value: str, info: Any) -> str:
    path = resolved(value)
    if not (path / "oci-layout").is_file() or not (path / "index.json").is_file():
        raise ValueError(f"{value!r} is not an OCI image layout (no oci-layout and index.json in it)")
    if ":" in str(path):
        raise ValueError(f"{value!r}: an OCI layout path may not contain ':' (skopeo's oci: syntax)")
    return str(confined(path, value, info))


def _url(value: str) -> str:
    return check_url(value).rstrip("/")


def _image_reference(value: str) -> str:
    parse_image_ref(value)  # its ImageRefError (a ValueError) says what is wrong
    return value


Address = Annotated[str, AfterValidator(host_address)]
"""An IP address (normalised) or a DNS name (lowercased) of one machine (addresses.py)."""
IpAddress = Annotated[str, AfterValidator(ip_address)]
"""An IP address (normalised) of one machine."""
Relay = Annotated[str, AfterValidator(relay)]
"""`host:port` of a service outside the stack (a mail relay); an IPv6 address in brackets."""
Endpoint = Annotated[str, AfterValidator(endpoint)]
"""`host` or `host:port` of a service outside the stack (an object store)."""
ProjectFile = Annotated[str, AfterValidator(project_file)]
"""A file on the admin machine, relative to the project directory (or absolute, below an
`adminFileRoots` entry); becomes absolute and resolved."""
AdminRoot = Annotated[str, AfterValidator(admin_root)]
"""A directory on the admin machine the stack may read files from, besides the project."""
CertificateFile = Annotated[str, AfterValidator(certificate_file)]
"""A project file holding PEM certificates and nothing else."""
CaFile = Annotated[str, AfterValidator(ca_file)]
"""A project file holding PEM CA certificates and nothing else."""
PgpPublicKeyFile = Annotated[str, AfterValidator(pgp_public_key_file)]
"""A project file holding armored OpenPGP public keys and nothing else."""
OciLayout = Annotated[str, AfterValidator(_oci_layout)]
"""An OCI image layout directory on the admin machine, carried across the gap."""
Url = Annotated[str, AfterValidator(_url)]
"""An http(s) URL without credentials, query or fragment, safe to write unquoted; trailing '/' dropped."""
ImageReference = Annotated[str, AfterValidator(_image_reference)]
"""An image reference Docker Distribution accepts, pinned by tag or digest."""

__all__ = [
    "DATA_ROOTS", "DOMAIN", "MODEL_CONFIG", "PROJECT", "PROJECT_DIR", "AbsolutePath", "Address", "AdminRoot",
    "CaFile", "CertificateFile", "DataPath", "Days", "DnsName", "Endpoint", "Flag", "HostName", "ImageReference",
    "IpAddress", "OciLayout", "Pattern", "PgpPublicKeyFile", "Port", "ProjectFile", "ProjectOutput", "Relay",
    "SecretName", "Sha256", "Url", "one_of", "project_file",
]
