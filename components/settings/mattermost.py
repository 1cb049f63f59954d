"""`mattermost`: Mattermost with every internet-reaching feature off, on Kubernetes or Docker."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal

from annotated_types import Ge, Le
from pydantic import AfterValidator, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from ..render.mattermost import AIRGAP_KEYS, link_stays_inside
from .fields import (
    MODEL_CONFIG,
    AbsolutePath,
    DataPath,
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
from .s3_driver import S3_BUCKET

K8sName = Annotated[str, Pattern(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?",
                                 "is not a Kubernetes name; use lowercase letters, digits and '-'")]
K8sVersion = Annotated[str, Pattern(r"1\.[0-9]{2}\.[0-9]+", "is not a Kubernetes version; write it like 1.30.0")]
S3Bucket = Annotated[str, S3_BUCKET]
S3Region = Annotated[str, Pattern(r"(?:[a-z]{2}(?:-[a-z0-9]+)+)?", "is not an S3 region (e.g. us-east-1), or empty")]
AirgapKey = Annotated[str, one_of(AIRGAP_KEYS, "an air-gap setting")]


_URL = TypeAdapter(Url)


def _internal_link(value: str) -> str:
    if value.startswith("/"):
        if not re.fullmatch(r"/[A-Za-z0-9._~/%+-]*", value) or "/../" in value + "/":
            raise ValueError(f"{value!r} holds characters a site path here may not (spaces, quotes, '..', …)")
        return value
    try:
        value = _URL.validate_python(value)  # an http(s) URL, safe to write, as every URL here
    except ValidationError as error:
        raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
    if not link_stays_inside(value):
        raise ValueError(f"{value!r} points at Mattermost's own site; give an internal page, or leave it empty")
    return value


InternalLink = Annotated[str, AfterValidator(_internal_link)]
"""A link users see: site-relative (`/…`) or an internal http(s) URL."""
SupportAddress = Annotated[str, Pattern(r"[^@\s\\\"'`$]+@[A-Za-z0-9.-]+",
                                        "is not an e-mail address; write it like help@corp.example")]


@dataclass(frozen=True, config=MODEL_CONFIG)
class MattermostLinks:
    """Where the links users see lead. Unset, each is hidden, except the terms of service, which
    Mattermost puts back to its own site when empty: it stays on the site's root."""

    terms_of_service: InternalLink = "/"
    privacy_policy: InternalLink | None = None
    about: InternalLink | None = None
    help: InternalLink | None = None
    report_a_problem: InternalLink | None = None
    support_email: SupportAddress | None = None
    app_download: InternalLink | None = None
    """Where users get the desktop and mobile apps inside the gap (e.g. the file server)."""
    android_app_download: InternalLink | None = None
    ios_app_download: InternalLink | None = None

    def config(self) -> dict[str, str]:
        """The given links by Mattermost config path."""
        given = {"SupportSettings.TermsOfServiceLink": self.terms_of_service,
                 "SupportSettings.PrivacyPolicyLink": self.privacy_policy,
                 "SupportSettings.AboutLink": self.about, "SupportSettings.HelpLink": self.help,
                 "SupportSettings.ReportAProblemLink": self.report_a_problem,
                 "SupportSettings.SupportEmail": self.support_email,
                 "NativeAppSettings.AppDownloadLink": self.app_download,
                 "NativeAppSettings.AndroidAppDownloadLink": self.android_app_download,
                 "NativeAppSettings.IosAppDownloadLink": self.ios_app_download}
        return {key: value for key, value in given.items() if value is not None}


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
    """`fileStorage: local`: the data folder as Mattermost sees it (in its container or pod)."""
    docker_data_path: DataPath = "/srv/mattermost/data"
    """`docker` target with `fileStorage: local`: the Docker host's folder mounted at `localPath`."""
    s3: MattermostS3Settings | None = None
    kubernetes: MattermostKubernetesSettings = MattermostKubernetesSettings()
    docker_host: HostName | None = None
    """`docker` target: the host whose Docker runs the container (reached over SSH)."""
    port: Port = 8065
    links: MattermostLinks = MattermostLinks()
    """Internal pages for the product's own links (help, about, terms, …); unset ones are hidden."""
    overrides: Mapping[AirgapKey, str | int | bool] = Field(default_factory=dict)
    """Explicit values for air-gap settings, plugin ones included (reported by the policy pack)."""
