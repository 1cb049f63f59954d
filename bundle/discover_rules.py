"""Where images live in Kubernetes objects: pod templates, container arguments, and custom resources.

Pod templates are fixed by the Kubernetes API. Custom resources are read through rules, written as
data so that a user's rules (`--rules FILE`) and the built-in ones for the operators our users run
have the same form:

    rules:
      - kind: Mattermost                      # the resource's kind
        group: installation.mattermost.com    # its API group (optional: any group)
        plural: mattermosts                   # its resource name, for reading a cluster
        images:
          - image: spec.image                 # a path, or a list of paths (the first one set wins)
            tag: spec.version                 # appended when the image has no tag or digest
            digest: spec.sha                  # appended as @sha256:… (with or without the prefix)
            default: mattermost/mattermost-enterprise-edition   # when the path is not set
            defaultTag: "10.8.1"              # when no tag is set
          - fixed: postgres:13                # an image the operator starts by itself
            unless: {spec.database.disableReadinessCheck: true}
            when: [spec.database]             # only when these paths are set
            note: why it is there
        containers: [spec.containers, spec.initContainers]   # lists of Kubernetes containers

A path is dotted keys; `[]` after a key walks every item of a list (`spec.sidecars[].image`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# Container arguments known to carry an image the workload starts later (operators, solvers).
IMAGE_FLAGS = (
    "--prometheus-config-reloader", "--config-reloader-image", "--acme-http01-solver-image",
    "--prometheus-default-base-image", "--alertmanager-default-base-image", "--thanos-default-base-image",
)
# Any other `--…image…=VALUE` counts only when VALUE is pinned (a tag or a digest): `--image-pull-policy=Always`
# and the like are not references.
_IMAGE_FLAG = re.compile(r"^--?[A-Za-z0-9_.-]*image[A-Za-z0-9_.-]*=(.+)$", re.IGNORECASE)
_PINNED = re.compile(r"^[a-z0-9][\w.:/-]*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")


class RuleError(ValueError):
    """A rule file that does not have the documented form."""


@dataclass(frozen=True)
class ImageRule:
    image: tuple[str, ...] = ()
    tag: str | None = None
    digest: str | None = None
    default: str | None = None
    default_tag: str | None = None
    fixed: str | None = None
    unless: tuple[tuple[str, Any], ...] = ()
    when: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ResourceRule:
    kind: str
    group: str | None
    plural: str | None
    images: tuple[ImageRule, ...] = ()
    containers: tuple[str, ...] = ()
    source: str = "built-in"

    def matches(self, kind: str, api_version: str) -> bool:
        if kind != self.kind:
            return False
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        return self.group is None or group == self.group


def walk(node: Any, path: str) -> Iterator[Any]:
    """Every value at `path` below `node` (nothing when a step is missing)."""
    nodes = [node]
    for step in path.split("."):
        each = step.endswith("[]")
        key = step[:-2] if each else step
        found = []
        for current in nodes:
            if isinstance(current, dict) and key in current:
                value = current[key]
                if each:
                    found += value if isinstance(value, list) else []
                else:
                    found.append(value)
        nodes = found
    return iter([value for value in nodes if value is not None])


def first(node: Any, path: str) -> Any:
    return next(walk(node, path), None)


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise RuleError(f"{where}: give a path or a list of paths")


def parse_rules(document: Any, source: str) -> list[ResourceRule]:
    """Rules from a parsed YAML document (`{rules: [...]}`), each checked."""
    if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
        raise RuleError(f"{source}: a rule file is a mapping with a `rules:` list")
    rules = []
    for number, entry in enumerate(document["rules"], 1):
        where = f"{source}: rules[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
            raise RuleError(f"{where}: each rule needs a `kind`")
        unknown = set(entry) - {"kind", "group", "plural", "images", "containers"}
        if unknown:
            raise RuleError(f"{where}: unknown keys {sorted(unknown)}")
        images = []
        for index, image in enumerate(entry.get("images") or [], 1):
            spot = f"{where}.images[{index}]"
            if not isinstance(image, dict):
                raise RuleError(f"{spot}: a mapping")
            unknown = set(image) - {"image", "tag", "digest", "default", "defaultTag", "fixed", "unless", "when",
                                    "note"}
            if unknown:
                raise RuleError(f"{spot}: unknown keys {sorted(unknown)}")
            if not image.get("image") and not image.get("fixed") and not image.get("default"):
                raise RuleError(f"{spot}: give `image` (a path), `default` or `fixed`")
            unless = image.get("unless") or {}
            if not isinstance(unless, dict):
                raise RuleError(f"{spot}.unless: a mapping of path to value")
            images.append(ImageRule(
                image=_strings(image.get("image"), f"{spot}.image"), tag=image.get("tag"), digest=image.get("digest"),
                default=image.get("default"), default_tag=str(image["defaultTag"]) if image.get("defaultTag") else None,
                fixed=image.get("fixed"), unless=tuple(unless.items()),
                when=_strings(image.get("when"), f"{spot}.when"),
                note=str(image.get("note") or "")))
        rules.append(ResourceRule(kind=entry["kind"], group=entry.get("group"), plural=entry.get("plural"),
                                  images=tuple(images),
                                  containers=_strings(entry.get("containers"), f"{where}.containers"),
                                  source=source))
    return rules


_MATTERMOST_CHECK = ("the operator's database readiness check (external mode) starts it; set "
                     "spec.database.readinessCheck.mode: builtin (or disableReadinessCheck) and it is not needed")
_PROMETHEUS_DEFAULT = ("the operator's default version is used when spec.image and spec.version are unset: "
                       "pin spec.image")

BUILT_IN = parse_rules({"rules": [
    # The Mattermost operator (installation.mattermost.com/v1beta1): apis/mattermost/v1beta1/mattermost_utils.go
    # gives the defaults; pkg/mattermost/database_external.go and file_store.go the images it starts itself.
    {"kind": "Mattermost", "group": "installation.mattermost.com", "plural": "mattermosts",
     "images": [
         {"image": "spec.image", "tag": "spec.version", "default": "mattermost/mattermost-enterprise-edition",
          "defaultTag": "10.8.1"},
         {"fixed": "postgres:13", "note": _MATTERMOST_CHECK + " (PostgreSQL)",
          "unless": {"spec.database.readinessCheck.mode": "builtin", "spec.database.disableReadinessCheck": True}},
         {"fixed": "appropriate/curl:latest", "note": _MATTERMOST_CHECK + " (MySQL)",
          "unless": {"spec.database.readinessCheck.mode": "builtin", "spec.database.disableReadinessCheck": True}},
         {"fixed": "minio/mc:RELEASE.2025-04-16T18-13-26Z", "when": ["spec.fileStore.operatorManaged"],
          "note": "the operator creates the MinIO bucket with it (operator-managed file store)"},
     ],
     "containers": ["spec.podExtensions.initContainers", "spec.podExtensions.sidecarContainers"]},
    {"kind": "ClusterInstallation", "group": "mattermost.com", "plural": "clusterinstallations",
     "images": [{"image": "spec.image", "tag": "spec.version", "default": "mattermost/mattermost-enterprise-edition",
                 "defaultTag": "10.8.1"}]},
    # The Prometheus operator (monitoring.coreos.com/v1): spec.image wins; baseImage/version/tag/sha are the
    # older form; containers and initContainers are merged into the pods it creates.
    *({"kind": kind, "group": "monitoring.coreos.com", "plural": plural,
       "images": [{"image": ["spec.image", "spec.baseImage"], "tag": "spec.version", "digest": "spec.sha",
                   "default": default, "note": _PROMETHEUS_DEFAULT},
                  *([{"image": ["spec.thanos.image", "spec.thanos.baseImage"], "tag": "spec.thanos.version",
                      "digest": "spec.thanos.sha", "when": ["spec.thanos"]}] if kind == "Prometheus" else [])],
       "containers": ["spec.containers", "spec.initContainers"]}
      for kind, plural, default in (
          ("Prometheus", "prometheuses", "quay.io/prometheus/prometheus"),
          ("PrometheusAgent", "prometheusagents", "quay.io/prometheus/prometheus"),
          ("Alertmanager", "alertmanagers", "quay.io/prometheus/alertmanager"),
          ("ThanosRuler", "thanosrulers", "quay.io/thanos/thanos"))),
]}, "built-in")


@dataclass
class Hit:
    """One image a rule found in one object: the text as composed, where, by which rule."""

    ref: str
    where: str
    rule: str
    note: str = ""


def container_hits(containers: Any, where: str) -> Iterator[Hit]:
    """`image` of each container, plus images named in its arguments and `*_IMAGE` variables."""
    if not isinstance(containers, list):
        return
    for container in containers:
        if not isinstance(container, dict):
            continue
        spot = f"{where}:{container.get('name', '?')}"
        image = container.get("image")
        if isinstance(image, str) and image:
            yield Hit(image, spot, "container.image")
        for argument in (container.get("args") or []) + (container.get("command") or []):
            if not isinstance(argument, str) or not argument.startswith("-"):
                continue
            flag, _, value = argument.partition("=")
            if flag in IMAGE_FLAGS and value:
                yield Hit(value, spot, f"container.args {flag}")
            elif (match := _IMAGE_FLAG.match(argument)) and _looks_pinned(match.group(1)):
                yield Hit(match.group(1), spot, f"container.args {flag}")
        for variable in container.get("env") or []:
            if (isinstance(variable, dict) and str(variable.get("name", "")).upper().endswith("_IMAGE")
                    and isinstance(variable.get("value"), str) and _looks_pinned(variable["value"])):
                yield Hit(variable["value"], spot, f"container.env {variable['name']}")


def _looks_pinned(value: str) -> bool:
    """A value that is surely a reference: a path with a tag or a digest."""
    return bool(_PINNED.match(value)) and "/" in value and (":" in value.rpartition("/")[2] or "@" in value)


def pod_spec(document: dict) -> Any:
    path = POD_SPEC_PATHS.get(document.get("kind", ""))
    node: Any = document
    for key in path or ():
        node = node.get(key) if isinstance(node, dict) else None
    return node if path else None


def object_hits(document: dict, where: str, rules: list[ResourceRule]) -> Iterator[Hit]:
    """Images of one Kubernetes object (not a List: the caller unrolls those)."""
    spec = pod_spec(document)
    if isinstance(spec, dict):
        for key in CONTAINER_LISTS:
            yield from container_hits(spec.get(key), where)
        return
    kind, api_version = document.get("kind", ""), str(document.get("apiVersion", ""))
    for rule in rules:
        if rule.matches(kind, api_version):
            yield from resource_hits(document, where, rule)


def resource_hits(document: dict, where: str, rule: ResourceRule) -> Iterator[Hit]:
    label = f"rule {rule.kind}" + (f" ({rule.source})" if rule.source != "built-in" else "")
    for image_rule in rule.images:
        if any(first(document, path) == value for path, value in image_rule.unless):
            continue
        if any(first(document, path) is None for path in image_rule.when):
            continue
        if image_rule.fixed:
            yield Hit(image_rule.fixed, where, f"{label}: started by the operator", image_rule.note)
            continue
        composed = compose(document, image_rule)
        if composed:
            yield Hit(composed[0], where, f"{label}: {composed[1]}", image_rule.note if composed[2] else "")
    for path in rule.containers:
        for containers in walk(document, path):
            yield from container_hits(containers, where)


def compose(document: dict, rule: ImageRule) -> tuple[str, str, bool] | None:
    """(reference, the paths it came from, whether a default was used)."""
    image_path = next((path for path in rule.image if isinstance(first(document, path), str) and first(document, path)),
                      None)
    image = first(document, image_path) if image_path else rule.default
    if not image:
        return None
    used = [image_path or "default"]
    last = image.rpartition("/")[2]
    pinned = ":" in last or "@" in image
    defaulted = image_path is None
    if not pinned:
        tag = first(document, rule.tag) if rule.tag else None
        if tag not in (None, ""):
            image = f"{image}:{tag}"
            used.append(rule.tag or "")
        elif rule.default_tag:
            image, defaulted = f"{image}:{rule.default_tag}", True
            used.append("defaultTag")
        digest = first(document, rule.digest) if rule.digest else None
        if isinstance(digest, str) and digest:
            image += "@" + (digest if digest.startswith("sha256:") else f"sha256:{digest}")
            used.append(rule.digest or "")
    return image, "+".join(used), defaulted
