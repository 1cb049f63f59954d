"""Stack settings: the only reader of `pulumi.Config`.

Every key of a `Pulumi.<env>.yaml` is read here once, checked, and returned as frozen typed
models. Anything wrong (unknown keys, bad hosts, ports, paths, image references, missing or
plain-text secrets) raises `SettingsError` listing every problem as `key.path: what is wrong;
what is allowed`, before the program creates a single resource. Secret values stay Pulumi
secrets: models hold only the *names* of secrets, and `Settings.secret(name)` hands out an
`Output` marked secret.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import posixpath
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Mapping

import pulumi
from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import AfterValidator, Field, Strict, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass

from ..images import ImageRef, ImageRefError, parse_image_ref, DOMAIN
from .fields import DATA_ROOTS, MODEL_CONFIG, PROJECT, PROJECT_DIR, HostName, ImageReference, Port, SecretName, Sha256
from .files import (
    DEFAULT_UPSTREAMS,
    ArtifactSettings,
    Ck8sSettings,
    FileServerSettings,
    RegistryClientSettings,
    TrivyDbSettings,
)
from .hosts import HostSettings
from .mirrors import AptMirrorSettings, AptRepoSettings, MirrorClientSettings, RpmMirrorSettings, RpmRepoSettings
from .registry import DockerRuntimeSettings, FillSettings, RegistrySettings, RegistryUser, RegistryUserName
from .rules import Rules, collect, distinct_ports, needs, unique
from .tls import ServedTlsSettings, TlsSettings


class SettingsError(ValueError):
    """Invalid stack configuration; `problems` is a list of `key.path: message`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  " + "\n  ".join(problems))


# --- field checks -------------------------------------------------------------------------

def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if len(value) > 253 or not DOMAIN.match(value) or ":" in value:
        raise ValueError(f"{value!r} is neither an IP address nor a DNS name")
    return value.lower()


def _dns_name(value: str) -> str:
    if len(value) > 253 or ":" in value or not DOMAIN.match(value):
        raise ValueError(f"{value!r} is not a DNS name (letters, digits, '-' and '.')")
    return value.lower()


def _data_path(value: str) -> str:
    _absolute_path(value)
    if not any(value == root or value.startswith(root + "/") for root in DATA_ROOTS) or value in DATA_ROOTS:
        raise ValueError(f"{value!r} is outside the data roots; use a directory below one of {', '.join(DATA_ROOTS)}")
    return value


def _absolute_path(value: str) -> str:
    if not value.startswith("/") or posixpath.normpath(value) != value or "/../" in value + "/":
        raise ValueError(f"{value!r} must be an absolute, normalised path (no '..', no trailing '/')")
    if not re.fullmatch(r"[A-Za-z0-9._/+-]+", value):
        raise ValueError(f"{value!r} may hold only letters, digits and . _ / + -")
    return value


def _project_file(value: str) -> str:
    """A path on the admin machine, relative to the project directory (or absolute)."""
    if "\x00" in value or not value:
        raise ValueError("must be a file path")
    path = Path(value) if Path(value).is_absolute() else PROJECT_DIR / value
    if not path.is_file():
        raise ValueError(f"file {value!r} not found (paths are relative to the project directory)")
    return str(path)


def _project_output(value: str) -> str:
    """A file the program writes on the admin machine: relative, inside the project directory."""
    if not value or value.startswith("/") or ".." in Path(value).parts or "\x00" in value:
        raise ValueError(f"{value!r} must be a relative path inside the project directory, without '..'")
    if not re.fullmatch(r"[A-Za-z0-9._/-]+", value):
        raise ValueError(f"{value!r} may hold only letters, digits and . _ / -")
    return value


def _oci_layout(value: str) -> str:
    path = Path(value) if Path(value).is_absolute() else PROJECT_DIR / value
    if not (path / "oci-layout").is_file() or not (path / "index.json").is_file():
        raise ValueError(f"{value!r} is not an OCI image layout (no oci-layout and index.json in it)")
    if ":" in str(path):
        raise ValueError(f"{value!r}: an OCI layout path may not contain ':' (skopeo's oci: syntax)")
    return str(path)


def _repo_url(value: str) -> str:
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.query or parsed.fragment:
        raise ValueError(f"{value!r} must be an http:// or https:// URL without query or fragment")
    if not re.fullmatch(r"[A-Za-z0-9._~:/%+@-]+", value) or "/../" in parsed.path + "/":
        raise ValueError(f"{value!r} holds characters a repository URL may not (spaces, quotes, '..', …)")
    return value.rstrip("/")


