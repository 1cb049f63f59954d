"""`registry`: the private registry (Docker Distribution), its users and how it is filled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import AfterValidator, Field, Strict
from pydantic.dataclasses import dataclass

from ..images import ImageRefError, parse_image_ref
from .fields import (
    DOMAIN,
    MODEL_CONFIG,
    DataPath,
    DnsName,
    Flag,
    HostName,
    OciLayout,
    Pattern,
    Port,
    ProjectFile,
    ProjectOutput,
    SecretName,
)
from .rules import Rules, host_exists, required_if, secret_exists, unique
from .tls import TlsSettings


def _registry_host(value: str) -> str:
    """A registry as Docker names one: a host with a '.' or a port, or localhost."""
    try:
        parse_image_ref(f"{value}/x:1")
    except ImageRefError:
        valid = False
    else:
        valid = "." in value or ":" in value or value == "localhost"
    if not valid:
        raise ValueError(f"{value!r} is not a registry host[:port]; use a name like docker.io or localhost:5000")
    return value


RegistryHost = Annotated[str, AfterValidator(_registry_host)]
UpstreamMirror = Annotated[str, Pattern(rf"{DOMAIN}(?::[0-9]{{1,5}})?(?:/[a-z0-9]+(?:[._/-]+[a-z0-9]+)*)?",
                                        "is not host[:port][/path] (with a lowercase path)")]
RegistryUserName = Annotated[str, Pattern(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
                                          "is not a registry user name; use letters, digits, '.', '_' and '-'")]


@dataclass(frozen=True, config=MODEL_CONFIG)
class RegistryUser:
    RULES: ClassVar[Rules] = (secret_exists("password_secret"),)

    name: RegistryUserName
    """htpasswd user name."""
    password_secret: SecretName
    """Name of the entry in `secrets` that holds the password."""


@dataclass(frozen=True, config=MODEL_CONFIG)
class DockerRuntimeSettings:
    image_archive: ProjectFile | None = None
    """`runtime: docker`: `docker save` archive of the registry image, carried across the gap."""
    image: str = "registry:2"
    """The image name:tag inside that archive."""


@dataclass(frozen=True, config=MODEL_CONFIG)
class FillSettings:
    runner: Literal["host", "admin"] = "host"
    """Where skopeo runs: on the registry host, or on the admin machine."""
    parallel: Annotated[int, Strict(), Ge(1), Le(16)] = 4
    """Copies at once (never two that would upload the same missing layer)."""
    retries: Annotated[int, Strict(), Ge(0), Le(10)] = 3
    """Attempts after a failed copy, with back-off."""
    oci_layout: OciLayout | None = None
    """Copy from this OCI layout (carried across the gap) instead of from registries."""
    upstreams: Mapping[RegistryHost, UpstreamMirror] = Field(default_factory=dict)
    """Where each public registry is fetched from, e.g. `docker.io: mirror.corp:5000/dockerhub`."""
    lock_file: ProjectOutput | None = "image-lock.json"
    """Image lock written on the admin machine (relative to the project); null to skip."""


@dataclass(frozen=True, config=MODEL_CONFIG)
class RegistrySettings:
    RULES: ClassVar[Rules] = (
        host_exists("host"),
        unique("users[*].name"),
        required_if("docker.image_archive", when={"runtime": "docker"},
                    why="a `docker save` archive of the registry image"),
    )

    host: HostName
    """Name of the host (under `hosts`) that runs the registry."""
    hostname: DnsName | None = None
    """DNS name clients use; defaults to the host's address. Goes into the certificate."""
    port: Port = 5443
    """HTTPS port, bound on the host's address only."""
    runtime: Literal["package", "docker"] = "package"
    """`package`: Debian's docker-registry as a systemd unit; `docker`: registry:2 from an archive."""
    storage_path: DataPath = "/var/lib/airgap/registry"
    """Where blobs live. Never deleted unless `purge` is true."""
    tls: TlsSettings = TlsSettings()
    users: Annotated[tuple[RegistryUser, ...], MinLen(1), MaxLen(32)] = (
        RegistryUser(name="airgap", password_secret="registryPassword"),
    )
    """htpasswd users; the first one fills the registry and runs the health check."""
    docker: DockerRuntimeSettings = DockerRuntimeSettings()
    fill: FillSettings = FillSettings()
    purge: Flag = False
    """Delete the storage when the registry is removed from the stack."""
