"""Images of a Helm chart read without rendering it (no helm binary needed), from an archive
(`helm package` / `helm pull` output) or a chart directory, bundled subcharts included.

What is read, each finding labelled with the rule that found it so a user can judge it:

- `Chart.yaml` annotation `artifacthub.io/images` (the chart's own list);
- `values.yaml` image blocks in the shapes charts use: a map with `repository` and `registry`,
  `tag`, `digest` or `sha`; the `name` + top-level `imageRegistry`/`imageNamespace` form
  (cert-manager); a plain string under an `image`-named key; `global.imageRegistry` overriding
  every registry; the chart's `appVersion` as the tag where its templates default the tag to
  `.Chart.AppVersion` (with the `v` prefix when they print one);
- literal `image:` lines and image flags in templates (a test pod's busybox, for example);
- subcharts below `charts/` (archives and directories), with the parent's values for them
  (`<subchart>:` and `global:`) merged over their own, as Helm does.

Rendered output (`helm template`, `helmfile template`) remains the accurate source: values that
templates compute, and images behind conditions, can only be seen there.

An archive is read in memory and refused, naming the member, when a path is absolute or climbs
out with `..`, when a link points out of the chart, or when it is larger than a chart can be.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .discover_manifests import LOADER, MAX_FILE_BYTES, decode
from .discover_rules import IMAGE_FLAGS, Hit
from .manifest import BundleError

MAX_CHART_BYTES = 256 * 1024 * 1024
RENDER_ADVICE = ("charts were read without rendering: `helm template` (or `helmfile template`) output given "
                 "to discover is the accurate source, since templates can compute images values do not show")
_ACTION = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)
_VALUES_PATH = re.compile(r"\.Values((?:\.[A-Za-z0-9_]+)+)")
_IMAGE_KEY = re.compile(r"^(image|[a-z][A-Za-z0-9]*Image)$")
_LITERAL_IMAGE = re.compile(r"^\s*-?\s*image:\s*[\"']?([^\"'\s{}#]+)[\"']?\s*(?:#.*)?$", re.MULTILINE)
_IMAGE_SUFFIXES = (".repository", ".tag", ".registry", ".digest", ".sha", ".name")


@dataclass
class ChartFiles:
    label: str
    files: dict[str, bytes] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        data = self.files.get(name)
        return decode(data, f"{self.label}/{name}") if data is not None else None


def _safe_member(name: str, archive: str) -> str:
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise BundleError(f"{archive}: member {name} has an absolute path; refused")
    normal = posixpath.normpath(name)
    if normal == ".." or normal.startswith("../") or "/../" in f"/{name}/":
        raise BundleError(f"{archive}: member {name} climbs out of the archive with '..'; refused")
    return normal


def load_archive(data: bytes, label: str) -> ChartFiles:
    """The files of a chart archive (one top directory, as `helm package` writes it), in memory."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, OSError) as error:
        raise BundleError(f"{label}: not a chart archive ({error})") from None
    files: dict[str, bytes] = {}
    total = 0
    with archive:
        try:
            members = archive.getmembers()
        except (tarfile.TarError, OSError, EOFError) as error:
            raise BundleError(f"{label}: the archive is damaged ({error})") from None
        for member in members:
            name = _safe_member(member.name, label)
            if member.issym() or member.islnk():
                target = member.linkname if member.islnk() else posixpath.join(posixpath.dirname(name), member.linkname)
                resolved = posixpath.normpath(target)
                if member.linkname.startswith("/") or resolved == ".." or resolved.startswith("../"):
                    raise BundleError(f"{label}: member {member.name} links out of the archive "
                                      f"(to {member.linkname}); refused")
                continue  # a link inside the chart: its target is read as itself
            if member.isdir():
                continue
            if not member.isfile():
                raise BundleError(f"{label}: member {member.name} is not a regular file; refused")
            total += member.size
            if member.size > MAX_FILE_BYTES or total > MAX_CHART_BYTES:
                raise BundleError(f"{label}: member {member.name} makes the archive larger than a chart can be; "
                                  "refused")
            extracted = archive.extractfile(member)
            files[name] = extracted.read() if extracted else b""
    roots = {name.split("/", 1)[0] for name in files}
    if len(roots) != 1 or not any(name.count("/") == 1 and name.endswith("/Chart.yaml") for name in files):
        raise BundleError(f"{label}: not a chart archive (one top directory with a Chart.yaml)")
    root = roots.pop()
    return ChartFiles(label, {name[len(root) + 1:]: content for name, content in files.items()})