# --- models -------------------------------------------------------------------------------

def _k8s_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise ValueError(f"{value!r} is not a Kubernetes name (lowercase letters, digits, '-')")
    return value


def _k8s_version(value: str) -> str:
    if not re.fullmatch(r"1\.\d{2}\.\d+", value):
        raise ValueError(f"{value!r} is not a Kubernetes version like 1.30.0")
    return value


def _harbor_archive(value: str) -> str:
    path = _project_file(value)
    if not re.fullmatch(r"harbor-offline-installer-v\d+\.\d+\.\d+\.tgz", Path(path).name):
        raise ValueError(f"{value!r} is not named like Harbor's offline installer (harbor-offline-installer-vX.Y.Z.tgz)")
    return path


@dataclass(frozen=True, config=MODEL_CONFIG)
class HarborSettings:
    """Harbor from its offline installer (instead of, or beside, Docker Distribution)."""

    host: HostName
    installer: Annotated[str, AfterValidator(_harbor_archive)]
    """The offline installer archive, carried across the gap."""
    installer_sha256: Sha256
    hostname: Annotated[str, AfterValidator(_dns_name)] | None = None
    port: Port = 443
    tls: TlsSettings = TlsSettings()
    data_volume: Annotated[str, AfterValidator(_data_path)] = "/data/harbor"
    admin_password_secret: SecretName = "harborAdminPassword"
    database_password_secret: SecretName = "harborDatabasePassword"
    robot_name: RegistryUserName = "airgap-pull"
    robot_secret: SecretName = "harborRobotSecret"
    """The robot account's secret: clients pull with it (it becomes the pull secret)."""
    s3: Mapping[str, str | int | bool] = Field(default_factory=dict)
    """External storage: distribution s3 driver parameters (bucket, region, regionendpoint, …)."""
    s3_secret_key_secret: SecretName | None = None
    fill: FillSettings | None = FillSettings()
    """Copy the stack's images into Harbor (one project per source registry, plus `library`);
    null leaves Harbor empty."""
    purge: Annotated[bool, Strict()] = False


@dataclass(frozen=True, config=MODEL_CONFIG)
class MattermostS3Settings:
    endpoint: str
    bucket: str
    region: str = ""
    ssl: Annotated[bool, Strict()] = True
    access_key_secret: SecretName = "mattermostS3AccessKey"
    secret_key_secret: SecretName = "mattermostS3SecretKey"


@dataclass(frozen=True, config=MODEL_CONFIG)
class MattermostKubernetesSettings:
    namespace: Annotated[str, AfterValidator(_k8s_name)] = "mattermost"
    mode: Literal["helm", "operator"] = "helm"
    chart_archive: Annotated[str, AfterValidator(_project_file)] | None = None
    """`helm` mode: the mattermost-team-edition or -enterprise-edition chart .tgz, carried across."""
    kubernetes_version: Annotated[str, AfterValidator(_k8s_version)] = "1.30.0"
    """Cluster version the objects are validated against."""
    replicas: Annotated[int, Strict(), Ge(1), Le(20)] = 1
    kubeconfig_secret: SecretName | None = None
    """Entry of `secrets` holding the kubeconfig; without it the admin machine's current context."""


@dataclass(frozen=True, config=MODEL_CONFIG)
class MattermostSettings:
    target: Literal["kubernetes", "docker"]
    image: str
    """A Mattermost image listed in `images` (it is pulled from the private registry)."""
    site_url: Annotated[str, AfterValidator(_repo_url)]
    database_secret: SecretName = "mattermostDatabaseUrl"
    """PostgreSQL connection string (postgres://user:pass@host:5432/db?sslmode=…), a secret."""
    file_storage: Literal["s3", "local"] = "s3"
    local_path: Annotated[str, AfterValidator(_absolute_path)] = "/mattermost/data"
    s3: MattermostS3Settings | None = None
    kubernetes: MattermostKubernetesSettings = MattermostKubernetesSettings()
    docker_host: HostName | None = None
    """`docker` target: the host whose Docker runs the container (reached over SSH)."""
    port: Port = 8065
    overrides: Mapping[str, str | int | bool] = Field(default_factory=dict)
    """Explicit values for air-gap settings (reported by the policy pack)."""


