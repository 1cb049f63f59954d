"""Images in rendered manifests: multi-document YAML and JSON, `List` kinds, pod templates, custom
resources (bundle/discover_rules.py), Kustomize `images:` overrides and compose files.

Files are parsed with PyYAML's C loader when it is there; only the paths where images live are
visited, so discovery costs little more than the parse itself (bench/discover.py).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .discover_rules import Hit, ResourceRule, object_hits
from .manifest import BundleError

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_FILE_BYTES = 64 * 1024 * 1024
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
COMPOSE = re.compile(r"^(docker-)?compose([.-][\w.-]+)?\.ya?ml$")


def read_text(path: Path, *, label: str | None = None, limit: int = MAX_FILE_BYTES) -> str:
    """A file's text, refused with its name when it is too large, unreadable or not UTF-8."""
    name = label or str(path)
    try:
        size = path.stat().st_size
        if size > limit:
            raise BundleError(f"{name}: {size} bytes, more than the {limit // (1024 * 1024)} MiB a manifest may have; "
                              "split it, or give only the manifests you deploy")
        data = path.read_bytes()
    except OSError as error:
        raise BundleError(f"{name}: cannot be read ({error.strerror})") from None
    return decode(data, name)


def decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BundleError(f"{name}: not UTF-8 text (byte {error.start})") from None


def load_documents(text: str, name: str) -> list[Any]:
    """Every document of a YAML stream (JSON included); a broken one is refused with its line."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) and name.endswith(".json"):
        try:
            return [json.loads(text)]
        except ValueError as error:
            raise BundleError(f"{name}: not valid JSON ({error})") from None
    try:
        return list(yaml.load_all(text, Loader=LOADER))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise BundleError(f"{name}: not valid YAML{where}: {problem}") from None


def objects(document: Any, list_kind: str | None = None) -> Iterator[dict]:
    """Kubernetes objects of a document, `List` kinds unrolled (their items may lack a kind: the
    API leaves it out of a `PodList`'s items)."""
    if not isinstance(document, dict):
        return
    kind = document.get("kind")
    items = document.get("items")
    if isinstance(items, list) and (kind is None or str(kind).endswith("List")):
        item_kind = str(kind)[: -len("List")] if kind and kind != "List" else None
        for item in items:
            if isinstance(item, dict):
                if "kind" not in item and item_kind:
                    item = {**item, "kind": item_kind, "apiVersion": document.get("apiVersion", "")}
                yield from objects(item, item_kind)
        return
    yield document


def object_label(document: dict) -> str:
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    namespace = metadata.get("namespace") or "-"
    return f"{document.get('kind', '?')}/{namespace}/{metadata.get('name', '?')}"


def document_hits(documents: list[Any], name: str, rules: list[ResourceRule]) -> Iterator[Hit]:
    for document in documents:
        for item in objects(document):
            yield from object_hits(item, f"{name}:{object_label(item)}", rules)


def manifest_hits(path: Path, rules: list[ResourceRule], *, label: str | None = None) -> list[Hit]:
    name = label or str(path)
    return list(document_hits(load_documents(read_text(path, label=name), name), name, rules))


def stdin_hits(text: str, rules: list[ResourceRule]) -> list[Hit]:
    return list(document_hits(load_documents(text, "-"), "-", rules))


# --- Kustomize ----------------------------------------------------------------------------

def kustomize_hits(directory: Path, rules: list[ResourceRule], notes: list[str], seen: set | None = None) -> list[Hit]:
    """A kustomization's local resources, with its `images:` overrides applied as kustomize does
    (by image name, before any tag), and each override's result reported as well."""
    seen = seen if seen is not None else set()
    if directory.resolve() in seen:
        return []
    seen.add(directory.resolve())
    file = next((directory / name for name in KUSTOMIZATIONS if (directory / name).is_file()), None)
    if file is None:
        raise BundleError(f"{directory}: no kustomization.yaml")
    documents = load_documents(read_text(file), str(file))
    config = documents[0] if documents and isinstance(documents[0], dict) else {}
    hits: list[Hit] = []
    for resource in (config.get("resources") or []) + (config.get("bases") or []):
        if not isinstance(resource, str):
            continue
        if "://" in resource or resource.startswith(("github.com/", "git@")):
            notes.append(f"{file}: remote resource {resource} not read; render it (kustomize build) "
                         "and give the output")
            continue
        target = (directory / resource)
        if target.is_dir():
            hits += kustomize_hits(target, rules, notes, seen)
        elif target.is_file():
            hits += manifest_hits(target, rules)
        else:
            raise BundleError(f"{file}: resource {resource} not found")
    overrides = [entry for entry in config.get("images") or [] if isinstance(entry, dict) and entry.get("name")]
    for hit in hits:
        for entry in overrides:
            replaced = kustomize_image(hit.ref, entry)
            if replaced is not None:
                hit.ref, hit.rule = replaced, f"{hit.rule} + kustomize images[{entry['name']}]"
    return hits


def kustomize_image(ref: str, entry: dict) -> str | None:
    """`ref` after one `images:` entry, or None when the entry does not name it."""
    name = str(entry["name"])
    base, tail = ref, ""
    if "@" in base:
        base, tail = base.split("@", 1)[0], "@" + base.split("@", 1)[1]
    elif ":" in base.rpartition("/")[2]:
        base, tail = base[: base.rfind(":")], base[base.rfind(":"):]
    if base != name:
        return None
    if entry.get("newName"):
        base = str(entry["newName"])
    if entry.get("digest"):
        tail = "@" + str(entry["digest"])
    elif entry.get("newTag"):
        tail = ":" + str(entry["newTag"])
    return base + tail


# --- compose ------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in read_text(path).splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def interpolate(text: str, variables: dict[str, str]) -> tuple[str, list[str]]:
    """Compose's `${VAR}`, `${VAR:-default}`, `$VAR`; returns the text and the names left unset."""
    missing: list[str] = []

    def replace(match: re.Match) -> str:
        name = match.group(1) or match.group(4)
        value = variables.get(name)
        operator, default = match.group(2), match.group(3) or ""
        if operator in (":-", ":?") and not value:
            value = default if operator == ":-" else None
        elif operator in ("-", "?") and value is None:
            value = default if operator == "-" else None
        if value is None:
            missing.append(name)
            return match.group(0)
        return value

    return _VARIABLE.sub(replace, text), missing


def compose_hits(path: Path, env_files: list[Path], notes: list[str]) -> list[Hit]:
    """`services.*.image`, with variables from the environment, a `.env` beside the file and
    `--compose-env` files (later ones win)."""
    variables = dict(os.environ)
    for env_file in [path.parent / ".env", *env_files]:
        if env_file.is_file():
            variables.update(read_env_file(env_file))
    documents = load_documents(read_text(path), str(path))
    hits = []
    for document in documents:
        services = document.get("services") if isinstance(document, dict) else None
        for service, definition in (services or {}).items():
            image = definition.get("image") if isinstance(definition, dict) else None
            if not isinstance(image, str):
                continue
            value, missing = interpolate(image, variables)
            if missing:
                notes.append(f"{path}:services.{service}.image: {image} needs {', '.join(sorted(set(missing)))}; "
                             "give them with --compose-env FILE")
                continue
            hits.append(Hit(value, f"{path}:services.{service}", "compose services.image"))
    return hits


def is_compose(path: Path) -> bool:
    return bool(COMPOSE.match(path.name))