def load_directory(directory: Path) -> ChartFiles:
    """The files of a chart directory; a link pointing out of it is refused."""
    root = directory.resolve()
    chart = ChartFiles(str(directory))
    total = 0
    for current, directories, names in os.walk(directory):
        for name in directories + names:
            path = Path(current) / name
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    raise BundleError(f"{path}: links out of the chart (to {os.readlink(path)}); refused")
        for name in names:
            path = Path(current) / name
            if not path.is_file():
                continue
            size = path.stat().st_size
            total += size
            if size > MAX_FILE_BYTES or total > MAX_CHART_BYTES:
                raise BundleError(f"{path}: makes the chart larger than a chart can be; refused")
            chart.files[path.relative_to(directory).as_posix()] = path.read_bytes()
    if "Chart.yaml" not in chart.files:
        raise BundleError(f"{directory}: no Chart.yaml")
    return chart


def _yaml(chart: ChartFiles, name: str) -> Any:
    text = chart.text(name)
    if text is None:
        return None
    try:
        return yaml.load(text, Loader=LOADER)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise BundleError(f"{chart.label}/{name}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None


def merge(base: Any, override: Any) -> Any:
    """Helm's coalescing of values: maps merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge(base.get(key), value) if key in base else value
        return merged
    return base if override is None else override


def app_version_paths(chart: ChartFiles) -> dict[str, str]:
    """Values paths whose tag the templates default to `.Chart.AppVersion` → the prefix they print."""
    found: dict[str, str] = {}
    for name, data in chart.files.items():
        if not name.startswith("templates/") or b"AppVersion" not in data:
            continue
        for action in _ACTION.findall(data.decode("utf-8", "replace")):
            if ".Chart.AppVersion" not in action:
                continue
            prefix = "v" if re.search(r"printf\s+\"v%s\"\s+\.Chart\.AppVersion", action) else ""
            for path in _VALUES_PATH.findall(action):
                path = path.lstrip(".")
                for suffix in _IMAGE_SUFFIXES:
                    if path.endswith(suffix) and path != suffix.lstrip("."):
                        path = path[: -len(suffix)]
                        break
                found.setdefault(path, prefix)
    return found


def _digest(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value if value.startswith("sha256:") else f"sha256:{value}"


@dataclass
class ChartScan:
    hits: list[Hit] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)


def scan_chart(chart: ChartFiles, scan: ChartScan, overrides: Any = None, label: str | None = None) -> None:
    label = label or chart.label
    meta = _yaml(chart, "Chart.yaml")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise BundleError(f"{chart.label}/Chart.yaml: not a chart's metadata (no name)")
    scan.charts.append(f"{label} ({meta['name']} {meta.get('version', '?')})")
    app_version = str(meta.get("appVersion") or "")
    annotations = meta.get("annotations") or {}
    listed = annotations.get("artifacthub.io/images") if isinstance(annotations, dict) else None
    if isinstance(listed, str):
        try:
            entries = yaml.load(listed, Loader=LOADER) or []
        except yaml.YAMLError:
            raise BundleError(f"{chart.label}/Chart.yaml: artifacthub.io/images is not a YAML list") from None
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("image"), str):
                scan.hits.append(Hit(entry["image"], f"{label}:Chart.yaml#artifacthub.io/images",
                                     "chart annotation artifacthub.io/images"))
    values = merge(_yaml(chart, "values.yaml") or {}, overrides)
    if not isinstance(values, dict):
        raise BundleError(f"{chart.label}/values.yaml: not a mapping")
    defaults = app_version_paths(chart)
    scan.hits += values_hits(values, label, app_version, defaults)
    scan.hits += template_hits(chart, label)

    for dependency in _subcharts(chart):
        sub_overrides = merge(values.get(dependency.name_hint) if dependency.name_hint else None,
                              {"global": values.get("global")} if values.get("global") else None)
        scan_chart(dependency.chart, scan, sub_overrides, f"{label}/charts/{dependency.path}")


@dataclass
class _Subchart:
    path: str
    chart: ChartFiles
    name_hint: str | None


def _subcharts(chart: ChartFiles) -> Iterator[_Subchart]:
    directories = sorted({name.split("/")[1] for name in chart.files
                          if name.startswith("charts/") and name.count("/") >= 2 and name.endswith("/Chart.yaml")
                          and name.count("/") == 2})
    for directory in directories:
        prefix = f"charts/{directory}/"
        sub = ChartFiles(f"{chart.label}/charts/{directory}",
                         {name[len(prefix):]: data for name, data in chart.files.items() if name.startswith(prefix)})
        yield _Subchart(directory, sub, _chart_name(sub))
    for name in sorted(chart.files):
        if name.startswith("charts/") and name.count("/") == 1 and name.endswith((".tgz", ".tar.gz")):
            sub = load_archive(chart.files[name], f"{chart.label}/{name}")
            yield _Subchart(name.split("/", 1)[1], sub, _chart_name(sub))


def _chart_name(chart: ChartFiles) -> str | None:
    meta = _yaml(chart, "Chart.yaml")
    return str(meta["name"]) if isinstance(meta, dict) and meta.get("name") else None


def values_hits(values: dict, label: str, app_version: str, defaults: dict[str, str]) -> list[Hit]:
    settings = values.get("global")
    global_registry = settings.get("imageRegistry") if isinstance(settings, dict) else None
    hits: list[Hit] = []

    def visit(node: Any, path: str, key: str) -> None:
        if isinstance(node, dict):
            hit = image_block(node, path, key, values, app_version, defaults, global_registry)
            if hit is not None:
                hits.append(Hit(hit[0], f"{label}:{path}", hit[1]))
                return
            for child_key, child in node.items():
                if path == "" and child_key == "global":
                    continue
                visit(child, f"{path}.{child_key}" if path else str(child_key), str(child_key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                visit(item, f"{path}[{index}]", key)
        elif isinstance(node, str) and _IMAGE_KEY.match(key) and node and "{{" not in node:
            if re.match(r"^[a-z0-9][\w.:/@-]*$", node) and ("/" in node or ":" in node):
                ref = f"{global_registry}/{_strip_registry(node)}" if global_registry else node
                hits.append(Hit(ref, f"{label}:{path}", "values image string"
                                + (" + global.imageRegistry" if global_registry else "")))

    visit(values, "", "")
    return hits


def _strip_registry(reference: str) -> str:
    first, _, rest = reference.partition("/")
    return rest if rest and ("." in first or ":" in first or first == "localhost") else reference


def image_block(node: dict, path: str, key: str, values: dict, app_version: str, defaults: dict[str, str],
                global_registry: Any) -> tuple[str, str] | None:
    """(reference, rule) when `node` is an image map in one of the shapes charts use."""
    repository, rule = node.get("repository"), "values image map"
    if not (isinstance(repository, str) and repository) and isinstance(node.get("image"), str) and node["image"] \
            and any(k in node for k in ("tag", "digest", "registry")):
        repository, rule = node["image"], "values image map (image + tag)"  # ingress-nginx's form
    if isinstance(repository, str) and repository and "{{" not in repository:
        registry = node.get("registry") if isinstance(node.get("registry"), str) else ""
        shared = values.get("global", {}).get("image") if isinstance(values.get("global"), dict) else None
        if not registry and isinstance(shared, dict) and isinstance(shared.get("registry"), str) and shared["registry"]:
            registry, rule = shared["registry"], rule + " + global.image.registry"
        base = f"{registry}/{repository}" if registry else repository
        if not any(k in node for k in ("tag", "digest", "sha", "registry", "pullPolicy", "imagePullPolicy")):
            return None
    elif (_IMAGE_KEY.match(key) and isinstance(node.get("name"), str) and node["name"]
          and isinstance(values.get("imageRegistry"), str)):
        base = "/".join(part for part in (values.get("imageRegistry"), values.get("imageNamespace"), node["name"])
                        if isinstance(part, str) and part)
        if isinstance(node.get("registry"), str) and node["registry"]:
            base = f"{node['registry']}/{base}"
        rule = "values image name + imageRegistry/imageNamespace"
    else:
        return None
    if isinstance(global_registry, str) and global_registry:
        base = f"{global_registry}/{_strip_registry(base)}"
        rule += " + global.imageRegistry"
    tag = node.get("tag")
    tag = str(tag) if tag not in (None, "") else None
    digest = _digest(node.get("digest")) or _digest(node.get("sha"))
    if tag is None and digest is None and path in defaults and app_version:
        tag = defaults[path] + app_version.removeprefix("v") if defaults[path] else app_version
        rule += " + appVersion (the templates' default tag)"
    reference = base + (f":{tag}" if tag else "")
    if digest and "@" not in reference:
        reference += f"@{digest}"
    return reference, rule


def template_hits(chart: ChartFiles, label: str) -> list[Hit]:
    """Literal images in templates: `image: busybox:1.36` lines and known image flags."""
    hits = []
    for name in sorted(chart.files):
        if not name.startswith("templates/") or not name.endswith((".yaml", ".yml", ".tpl")):
            continue
        text = chart.files[name].decode("utf-8", "replace")
        if "image" not in text:
            continue
        for match in _LITERAL_IMAGE.finditer(text):
            value = match.group(1)
            if "/" in value or ":" in value or re.match(r"^[a-z0-9][a-z0-9._-]*$", value):
                hits.append(Hit(value, f"{label}:{name}", "template literal image"))
        for flag in IMAGE_FLAGS:
            for match in re.finditer(re.escape(flag) + r"=([^\s\"'{}]+)(?=[\s\"']|$)", text):
                hits.append(Hit(match.group(1), f"{label}:{name}", f"template literal {flag}"))
    return hits


def is_chart_archive(path: Path) -> bool:
    return path.name.endswith((".tgz", ".tar.gz"))


def read_archive(path: Path) -> ChartFiles:
    try:
        size = path.stat().st_size
        if size > MAX_CHART_BYTES:
            raise BundleError(f"{path}: {size} bytes, larger than a chart can be; refused")
        data = path.read_bytes()
    except OSError as error:
        raise BundleError(f"{path}: cannot be read ({error.strerror})") from None
    return load_archive(data, str(path))
