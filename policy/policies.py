"""The air gap's policies: pure validators over resource inputs, and the CrossGuard policy objects
built on them. `__main__.py` only assembles the pack; the offline runner (`offline.py`) feeds the
same objects each stack's recorded resources.

In an air gap the worst mistakes are silent: an image pulled from a public registry, a URL that
phones home, an unsigned repository, a password in a script. Each policy names what is wrong and
how to fix it.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components.images import ImageRefError, host_and_port, parse_normalized, split_docker_domain

# --- defaults and configuration ---------------------------------------------------------------

DEFAULT_INTERNAL_SUFFIXES = (".internal", ".test", ".local", ".lan", ".corp", ".home.arpa", ".localdomain")
PUBLIC_REGISTRIES = ("docker.io", "index.docker.io", "registry-1.docker.io", "quay.io", "gcr.io", "ghcr.io",
                     "registry.k8s.io", "k8s.gcr.io", "mcr.microsoft.com", "public.ecr.aws", "registry.gitlab.com")

CONFIG_SCHEMA = PolicyConfigSchema(
    properties={
        "allowedRegistries": {"type": "array", "items": {"type": "string"},
                              "description": "host[:port] of the internal registries images may come from"},
        "internalDomains": {"type": "array", "items": {"type": "string"},
                            "description": "DNS suffixes that are inside the air gap (e.g. .corp.example)"},
        "allowPlainHttp": {"type": "array", "items": {"type": "string"},
                           "description": "hosts allowed to serve over plain HTTP"},
        "allowInsecureRegistries": {"type": "array", "items": {"type": "string"},
                                    "description": "registries allowed in Docker's insecure-registries"},
        "exceptions": {"type": "array", "items": {"type": "string"},
                       "description": "resource names (or URN suffixes) this policy skips"},
    },
)


@dataclass(frozen=True)
class Settings:
    allowed_registries: tuple[str, ...] = ()
    internal_suffixes: tuple[str, ...] = DEFAULT_INTERNAL_SUFFIXES
    allow_plain_http: tuple[str, ...] = ()
    allow_insecure_registries: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        suffixes = tuple("." + d.lstrip(".") for d in config.get("internalDomains", ()) or ())
        return cls(
            allowed_registries=tuple(config.get("allowedRegistries", ()) or ()),
            internal_suffixes=DEFAULT_INTERNAL_SUFFIXES + suffixes,
            allow_plain_http=tuple(config.get("allowPlainHttp", ()) or ()),
            allow_insecure_registries=tuple(config.get("allowInsecureRegistries", ()) or ()),
            exceptions=tuple(config.get("exceptions", ()) or ()),
        )


# --- walking resource inputs ------------------------------------------------------------------

def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in the inputs, with its property path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key in value:
            yield from strings(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence):
        for index, item in enumerate(value):
            yield from strings(item, f"{path}[{index}]")


def is_internal_host(host: str, settings: Settings) -> bool:
    host = host.strip("[]").lower().rstrip(".")
    try:
        ip = ipaddress.ip_address(host)
        return ip.is_private or ip.is_loopback or ip.is_link_local
    except ValueError:
        pass
    return "." not in host or host.endswith(settings.internal_suffixes) or host == "localhost"


# --- images ------------------------------------------------------------------------------------

def is_image_ref(text: str) -> bool:
    """Whether Docker reads `text` as an image reference: Distribution's grammar and Docker Hub
    defaults, as components.images implements them (a tag or digest is not required here)."""
    try:
        parse_normalized(text)
    except ImageRefError:
        return False
    return True


def image_registry(ref: str) -> str:
    """The registry host a reference pulls from, lowercased (host names are case-insensitive).
    Docker's rule (components.images.split_docker_domain): a first element that is `localhost`,
    holds a dot or a colon, or has a capital is a host; anything else is Docker Hub (`nginx:1.25`
    means docker.io), and so is its old name index.docker.io."""
    return split_docker_domain(ref)[0].lower()


HUB_IMPLIED = " (no registry host means Docker Hub)"


def hub_implied(ref: str) -> bool:
    """Whether `ref` pulls from Docker Hub without naming it (`nginx:1.25`, `bitnami/redis:7`)."""
    first, slash, _ = ref.partition("/")
    return image_registry(ref) == "docker.io" and not (slash and first in ("docker.io", "index.docker.io"))


# `docker|podman|nerdctl run|pull|create … IMAGE` and `ctr … pull … IMAGE`: the last word of a
# script line, kept when it is an image reference.
CONTAINER_CLI_IMAGE = re.compile(r"\b(?:docker|podman|nerdctl)\s+(?:run|pull|create)\b[^\n]*?\s(\S+)[ \t]*(?:\n|$)")
CTR_PULL_IMAGE = re.compile(r"\bctr\b[^\n]*\bpull\b[^\n]*?\s(\S+)[ \t]*(?:\n|$)")


def workload_images(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(property path, image reference) of every container image a resource runs."""
    if resource_type.startswith("kubernetes:"):
        for path, value in strings(props):
            if re.search(r"(?:^|\.)(?:containers|initContainers|ephemeralContainers)\[\d+\]\.image$", path):
                yield path, value
        values = props.get("values") if resource_type == "kubernetes:helm.sh/v3:Release" else None
        if isinstance(values, Mapping) and isinstance(values.get("image"), Mapping):
            image = values["image"]
            if image.get("repository"):
                yield "values.image", f"{image['repository']}:{image.get('tag', 'latest')}"
        if resource_type.endswith(":Mattermost") and isinstance(props.get("spec"), Mapping):
            spec = props["spec"]
            if spec.get("image"):
                yield "spec.image", f"{spec['image']}:{spec.get('version', 'latest')}"
    elif resource_type in ("docker:index/container:Container", "docker:index/remoteImage:RemoteImage"):
        key = "image" if resource_type.endswith("Container") else "name"
        image = props.get(key)
        if isinstance(image, str) and not image.startswith("sha256:"):
            yield key, image
    elif resource_type.startswith("command:"):
        for field in ("create", "update"):
            script = props.get(field)
            if isinstance(script, str):
                for pattern in (CONTAINER_CLI_IMAGE, CTR_PULL_IMAGE):
                    for match in pattern.finditer(script):
                        if is_image_ref(match.group(1)):
                            yield field, match.group(1)


