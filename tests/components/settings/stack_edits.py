"""Shipped stacks with one thing changed, and what the settings say about them.

A case is an edit (a function changing the project's keys), the key path the problem must name
and a fragment of its message. The program runs under the mock runtime: a refused stack must
fail with `SettingsError` before a single resource exists.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from components.settings import SettingsError
from offline.program import run_program
from offline.stackfile import StackConfig, load_stack

Edit = Callable[[dict[str, Any]], None]

SANDBOX = load_stack("sandbox")
DEV = load_stack("dev")
DELETE = object()
ED25519 = SANDBOX.values["airgap-infra:hosts"]["registry"]["hostKey"]


def with_changes(edit: Edit, base: StackConfig = SANDBOX) -> StackConfig:
    """`base` with `edit` applied to its project keys (secrets stay secret)."""
    project = {key.split(":", 1)[1]: value for key, value in copy.deepcopy(base.values).items()}
    edit(project)
    config = copy.deepcopy(base)
    config.values = {f"airgap-infra:{key}": value for key, value in project.items()}
    return config


def set_path(path: str, value: object) -> Edit:
    """Set (or, with DELETE, remove) the key at a dotted path; digits index lists (one past the end appends);
    `\\.` is a dot inside a key (`registry.fill.upstreams.quay\\.io`)."""
    def edit(config: dict[str, Any]) -> None:
        keys = [key.replace("\\.", ".") for key in re.split(r"(?<!\\)\.", path)]
        node: Any = config
        for key in keys[:-1]:
            node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
        last = keys[-1]
        if value is DELETE:
            del node[last]
        elif last.isdigit() and int(last) == len(node):
            node.append(value)
        else:
            node[int(last) if last.isdigit() else last] = value
    return edit


def edits(*steps: Edit) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        for step in steps:
            step(config)
    return edit


def problems(config: StackConfig) -> list[str]:
    """Every problem the settings report for `config`; nothing may have been created."""
    run = run_program(config)
    assert isinstance(run.error, SettingsError), run.error
    assert run.records == [], "a resource was created before the configuration was checked"
    return run.error.problems


def assert_refused(config: StackConfig, path: str, message: str) -> None:
    """`config` is refused with a problem at `path` (or below it) saying `message`."""
    reported = problems(config)
    matching = [p for p in reported if p.startswith((f"{path}:", f"{path}."))]
    assert matching, f"no problem names {path}: {reported}"
    assert any(message in p for p in matching), matching


def loaded_settings(config: StackConfig) -> Any:
    """The checked `Settings` the program reads for `config` (the program runs under mocks)."""
    import components.settings as package

    seen: list[Any] = []
    original = package.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(original(*args, **kwargs))
        return seen[-1]

    package.load = spy  # the program calls it through the package
    try:
        run_program(config).raise_error()
    finally:
        package.load = original
    return seen[-1]
