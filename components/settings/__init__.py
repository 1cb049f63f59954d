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
from .harbor import HarborSettings
from .hosts import HostSettings
from .mattermost import MattermostKubernetesSettings, MattermostS3Settings, MattermostSettings
from .mirrors import AptMirrorSettings, AptRepoSettings, MirrorClientSettings, RpmMirrorSettings, RpmRepoSettings
from .registry import DockerRuntimeSettings, FillSettings, RegistrySettings, RegistryUser, RegistryUserName
from .rules import Rules, collect, distinct_ports, needs, unique
from .tls import ServedTlsSettings, TlsSettings


class SettingsError(ValueError):
    """Invalid stack configuration; `problems` is a list of `key.path: message`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  " + "\n  ".join(problems))


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
    if problems:
        raise SettingsError(problems)
    return settings


def _configured_keys() -> set[str]:
    """Top-level keys set in this project's namespace (to catch misspelt ones)."""
    prefix = f"{PROJECT}:"
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    return {key[len(prefix):] for key in keys if key.startswith(prefix)}


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