def check_internal_images(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list[str]:
    problems = []
    for path, ref in workload_images(resource_type, props):
        if ref.startswith("$") or "{" in ref:
            continue
        registry = image_registry(ref)
        if registry in settings.allowed_registries:
            continue
        implicit = HUB_IMPLIED if hub_implied(ref) else ""
        problems.append(f"{path}: image {ref!r} comes from {registry}{implicit}; pull it from an internal "
                        f"registry ({', '.join(settings.allowed_registries) or 'configure allowedRegistries'}) "
                        "after copying it in with the registry fill")
    return problems


def check_pinned_images(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list[str]:
    problems = []
    for path, ref in workload_images(resource_type, props):
        if "@sha256:" in ref:
            continue
        tag = ref.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            problems.append(f"{path}: image {ref!r} is not pinned; use a version tag or @sha256:… "
                            "(the image lock has the digest)")
    return problems


# --- endpoints ---------------------------------------------------------------------------------

URL = re.compile(r"\b(?P<scheme>https?|ftp|docker|oci)://(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::\d+)?")
# Fields that name things rather than reach them: image names in a fill plan, hosts.toml
# namespaces, comments in rendered files.
NAME_ONLY = re.compile(r'"source": "|^# ')


def check_public_endpoints(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list[str]:
    problems = []
    for path, text in strings(props):
        for line in text.splitlines() or [text]:
            if NAME_ONLY.search(line):
                continue
            for match in URL.finditer(line):
                host = match.group("host")
                if not is_internal_host(host, settings):
                    problems.append(f"{path}: {match.group(0)} is outside the air gap; use an internal mirror "
                                    "or add its domain to internalDomains if it is inside")
    for path, ref in workload_images(resource_type, props):
        registry = image_registry(ref)
        host = host_and_port(registry)[0]
        if not is_internal_host(host, settings):
            implicit = HUB_IMPLIED if hub_implied(ref) else ""
            problems.append(f"{path}: image {ref!r} would be pulled from {registry}{implicit}, outside the air gap")
    return sorted(set(problems))


# --- TLS ----------------------------------------------------------------------------------------

PLAIN_HTTP_CLIENT = re.compile(r"(?m)^(?:URIs:\s*|baseurl=|\s*deb\s+(?:\[[^\]]*\]\s+)?)(http://(?P<host>[^/:\s]+)[^\s]*)")


def check_tls(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list[str]:
    problems = []
    for path, text in strings(props):
        for match in PLAIN_HTTP_CLIENT.finditer(text):
            if match.group("host") not in settings.allow_plain_http:
                problems.append(f"{path}: clients reach {match.group(1)} over plain HTTP; serve it over HTTPS "
                                "(tls.mode generate or files) or list the host in allowPlainHttp")
        for match in re.finditer(r'"insecure-registries":\s*\[([^\]]*)\]', text):
            for registry in re.findall(r'"([^"]+)"', match.group(1)):
                if registry not in settings.allow_insecure_registries:
                    problems.append(f"{path}: {registry} is an insecure registry; give clients its CA "
                                    "(certs.d) instead, or list it in allowInsecureRegistries")
        if re.search(r"(?m)^airgap_docker_daemon_json \S+ \S+ yes$", text):
            problems.append(f"{path}: the registry is made insecure for Docker (registryClients[].insecure: true); "
                            "clients should trust its CA instead")
        for match in re.finditer(r'\[host\."http://([^/"]+)', text):
            if match.group(1) not in settings.allow_plain_http:
                problems.append(f"{path}: containerd pulls from http://{match.group(1)}; "
                                "use https with the registry's CA")
        if re.search(r"skip_verify\s*=\s*true|--insecure\b|--(?:src-|dest-)?tls-verify=false", text):
            problems.append(f"{path}: TLS verification is turned off; trust the service's CA instead")
    return problems


# --- signed repositories ------------------------------------------------------------------------

def check_signed_repositories(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list[str]:
    problems = []
    for path, text in strings(props):
        if re.search(r"(?mi)\[[^\]]*trusted=yes[^\]]*\]|^Trusted:\s*yes", text):
            problems.append(f"{path}: an apt source is trusted without a signature (trusted=yes); "
                            "use Signed-By with the mirror's key")
        for block in re.findall(r"(?ms)^Types:\s*deb.*?(?:\n\n|\Z)", text):
            if "Signed-By:" not in block:
                problems.append(f"{path}: a deb822 source has no Signed-By; pin the key that signs the mirror")
        for line in re.findall(r"(?m)^\s*deb\s+(?!\[[^\]]*signed-by=)[^\n]*http", text):
            problems.append(f"{path}: one-line apt source without signed-by: {line.strip()}; use deb822 with Signed-By")
        for section in re.findall(r"(?ms)^\[[^\]]+\]\n(?:(?!^\[).)*", text):
            if "baseurl=" in section and not re.search(r"(?m)^gpgcheck=1", section):
                problems.append(f"{path}: a .repo section without gpgcheck=1: {section.splitlines()[0]}; "
                                "packages must be checked")
        for repo in _unsigned_aptly_repos(text):
            problems.append(f"{path}: the aptly mirror {repo!r} ignores the upstream's signatures "
                            "(ignoreSignatures: true); give the upstream's key in keys instead")
    return problems


def _unsigned_aptly_repos(text: str) -> list[str]:
    """Repositories whose `aptly_repo` call (in a rendered update program) ignores signatures."""
    found = []
    for line in text.splitlines():
        if line.startswith("aptly_repo "):
            args = shlex.split(line)
            if len(args) > 7 and args[7] == "yes":  # NAME URL DIST ARCHS FILTER WITHDEPS IGNORESIG ...
                found.append(args[1])
    return found


# --- Mattermost ---------------------------------------------------------------------------------

def mattermost_env(resource_type: str, props: Mapping[str, Any]) -> dict[str, str | None] | None:
    env_list = None
    if resource_type == "kubernetes:helm.sh/v3:Release":
        values = props.get("values") or {}
        image = (values.get("image") or {}).get("repository", "") if isinstance(values, Mapping) else ""
        if "mattermost" in str(image):
            env_list = values.get("extraEnvVars") or []
    elif resource_type.endswith(":Mattermost"):
        env_list = (props.get("spec") or {}).get("mattermostEnv") or []
    elif resource_type == "docker:index/container:Container" and "mattermost" in str(props.get("name", "")):
        return dict(item.split("=", 1) for item in props.get("envs") or [] if "=" in item)
    if env_list is None:
        return None
    return {item["name"]: item.get("value") for item in env_list if isinstance(item, Mapping)}


def check_mattermost(resource_type: str, props: Mapping[str, Any], settings: Settings) -> tuple[list[str], list[str]]:
    """(mandatory problems, advisory reports of explicit overrides), setting by setting of the
    component's own table, plugin settings and states included; a link users see may point at any
    internal page instead."""
    from components.render.mattermost import AIRGAP_SETTINGS, OVERRIDES_ENV, link_stays_inside, value_in

    env = mattermost_env(resource_type, props)
    if env is None:
        return [], []
    overrides = set(json.loads(env.get(OVERRIDES_ENV) or "[]"))
    problems, reported = [], []
    for setting in AIRGAP_SETTINGS:
        value = value_in(env, setting)
        if value == setting.encoded:
            continue
        where = f"{setting.key} ({setting.env})" if setting.plugin else setting.env
        if setting.key in overrides:
            reported.append(f"{where} is {value!r} (air gap: {setting.encoded!r}) by an explicit override in the stack")
        elif setting.link and value is not None and link_stays_inside(value):
            continue
        elif setting.link:
            problems.append(f"{where} is {value!r}; a link users see must be empty, site-relative or an internal "
                            f"page, not Mattermost's own site (air gap: {setting.encoded!r})")
        else:
            problems.append(f"{where} is {value!r}; in an air gap it must be {setting.encoded!r} "
                            "(or overridden explicitly in mattermost.overrides, which this policy reports)")
    return problems, reported


# --- secrets ------------------------------------------------------------------------------------

SECRET_PATTERNS = (
    (re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"), "a private key"),
    (re.compile(r"-----BEGIN PGP PRIVATE KEY BLOCK-----"), "a GPG private key"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]{3,}@"), "a password in a URL"),
    (re.compile(r"(?i)\b(?:password|passwd|secret|token)\s*[=:]\s*['\"]?[^\s'\"$]{6,}"), "a password assignment"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key"),
)
SECRET_NAMES = re.compile(r"(?i)(password|passwd|secret|token|datasource|accesskey|private_?key|credentials)")
# Inputs that are the secret channels themselves: a step's stdin, a Secret's data, files a
# container receives, a provider's registry login, the TLS provider's own key inputs.
SECRET_CHANNELS = re.compile(r"^(stdin|data(\..*)?|stringData(\..*)?|uploads.*|registryAuth.*|kubeconfig|privateKey"
                             r"|connection\.privateKey|connection\.proxy\.privateKey|privateKeyPem|caPrivateKeyPem)$")


def check_plaintext_secrets(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list[str]:
    problems = []
    for path, text in strings(props):
        if SECRET_CHANNELS.match(path) or resource_type == "kubernetes:core/v1:Secret":
            continue
        for pattern, what in SECRET_PATTERNS:
            if pattern.search(text):
                problems.append(f"{path}: holds {what} in plain text; pass it as a Pulumi secret on stdin, in a "
                                "Secret, or as a 0600 file")
    for env_name, value in _environment_pairs(resource_type, props):
        if SECRET_NAMES.search(env_name) and value:
            problems.append(f"{env_name}: a secret given as a plain environment value; reference a Secret "
                            "(valueFrom.secretKeyRef) or pass it as a file")
    environment = props.get("environment")
    if resource_type.startswith("command:") and isinstance(environment, Mapping) and environment:
        problems.append("environment: a remote step got environment variables; sshd drops them, and secrets "
                        "belong on stdin")
    return sorted(set(problems))


def _environment_pairs(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for _path, value in _env_lists(props):
        for item in value:
            if isinstance(item, Mapping) and "name" in item and isinstance(item.get("value"), str):
                yield item["name"], item["value"]
    if resource_type == "docker:index/container:Container":
        for item in props.get("envs") or []:
            if isinstance(item, str) and "=" in item:
                yield tuple(item.split("=", 1))  # type: ignore[misc]


def _env_lists(value: Any, path: str = "") -> Iterator[tuple[str, list]]:
    if isinstance(value, Mapping):
        for key in value:
            child = value[key]
            is_list = isinstance(child, Sequence) and not isinstance(child, str)
            if key in ("env", "extraEnvVars", "mattermostEnv") and is_list:
                yield f"{path}.{key}", child
            else:
                yield from _env_lists(child, f"{path}.{key}")
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            yield from _env_lists(item, path)


# --- pull secrets ---------------------------------------------------------------------------------

def check_pull_secrets(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list[str]:
    if not resource_type.startswith("kubernetes:"):
        return []
    images = [ref for _, ref in workload_images(resource_type, props)
              if image_registry(ref) in settings.allowed_registries]
    if not images:
        return []
    text = json.dumps(_plain(props))
    if "imagePullSecrets" not in text:
        return [f"images {', '.join(images)} come from a private registry but no imagePullSecrets is given"]
    return []


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(value[k]) for k in value}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(v) for v in value]
    return value


# --- network lockdown ------------------------------------------------------------------------------

# The step that loads a host's egress rules (components/render/firewall.py), as a line of its script.
LOCKDOWN_APPLY = re.compile(r"(?m)^/usr/local/sbin/airgap-firewall apply [0-9a-f]{16} [0-9]+$")
MIN_REASON = 10


def _ssh_host(props: Mapping[str, Any]) -> str | None:
    connection = props.get("connection")
    return connection.get("host") if isinstance(connection, Mapping) else None


def check_network_lockdown(resources: Sequence[tuple[str, str, Mapping[str, Any]]], settings: Settings) -> list[str]:
    """Every host a stack runs steps on (or runs Docker on) has its egress lockdown applied, unless
    the stack opts it out with a reason. `resources` are (type, name, props)."""
    steps: dict[str, int] = {}
    locked: set[str] = set()
    declared: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for resource_type, _name, props in resources:
        host = None
        if resource_type in ("command:remote:Command", "command:remote:CopyToRemote"):
            host = _ssh_host(props)
            create = props.get("create")
            if isinstance(create, str) and LOCKDOWN_APPLY.search(create) and host:
                locked.add(host)
        elif resource_type == "pulumi:providers:docker" and str(props.get("host", "")).startswith("ssh://"):
            host = re.sub(r"^ssh://(?:[^@/]*@)?|(?::\d+)?/?$", "", str(props["host"]))
        if host:
            steps[host] = steps.get(host, 0) + 1
        if resource_type == "airgap:index:NetworkLockdown":
            for name, entry in (props.get("managedHosts") or {}).items():
                if isinstance(entry, Mapping) and entry.get("address"):
                    declared[str(entry["address"])] = (str(name), entry)
    problems = []
    for address in sorted(steps):
        name, entry = declared.get(address, (address, {}))
        if address in locked or name in settings.exceptions or address in settings.exceptions:
            continue
        reason = str(entry.get("optOut") or "").strip()
        if len(reason) >= MIN_REASON:
            continue
        problems.append(
            f"host {name} ({address}) runs {steps[address]} step(s) without an egress lockdown; it is on by "
            "default for every managed host: take the host out of network.optOut, or give the reason it must "
            f"stay open there (at least {MIN_REASON} characters)")
    for address, (name, entry) in sorted(declared.items()):
        if entry.get("lockdown") and address not in locked and name not in settings.exceptions:
            problems.append(f"host {name} ({address}) is declared locked down but no step applies its rules")
    return problems


def _stack_policy(name: str, description: str, level: EnforcementLevel,
                  check: Callable[[Sequence[tuple[str, str, Mapping[str, Any]]], Settings], list[str]],
                  ) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        settings = Settings.from_config(args.get_config())
        resources = [(r.resource_type, r.name, r.props) for r in args.resources]
        for problem in check(resources, settings):
            report_violation(problem, None)

    return StackValidationPolicy(name=name, description=description, enforcement_level=level,
                                 validate=validate, config_schema=CONFIG_SCHEMA)


# --- the policy objects ----------------------------------------------------------------------------

def _policy(name: str, description: str, level: EnforcementLevel,
            check: Callable[[str, Mapping[str, Any], Settings], list[str]]) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        settings = Settings.from_config(args.get_config())
        if any(args.name == e or args.urn.endswith(e) for e in settings.exceptions):
            return
        for problem in check(args.resource_type, args.props, settings):
            report_violation(problem, args.urn)

    return ResourceValidationPolicy(name=name, description=description, enforcement_level=level,
                                    validate=validate, config_schema=CONFIG_SCHEMA)


def _mattermost_mandatory(resource_type, props, settings):
    return check_mattermost(resource_type, props, settings)[0]


def _mattermost_overrides(resource_type, props, settings):
    return check_mattermost(resource_type, props, settings)[1]


POLICIES = [
    _policy("images-from-internal-registries",
            "Every container image a resource runs comes from an allowed internal registry.",
            EnforcementLevel.MANDATORY, check_internal_images),
    _policy("no-public-endpoints",
            "No public hostname, IP or URL in any resource input (implicit ones such as `nginx:1.25` included).",
            EnforcementLevel.MANDATORY, check_public_endpoints),
    _policy("tls-everywhere",
            "Registries, mirrors and file servers are reached over verified TLS; no insecure registries.",
            EnforcementLevel.MANDATORY, check_tls),
    _policy("signed-repositories",
            "apt sources carry Signed-By (never trusted=yes); .repo files have gpgcheck=1; "
            "mirrors check upstream signatures.",
            EnforcementLevel.MANDATORY, check_signed_repositories),
    _policy("mattermost-airgap-settings",
            "Mattermost's internet-reaching features (push, link previews, marketplace, telemetry, the "
            "prepackaged plugins' STUN and surveys, the product's links, …) are off or point inside.",
            EnforcementLevel.MANDATORY, _mattermost_mandatory),
    _policy("mattermost-airgap-overrides",
            "Reports every air-gap setting a stack turned back on with an explicit override.",
            EnforcementLevel.ADVISORY, _mattermost_overrides),
    _policy("no-plaintext-secrets",
            "No secret in plain text: script text, environment values or plain configuration.",
            EnforcementLevel.MANDATORY, check_plaintext_secrets),
    _policy("images-pinned",
            "Images are pinned by digest or by a version tag, never `latest` or none.",
            EnforcementLevel.ADVISORY, check_pinned_images),
    _policy("pull-secrets-for-private-images",
            "Workloads that run images from a private registry name an imagePullSecret.",
            EnforcementLevel.ADVISORY, check_pull_secrets),
]

# Policies over the whole stack at once (CrossGuard runs them after the resource policies).
STACK_POLICIES = [
    _stack_policy("network-lockdown",
                  "Every managed host has its egress lockdown applied, unless the stack opts it out with a reason "
                  "(exceptions: host names or addresses).",
                  EnforcementLevel.MANDATORY, check_network_lockdown),
]
