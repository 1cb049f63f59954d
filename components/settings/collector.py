"""The collector: walks the parsed settings, runs the rules each model declares, reports key paths.

A rule names fields by their Python names: `a.b` reaches into a nested model, `items[*].name`
into every element of a list. The report spells them as the stack file does: camelCase keys,
list indexes (`aptMirror.repos[2].name`) and quoted map keys (`upstreams["docker.io"]`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any, Protocol

from pydantic.alias_generators import to_camel

from ..images import ImageRef


class Root(Protocol):
    """What a rule may look up beyond its own model: the whole parsed settings."""

    @property
    def hosts(self) -> Mapping[str, Any]: ...
    @property
    def secret_values(self) -> Mapping[str, str]: ...
    @property
    def images(self) -> tuple[ImageRef, ...]: ...


class Rule(Protocol):
    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        """Each problem of `model`, found at key path `path`, as `key.path: message`."""
        ...


Rules = tuple[Rule, ...]


class _Given:
    def __repr__(self) -> str:
        return "GIVEN"


GIVEN: Any = _Given()
"""In a condition: the field holds anything (not null, false or empty)."""

Condition = Mapping[str, object]


def collect(root: Root) -> list[str]:
    """Every problem the declared rules find anywhere in `root`."""
    return list(_walk(root, "", root))


def _walk(node: Any, path: str, root: Root) -> Iterator[str]:
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        for rule in getattr(node, "RULES", ()):
            yield from rule.check(node, path, root)
        for field in dataclasses.fields(node):
            yield from _walk(getattr(node, field.name), key_path(path, field.name), root)
    elif isinstance(node, tuple):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}[{index}]", root)
    elif isinstance(node, Mapping):
        for key, item in node.items():
            yield from _walk(item, item_path(path, key), root)


def key_path(path: str, field: str) -> str:
    """`path` extended by a field path as the stack file spells it (`tls.cert_file` -> `tls.certFile`)."""
    spelt = ".".join(_spell(part) for part in field.split("."))
    return f"{path}.{spelt}" if path else spelt


def item_path(path: str, key: str) -> str:
    """`path` extended by a map's key: `hosts.registry`, or `upstreams["docker.io"]` as `--path` takes it."""
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key) else f"{path}[{json.dumps(key)}]"


def _spell(name: str) -> str:
    # as the models' alias generator does; a one-word name stays as it is (to_camel makes `ck8s` `ck8S`)
    return to_camel(name) if "_" in name else name


def resolve(model: Any, path: str, field: str) -> list[tuple[str, Any]]:
    """(key path, value) of each value `field` names in `model`; `[*]` fans out over a list."""
    found = [(path, model)]
    for part in field.split("."):
        name = part.removesuffix("[*]")
        step: list[tuple[str, Any]] = []
        for where, node in found:
            if node is None:  # an absent optional model holds nothing to check
                continue
            where, value = key_path(where, name), getattr(node, name)
            if part.endswith("[*]"):
                step.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
            else:
                step.append((where, value))
        found = step
    return found


def value_at(model: Any, field: str) -> Any:
    found = resolve(model, "", field)
    return found[0][1] if found else None


def given(value: object) -> bool:
    return value is not None and value is not False and value != "" and not (
        isinstance(value, Collection) and not isinstance(value, str) and len(value) == 0)


def matches(value: object, expected: object) -> bool:
    return given(value) if expected is GIVEN else value == expected


def holds(model: Any, when: Condition) -> bool:
    return all(matches(value_at(model, field), expected) for field, expected in when.items())
