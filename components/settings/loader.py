"""Reading the stack: the one reader of `pulumi.Config`, the top-level table, and `Settings`.

Each top-level key is parsed by its section's model; when every section parses, the collector
runs the rules every model declares. All problems, from every section, come out together in
one `SettingsError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import pulumi
from pydantic import TypeAdapter, ValidationError

from ..images import ImageRef, parse_image_ref
from ..render.formats.hosts import host_port, url_host
from .admin_files import ROOTS
from .collector import collect, item_path
from .fields import PROJECT, AdminRoot, HostName, ImageReference
from .files import Ck8sSettings, FileServerSettings, RegistryClientSettings, TrivyDbSettings
from .harbor import HarborSettings
from .hosts import HostSettings
from .key_material import SecretsStaySecret, plain_secret_entries
from .mattermost import MattermostSettings
from .mirrors import AptMirrorSettings, MirrorClientSettings, RpmMirrorSettings
from .network import NetworkSettings
from .registry import RegistrySettings
from .rules import Rules, distinct_ports, needs, unique
from .whole_stack import DistinctStorage, OneNetwork


class SettingsError(ValueError):
    """Invalid stack configuration; `problems` is a list of `key.path: message`."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid stack configuration:\n  " + "\n  ".join(problems))


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the program needs, checked."""

    RULES: ClassVar[Rules] = (
        needs("registry", field="images", why="it holds the images"),
        unique("images[*]"),
        unique("mirror_clients[*].host"),
        unique("registry_clients[*].host"),
        distinct_ports("registry", "apt_mirror", "rpm_mirror", "file_server", "harbor", "mattermost",
                       host_fields={"mattermost": "docker_host"}),
        DistinctStorage(),
        OneNetwork(),
        SecretsStaySecret(),
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
    network: NetworkSettings = NetworkSettings()
    admin_file_roots: tuple[str, ...] = ()
    """Directories on the admin machine, besides the project, the stack may read files from."""
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
        return url_host(host) if self.harbor.port == 443 else host_port(host, self.harbor.port)

    def registry_endpoint(self) -> str:
        """`hostname:port` clients use for the private registry (`[v6]:port` for an IPv6 address)."""
        assert self.registry is not None
        host = self.registry.hostname or self.hosts[self.registry.host].address
        return host_port(host, self.registry.port)


# Top-level key -> (Settings field, how its value is parsed). `secrets` is read apart: it stays secret.
# `adminFileRoots` comes first: the file fields of every other section are checked against it.
SECTIONS: dict[str, tuple[str, TypeAdapter[Any]]] = {
    "adminFileRoots": ("admin_file_roots", TypeAdapter(tuple[AdminRoot, ...])),
    "hosts": ("hosts", TypeAdapter(dict[HostName, HostSettings])),
    "registry": ("registry", TypeAdapter(RegistrySettings | None)),
    "images": ("images", TypeAdapter(tuple[ImageReference, ...])),
    "aptMirror": ("apt_mirror", TypeAdapter(AptMirrorSettings | None)),
    "rpmMirror": ("rpm_mirror", TypeAdapter(RpmMirrorSettings | None)),
    "mirrorClients": ("mirror_clients", TypeAdapter(tuple[MirrorClientSettings, ...])),
    "fileServer": ("file_server", TypeAdapter(FileServerSettings | None)),
    "registryClients": ("registry_clients", TypeAdapter(tuple[RegistryClientSettings, ...])),
    "trivyDb": ("trivy_db", TypeAdapter(TrivyDbSettings | None)),
    "ck8s": ("ck8s", TypeAdapter(Ck8sSettings | None)),
    "harbor": ("harbor", TypeAdapter(HarborSettings | None)),
    "mattermost": ("mattermost", TypeAdapter(MattermostSettings | None)),
    "network": ("network", TypeAdapter(NetworkSettings)),
}
KNOWN_KEYS = (*SECTIONS, "secrets")
# Components configured by one object: `{}` (their default in Pulumi.yaml) leaves them out.
OPTIONAL_OBJECTS = ("registry", "aptMirror", "rpmMirror", "fileServer", "trivyDb", "ck8s", "harbor", "mattermost")
LISTS = ("adminFileRoots", "images", "mirrorClients", "registryClients")


def load(config: pulumi.Config | None = None) -> Settings:
    """Read and check the whole stack configuration; raise SettingsError listing every problem."""
    config = config or pulumi.Config()
    problems = [f"{key}: unknown key; known keys are {', '.join(sorted(KNOWN_KEYS))}"
                for key in sorted(_configured_keys()) if key not in KNOWN_KEYS]

    parsed: dict[str, Any] = {}
    for key, (field, adapter) in SECTIONS.items():
        try:
            value = config.get_object(key)
        except pulumi.ConfigTypeError:
            problems.append(f"{key}: must be a {'list' if key in LISTS else 'map'}; see Pulumi.yaml for its shape")
            continue
        if key in OPTIONAL_OBJECTS and value == {}:
            value = None
        elif value is None and key not in OPTIONAL_OBJECTS:
            value = [] if key in LISTS else {}
        try:
            parsed[field] = adapter.validate_python(value, context={ROOTS: parsed.get("admin_file_roots", ())})
        except ValidationError as error:
            problems.extend(_describe(key, error))

    secrets = _secrets(config.get_object("secrets"), problems, pulumi.get_stack())
    settings = Settings(
        stack=pulumi.get_stack(),
        hosts=parsed.get("hosts", {}),
        registry=parsed.get("registry"),
        images=tuple(parse_image_ref(text) for text in parsed.get("images", ())),
        **{field: parsed[field] for field in ("apt_mirror", "rpm_mirror", "mirror_clients", "file_server",
                                              "registry_clients", "trivy_db", "ck8s", "harbor", "mattermost",
                                              "network", "admin_file_roots")
           if field in parsed},
        secret_values=secrets,
    )
    if len(parsed) == len(SECTIONS):  # the rules compare sections: they run once every section has parsed
        problems.extend(collect(settings))
    if problems:
        raise SettingsError(problems)
    return settings


def _secrets(value: object, problems: list[str], stack: str) -> dict[str, str]:
    """The `secrets` map, refused when it is not a map of strings or not stored as a secret: as a
    whole (what Pulumi says), and entry by entry (what the stack file says, when there is one)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        problems.append("secrets: must map names to strings, each set with "
                        "`pulumi config set --secret --path secrets.<name> <value>`")
        return {}
    if value and not pulumi.runtime.is_config_secret(f"{PROJECT}:secrets"):
        problems.append("secrets: holds plain-text values; set every entry with "
                        "`pulumi config set --secret --path secrets.<name> …`")
    else:
        for name in plain_secret_entries(stack, PROJECT) or ():
            if name in value:  # never quote the value
                problems.append(f"{item_path('secrets', name)}: stored in plain text in Pulumi.{stack}.yaml; set it "
                                f"with `pulumi config set --secret --path secrets.{name} …`")
    return dict(value)


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
        loc = item["loc"]
        if item["type"] == "too_short" and any(other["loc"][:len(loc)] == loc and len(other["loc"]) > len(loc)
                                               for other in errors):
            continue  # pydantic also calls a list too short when its items failed; those say why
        location = key
        for part in loc:
            if isinstance(part, int):
                location += f"[{part}]"
            elif part != "[key]" and not part.startswith(("function-", "tuple[", "dict[", "nullable[")):
                location = item_path(location, part)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            message = "unknown key; check the spelling against the reference in README.md"
        lines.append(f"{location}: {message}")
    return lines
