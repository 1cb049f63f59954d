"""`registry`: the private registry (Docker Distribution), its users and how it is filled."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import AfterValidator, BeforeValidator, Field, Strict
from pydantic.dataclasses import dataclass

from ..images import ImageRefError, parse_image_ref
from ..render.registry_fill import source_registry
from .collector import item_path
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
from .rules import Root, Rules, host_exists, required_if, secret_exists, unique
from .tls import TlsSettings

_PROBE = "airgap/probe:1"  # a repository path no registry name can be mistaken for


def registry_name(value: str) -> str | None:
    """`value` as the stack's maps name a registry (render/registry_fill.py `registry_key`: lowercase,
    Docker Hub's legacy name as docker.io), or None when an image reference would not read it as a
    registry host at all."""
    try:
        ref = parse_image_ref(f"{value.lower()}/{_PROBE}")
    except (ImageRefError, ValueError):
        return None
    if ref.path != _PROBE.split(":")[0] or not ("." in ref.registry or ":" in ref.registry
                                                  or ref.registry == "localhost"):
        return None
    return ref.registry


def normalised_registry(value: str) -> str:
    """A registry as Docker names one (a host with a '.' or a port, or localhost), normalised by
    the image parser: `DOCKER.IO` and `index.docker.io` are docker.io."""
    name = registry_name(value)
    if name is None:
        raise ValueError(f"{value!r} is not a registry host[:port]; use a name like docker.io or localhost:5000")
    return name


def _upstream_mirror(value: str) -> str:
    """A mirror's first element must read as a registry: `mirror/x` would be Docker Hub's `mirror/x`."""
    if registry_name(value.split("/", 1)[0]) is None:
        raise ValueError(f"{value!r} does not start with a registry host (a name with a '.' or a port, or "
                         "localhost); skopeo would fetch it from Docker Hub")
    return value


def _one_key_per_registry(value: object) -> object:
    """Two keys the parser reads as one registry (`docker.io`, `DOCKER.IO`) would leave one unused."""
    if isinstance(value, Mapping):
        seen: dict[str, str] = {}
        for key in value:
            name = registry_name(key) if isinstance(key, str) else None
            if name is not None and name in seen:
                raise ValueError(f"{seen[name]!r} and {key!r} both name the registry {name}; keep one")
            if name is not None:
                seen[name] = key
    return value


RegistryHost = Annotated[str, AfterValidator(normalised_registry)]
UpstreamMirror = Annotated[str, Pattern(rf"{DOMAIN}(?::[0-9]{{1,5}})?(?:/[a-z0-9]+(?:[._/-]+[a-z0-9]+)*)?",
                                        "is not host[:port][/path] (with a lowercase path)"),
                           AfterValidator(_upstream_mirror)]
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


class _FetchedWhereMapped:
    """The fill never fetches from a registry the stack maps elsewhere: a mirror named for one
    registry that is itself the key of another mapping (`quay.io: docker.io/quay` while docker.io
    goes to a transfer mirror) would reach that registry directly."""

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        if model.oci_layout is not None:
            return
        for index, ref in enumerate(root.images):
            reached = source_registry(ref, model.upstreams)
            if reached in model.upstreams and registry_name(model.upstreams[reached].split("/", 1)[0]) != reached:
                yield (f"{item_path(path + '.upstreams', ref.registry)}: images[{index}] ({ref}) would be fetched "
                       f"from {reached}, which this stack maps to {model.upstreams[reached]}; map {ref.registry} "
                       "to the mirror itself")


@dataclass(frozen=True, config=MODEL_CONFIG)
class FillSettings:
    RULES: ClassVar[Rules] = (_FetchedWhereMapped(),)

    runner: Literal["host", "admin"] = "host"
    """Where skopeo runs: on the registry host, or on the admin machine."""
    parallel: Annotated[int, Strict(), Ge(1), Le(16)] = 4
    """Copies at once (never two that would upload the same missing layer)."""
    retries: Annotated[int, Strict(), Ge(0), Le(10)] = 3
    """Attempts after a failed copy, with back-off."""
    oci_layout: OciLayout | None = None
    """Copy from this OCI layout (carried across the gap) instead of from registries."""
    upstreams: Annotated[Mapping[RegistryHost, UpstreamMirror], BeforeValidator(_one_key_per_registry)] = Field(
        default_factory=dict)
    """Where each public registry is fetched from, e.g. `docker.io: mirror.corp:5000/dockerhub`; keys are
    normalised as image references are (`index.docker.io` is docker.io)."""
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
