"""`fileServer`, `registryClients`, `trivyDb` and `ck8s`: what the cluster nodes fetch, and from where."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import MaxLen
from pydantic import AfterValidator
from pydantic.dataclasses import dataclass

from .fields import (
    MODEL_CONFIG,
    DataPath,
    DnsName,
    Flag,
    HostName,
    ImageReference,
    IpAddress,
    OciLayout,
    Pattern,
    Port,
    ProjectFile,
    ProjectOutput,
    Relay,
    Sha256,
    Url,
)
from .registry import normalised_registry
from .rules import (
    GIVEN,
    Root,
    Rules,
    at_least_one_on,
    digest_matches,
    exactly_one,
    host_exists,
    needs,
    refers_to,
    required_if,
    required_together,
    unique,
)
from .tls import ServedTlsSettings

ArtifactPath = Annotated[str, Pattern(
    r"(?!airgap-|SHA256SUMS\Z)[A-Za-z0-9][A-Za-z0-9._+-]*(?:/[A-Za-z0-9][A-Za-z0-9._+-]*)*",
    "is not an artifact path (relative, letters, digits, . _ + -, no '..', not SHA256SUMS or airgap-*)")]
PublicRegistry = Annotated[DnsName, Pattern(r".*\..*", "is not a registry host name (e.g. docker.io, quay.io)"),
                           AfterValidator(normalised_registry)]
"""A public registry's host, normalised as image references are (`index.docker.io` is docker.io)."""
Email = Annotated[str, Pattern(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
                               "is not an e-mail address; use name@domain")]

DEFAULT_UPSTREAMS = ("docker.io", "gcr.io", "ghcr.io", "quay.io", "registry.k8s.io")


@dataclass(frozen=True, config=MODEL_CONFIG)
class ArtifactSettings:
    """One file the file server serves, verified by its sha256 on arrival."""

    RULES: ClassVar[Rules] = (exactly_one("url", "file"), digest_matches("file", "sha256"))

    path: ArtifactPath
    """Where it is served, below the base URL (e.g. `falco/falco_rules.yaml`)."""
    sha256: Sha256
    url: Url | None = None
    """Fetched by the file server host from here (a transfer zone or mirror it can reach) ..."""
    file: ProjectFile | None = None
    """... or copied from this file on the admin machine (carried across the gap)."""


@dataclass(frozen=True, config=MODEL_CONFIG)
class FileServerSettings:
    RULES: ClassVar[Rules] = (host_exists("host"), unique("artifacts[*].path"))

    host: HostName
    hostname: DnsName | None = None
    port: Port = 8445
    tls: ServedTlsSettings = ServedTlsSettings()
    storage_path: DataPath = "/var/lib/airgap/files"
    artifacts: Annotated[tuple[ArtifactSettings, ...], MaxLen(1000)] = ()
    purge: Flag = False


@dataclass(frozen=True, config=MODEL_CONFIG)
class RegistryClientSettings:
    """A node whose container runtime pulls from the private registry, trusting its CA."""

    RULES: ClassVar[Rules] = (host_exists("host"), needs("registry"), at_least_one_on("docker", "containerd"),
                              unique("upstreams[*]", why="each registry gets one hosts.toml"))

    host: HostName
    docker: Flag = False
    """Docker: `certs.d/<registry>/ca.crt`; `daemon.json` merged, never overwritten."""
    containerd: Flag = False
    """containerd: `config_path` and a `hosts.toml` per upstream registry pointing at the private one."""
    upstreams: tuple[PublicRegistry, ...] = DEFAULT_UPSTREAMS
    """Public registries containerd resolves through the private registry."""
    insecure: Flag = False
    """List the registry in Docker's insecure-registries. Only if you must."""


class _LayoutBesideRegistryFill:
    """trivyDb's layout is copied next to registry.fill's on the registry host: their names differ."""

    def check(self, model: Any, path: str, root: Any) -> Iterator[str]:
        fill_layout = root.registry.fill.oci_layout if root.registry is not None else None
        if fill_layout and Path(fill_layout).name == Path(model.oci_layout).name:
            yield (f"{path}.ociLayout: its directory name is registry.fill.ociLayout's; rename one "
                   "(both are copied side by side to the registry host)")


@dataclass(frozen=True, config=MODEL_CONFIG)
class TrivyDbSettings:
    """Trivy's vulnerability databases, carried across the gap as an OCI layout."""

    RULES: ClassVar[Rules] = (needs("registry", why="it holds the databases"), _LayoutBesideRegistryFill())

    oci_layout: OciLayout
    db: ImageReference = "ghcr.io/aquasecurity/trivy-db:2"
    java_db: ImageReference = "ghcr.io/aquasecurity/trivy-java-db:1"


def _artifact_paths(root: Root) -> set[str] | None:
    files: FileServerSettings | None = getattr(root, "file_server", None)
    return {artifact.path for artifact in files.artifacts} if files is not None else None


@dataclass(frozen=True, config=MODEL_CONFIG)
class Ck8sSettings:
    """Compliant Kubernetes (air-gapped flavor) overrides rendered from the stack's outputs."""

    RULES: ClassVar[Rules] = (
        needs("file_server", field="falco_indexes", why="it serves the indexes"),
        needs("file_server", field="opensearch_plugins", why="it serves the plugins"),
        needs("file_server", field="falco_driver", equals="kmod", why="it serves the driver modules"),
        refers_to("falco_indexes[*]", _artifact_paths, "fileServer artifact at"),
        refers_to("opensearch_plugins[*]", _artifact_paths, "fileServer artifact at"),
        required_together("dns_zone", "dns_servers"),
        required_if("smtp_smarthost", when={"alert_email": GIVEN}, why="host:port of the internal mail relay"),
    )

    output_dir: ProjectOutput | None = None
    """Write `common-config.yaml` and `sc-config.yaml` fragments here (relative to the project)."""
    falco_driver: Literal["modern-bpf", "kmod"] = "modern-bpf"
    """`modern-bpf` needs no driver download; `kmod` downloads modules from the file server."""
    falco_driver_path: ArtifactPath = "falco/driver"
    """`kmod`: the file server path holding the driver modules."""
    falco_indexes: tuple[ArtifactPath, ...] = ()
    """File server paths of custom falcoctl indexes (empty: artifact install off)."""
    opensearch_plugins: tuple[ArtifactPath, ...] = ()
    """File server paths of OpenSearch plugin zips."""
    dns_zone: DnsName | None = None
    """Internal DNS zone node-local-dns forwards to `dns_servers`."""
    dns_servers: tuple[IpAddress, ...] = ()
    alert_email: Email | None = None
    """Where Alertmanager sends alerts (through `smtp_smarthost`)."""
    smtp_smarthost: Relay | None = None
    """`host:port` of the internal mail relay (`[v6]:port` for an IPv6 address)."""
    smtp_from: Email | None = None