# --- the settings object ------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the program needs, checked."""

    RULES: ClassVar[Rules] = (
        needs("registry", field="images", why="it holds the images"),
        unique("images[*]"),
        unique("mirror_clients[*].host"),
        unique("registry_clients[*].host"),
        distinct_ports("registry", "apt_mirror", "rpm_mirror", "file_server", "harbor"),
    )

    stack: str
    hosts: Mapping[str, HostSettings]
    registry: RegistrySettings | None
    images: tuple[ImageRef, ...]
    apt_mirror: AptMirrorSettings | None = None
    rpm_mirror: RpmMirrorSettings | None = None
    mirror_clients: tuple[MirrorClientSettings, ...] = ()
    file_server: FileServerSettings | None = None
    registry_clients: tuple[RegistryClientSettings, ...] = ()
    trivy_db: TrivyDbSettings | None = None
    ck8s: Ck8sSettings | None = None
    harbor: HarborSettings | None = None
    mattermost: MattermostSettings | None = None
    secret_values: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)

    def secret(self, name: str) -> pulumi.Output[str]:
        """The named secret as a Pulumi secret Output."""
        return pulumi.Output.secret(self.secret_values[name])

    def needs_stack_ca(self) -> bool:
        """Whether any service takes its certificate from the stack's own CA."""
        served = [m.tls.mode for m in (self.apt_mirror, self.rpm_mirror, self.file_server, self.harbor,
                                       self.registry) if m is not None]
        return "generate" in served

    def harbor_endpoint(self) -> str:
        assert self.harbor is not None
        host = self.harbor.hostname or self.hosts[self.harbor.host].address
        return host if self.harbor.port == 443 else f"{host}:{self.harbor.port}"

    def registry_endpoint(self) -> str:
        """`hostname:port` clients use for the private registry."""
        assert self.registry is not None
        host = self.registry.hostname or self.hosts[self.registry.host].address
        return f"{host}:{self.registry.port}"


TOP_LEVEL = {
    "hosts": TypeAdapter(dict[HostName, HostSettings]),
    "registry": TypeAdapter(RegistrySettings | None),
    "images": TypeAdapter(tuple[ImageReference, ...]),
    "aptMirror": TypeAdapter(AptMirrorSettings | None),
    "rpmMirror": TypeAdapter(RpmMirrorSettings | None),
    "mirrorClients": TypeAdapter(tuple[MirrorClientSettings, ...]),
    "fileServer": TypeAdapter(FileServerSettings | None),
    "registryClients": TypeAdapter(tuple[RegistryClientSettings, ...]),
    "trivyDb": TypeAdapter(TrivyDbSettings | None),
    "ck8s": TypeAdapter(Ck8sSettings | None),
    "harbor": TypeAdapter(HarborSettings | None),
    "mattermost": TypeAdapter(MattermostSettings | None),
    "secrets": None,
}
# Components configured by one object: `{}` (their default in Pulumi.yaml) leaves them out.
OPTIONAL_OBJECTS = ("registry", "aptMirror", "rpmMirror", "fileServer", "trivyDb", "ck8s", "harbor", "mattermost")
LISTS = ("images", "mirrorClients", "registryClients")


def load(config: pulumi.Config | None = None) -> Settings:
    """Read and check the whole stack configuration; raise SettingsError listing every problem."""
    config = config or pulumi.Config()
    problems: list[str] = []
    raw = {key: config.get_object(key) for key in TOP_LEVEL}

    for key in sorted(_configured_keys()):
        if key not in TOP_LEVEL:
            problems.append(f"{key}: unknown key; known keys are {', '.join(sorted(TOP_LEVEL))}")

    parsed: dict[str, Any] = {}
    failed: set[str] = set()  # sections already reported; cross-checks skip them
    for key, adapter in TOP_LEVEL.items():
        if adapter is None:
            continue
        value = raw[key]
        if key in OPTIONAL_OBJECTS and value == {}:
            value = None
        elif value is None and key not in OPTIONAL_OBJECTS:
            value = [] if key in LISTS else {}
        try:
            parsed[key] = adapter.validate_python(value)
        except ValidationError as error:
            problems.extend(_describe(key, error))
            failed.add(key)

    secrets_value = raw["secrets"]
    if secrets_value is None:
        secrets_value = {}
    if not isinstance(secrets_value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in secrets_value.items()
    ):
        problems.append("secrets: must map names to strings, each set with "
                        "`pulumi config set --secret --path secrets.<name> <value>`")
        secrets_value = {}
    elif secrets_value and not pulumi.runtime.is_config_secret(f"{PROJECT}:secrets"):
        problems.append("secrets: holds plain-text values; set every entry with `pulumi config set --secret --path secrets.<name> …`")

    hosts = parsed.get("hosts", {})
    images = tuple(parse_image_ref(text) for text in parsed.get("images", ()))
    settings = Settings(
        stack=pulumi.get_stack(),
        hosts=hosts,
        registry=parsed.get("registry"),
        images=images,
        apt_mirror=parsed.get("aptMirror"),
        rpm_mirror=parsed.get("rpmMirror"),
        mirror_clients=parsed.get("mirrorClients", ()),
        file_server=parsed.get("fileServer"),
        registry_clients=parsed.get("registryClients", ()),
        trivy_db=parsed.get("trivyDb"),
        ck8s=parsed.get("ck8s"),
        harbor=parsed.get("harbor"),
        mattermost=parsed.get("mattermost"),
        secret_values=dict(secrets_value),
    )
    if not failed:
        problems.extend(collect(settings))
        problems.extend(_application_checks(hosts, parsed, secrets_value, images))
    if problems:
        raise SettingsError(problems)
    return settings


