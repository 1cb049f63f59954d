"""`mattermost`: Mattermost with every internet-reaching feature off, on Kubernetes or Docker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from annotated_types import Ge, Le
from pydantic import Field, Strict
from pydantic.dataclasses import dataclass

from ..render.mattermost import AIRGAP_KEYS
from .fields import (
    MODEL_CONFIG,
    AbsolutePath,
    Endpoint,
    Flag,
    HostName,
    ImageReference,
    Pattern,
    Port,
    ProjectFile,
    SecretName,
    Url,
    one_of,
)
from .rules import Rules, host_exists, image_listed, needs, required_if, secret_exists

K8sName = Annotated[str, Pattern(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?",
                                 "is not a Kubernetes name; use lowercase letters, digits and '-'")]
K8sVersion = Annotated[str, Pattern(r"1\.[0-9]{2}\.[0-9]+", "is not a Kubernetes version; write it like 1.30.0")]
S3Bucket = Annotated[str, Pattern(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
                                  "is not an S3 bucket name; use lowercase letters, digits, '.' and '-' (3-63)")]
S3Region = Annotated[str, Pattern(r"(?:[a-z]{2}(?:-[a-z0-9]+)+)?", "is not an S3 region (e.g. us-east-1), or empty")]
AirgapKey = Annotated[str, one_of(AIRGAP_KEYS, "an air-gap setting")]


@dataclass(frozen=True, config=MODEL_CONFIG)
class MattermostS3Settings:
    RULES: ClassVar[Rules] = (secret_exists("access_key_secret", "secret_key_secret"),)

    endpoint: Endpoint
    """`host[:port]` of the object store (Mattermost's AmazonS3Endpoint has no scheme)."""
    bucket: S3Bucket
    region: S3Region = ""
    ssl: Flag = True
    access_key_secret: SecretName = "mattermostS3AccessKey"
    secret_key_secret: SecretName = "mattermostS3SecretKey"


@dataclass(frozen=True, config=MODEL_CONFIG)
class MattermostKubernetesSettings:
    RULES: ClassVar[Rules] = (secret_exists("kubeconfig_secret"),)

    namespace: K8sName = "mattermost"
    mode: Literal["helm", "operator"] = "helm"
    chart_archive: ProjectFile | None = None
    """`helm` mode: the mattermost-team-edition or -enterprise-edition chart .tgz, carried across."""
    kubernetes_version: K8sVersion = "1.30.0"
    """Cluster version the objects are validated against."""
    replicas: Annotated[int, Strict(), Ge(1), Le(20)] = 1
    kubeconfig_secret: SecretName | None = None
    """Entry of `secrets` holding the kubeconfig; without it the admin machine's current context."""


@dataclass(frozen=True, config=MODEL_CONFIG)
class MattermostSettings:
    RULES: ClassVar[Rules] = (
        needs("registry", "harbor", why="its image is pulled from one"),
        image_listed("image"),
        secret_exists("database_secret"),
        required_if("s3", when={"file_storage": "s3"}, why="endpoint and bucket of the internal object store"),
        required_if("docker_host", when={"target": "docker"}, why="the host whose Docker runs Mattermost"),
        host_exists("docker_host"),
        required_if("kubernetes.chart_archive", when={"target": "kubernetes", "kubernetes.mode": "helm"},
                    why="the chart .tgz carried across"),
    )

    target: Literal["kubernetes", "docker"]
    image: ImageReference
    """A Mattermost image listed in `images` (it is pulled from the private registry)."""
    site_url: Url
    database_secret: SecretName = "mattermostDatabaseUrl"
    """PostgreSQL connection string (postgres://user:pass@host:5432/db?sslmode=…), a secret."""
    file_storage: Literal["s3", "local"] = "s3"
    local_path: AbsolutePath = "/mattermost/data"
    s3: MattermostS3Settings | None = None
    kubernetes: MattermostKubernetesSettings = MattermostKubernetesSettings()
    docker_host: HostName | None = None
    """`docker` target: the host whose Docker runs the container (reached over SSH)."""
    port: Port = 8065
    overrides: Mapping[AirgapKey, str | int | bool] = Field(default_factory=dict)
    """Explicit values for air-gap settings (reported by the policy pack)."""