def _configured_keys() -> set[str]:
    """Top-level keys set in this project's namespace (to catch misspelt ones)."""
    prefix = f"{PROJECT}:"
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    return {key[len(prefix):] for key in keys if key.startswith(prefix)}


def _application_checks(hosts, parsed, secrets, images) -> list[str]:
    problems: list[str] = []

    def need(path: str, name: str | None) -> None:
        if name is not None and name not in secrets:
            problems.append(f"{path}: secret {name!r} is not set; run `pulumi config set --secret --path secrets.{name} …`")

    harbor = parsed.get("harbor")
    if harbor is not None:
        if harbor.host not in hosts:
            problems.append(f"harbor.host: no host named {harbor.host!r}")
        actual = _file_sha256(harbor.installer)
        if actual != harbor.installer_sha256:
            problems.append(f"harbor.installerSha256: {harbor.installer} has sha256 {actual}; the stack says {harbor.installer_sha256}")
        for key in ("admin_password_secret", "database_password_secret", "robot_secret", "s3_secret_key_secret"):
            need(f"harbor.{to_camel(key)}", getattr(harbor, key))
    mattermost = parsed.get("mattermost")
    if mattermost is not None:
        try:
            image = parse_image_ref(mattermost.image)
        except ImageRefError as error:
            problems.append(f"mattermost.image: {error}")
        else:
            if image not in images:
                problems.append(f"mattermost.image: {mattermost.image!r} is not in `images`; list it so it is in the private registry")
        if parsed.get("registry") is None and harbor is None:
            problems.append("mattermost: needs a registry or harbor to pull its image from")
        need("mattermost.databaseSecret", mattermost.database_secret)
        if mattermost.file_storage == "s3":
            if mattermost.s3 is None:
                problems.append("mattermost.s3: required with fileStorage: s3 (endpoint and bucket of the internal object store)")
            else:
                need("mattermost.s3.accessKeySecret", mattermost.s3.access_key_secret)
                need("mattermost.s3.secretKeySecret", mattermost.s3.secret_key_secret)
        if mattermost.target == "docker":
            if mattermost.docker_host is None:
                problems.append("mattermost.dockerHost: required with target: docker")
            elif mattermost.docker_host not in hosts:
                problems.append(f"mattermost.dockerHost: no host named {mattermost.docker_host!r}")
        elif mattermost.kubernetes.mode == "helm" and mattermost.kubernetes.chart_archive is None:
            problems.append("mattermost.kubernetes.chartArchive: required in helm mode (the chart .tgz carried across)")
        from ..render.mattermost import AIRGAP_KEYS  # noqa: PLC0415 - a table, not configuration
        for key in mattermost.overrides:
            if key not in AIRGAP_KEYS:
                problems.append(f"mattermost.overrides: {key!r} is not an air-gap setting; overridable: {', '.join(sorted(AIRGAP_KEYS))}")
    return problems


def _file_sha256(path: str) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(key: str, error: ValidationError) -> list[str]:
    """Turn pydantic errors into `key.path: message; allowed …` lines."""
    lines = []
    errors = error.errors(include_url=False)
    for item in errors:
        if item["type"] == "too_short" and any(len(other["loc"]) > len(item["loc"])
                                               and other["loc"][:len(item["loc"])] == item["loc"] for other in errors):
            continue  # pydantic also calls a list too short when its items failed; those say why
        location = key
        for part in item["loc"]:
            if isinstance(part, int):
                location += f"[{part}]"
            elif part != "[key]" and not str(part).startswith(("function-", "tuple[", "dict[", "nullable[")):
                location += f".{part}"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            message = "unknown key; check the spelling against the reference in README.md"
        lines.append(f"{location}: {message}")
    return lines
