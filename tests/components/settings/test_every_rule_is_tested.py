"""Every rule a settings model declares, and every Pattern among its field types, refuses at
least one case of the tables in this folder: a rule never seen refusing anything may not work."""

import dataclasses
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.settings import Settings, SettingsError
from components.settings.fields import Pattern
from components.settings.rules import Rule
from offline.program import run_program
from offline.stackfile import StackConfig

from . import (
    test_files,
    test_harbor,
    test_hosts,
    test_loader,
    test_mattermost,
    test_mirrors,
    test_network,
    test_registry,
)
from .stack_edits import DEV, SANDBOX, with_changes


def tables(directory: Path) -> list[tuple[list[Any], StackConfig]]:
    """Each table of refused cases with the stack its edits apply to."""
    return [(test_hosts.CASES, SANDBOX), (test_registry.CASES, SANDBOX), (test_mirrors.CASES, SANDBOX),
            (test_files.CASES, SANDBOX), (test_loader.CASES, SANDBOX), (test_network.CASES, SANDBOX),
            (test_mattermost.CASES, DEV),
            (test_harbor.CASES, test_harbor.harbor_stack(directory))]


def _inside(hint: object) -> Iterator[object]:
    yield hint
    for argument in typing.get_args(hint):
        yield from _inside(argument)


def model_classes() -> list[type]:
    """Settings and every model class reachable from its fields."""
    found: list[type] = []
    todo: list[type] = [Settings]
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.append(cls)
            todo.extend(t for hint in typing.get_type_hints(cls).values() for t in _inside(hint)
                        if isinstance(t, type) and dataclasses.is_dataclass(t))
    return found


def declared_rules() -> dict[int, tuple[str, Rule]]:
    return {id(rule): (cls.__name__, rule) for cls in model_classes() for rule in getattr(cls, "RULES", ())}


def declared_patterns() -> dict[int, tuple[str, Pattern]]:
    return {id(item): (cls.__name__, item) for cls in model_classes()
            for hint in typing.get_type_hints(cls, include_extras=True).values()
            for item in _inside(hint) if isinstance(item, Pattern)}


def spy(check: Callable[..., Iterator[str]], fired: set[int]) -> Callable[..., Iterator[str]]:
    def checking(rule: object, *args: object) -> Iterator[str]:
        found = list(check(rule, *args))
        if found:
            fired.add(id(rule))
        return iter(found)
    return checking


def test_rules_and_patterns_are_found():
    assert len(declared_rules()) >= 50
    assert len(declared_patterns()) >= 20
    messages = [pattern.message for _, pattern in declared_patterns().values()]
    assert len(set(messages)) == len(messages), "a message must name its pattern"


def test_every_rule_and_pattern_refuses_a_case(monkeypatch, tmp_path):
    rules, fired = declared_rules(), set[int]()
    for rule_class in {type(rule) for _, rule in rules.values()}:
        monkeypatch.setattr(rule_class, "check", spy(rule_class.check, fired))
    reported: list[str] = []
    for cases, base in tables(tmp_path):
        for case in cases:
            run = run_program(with_changes(case.values[0], base))
            assert isinstance(run.error, SettingsError), (case.id, run.error)
            reported.extend(run.error.problems)

    assert [f"{model}: {rule}" for key, (model, rule) in rules.items() if key not in fired] == []
    assert [f"{model}: {pattern.message}" for model, pattern in declared_patterns().values()
            if not any(pattern.message in line for line in reported)] == []


@pytest.mark.parametrize("module", [test_hosts, test_registry, test_mirrors, test_files, test_loader,
                                    test_mattermost, test_harbor])
def test_case_ids_are_distinct(module):
    ids = [case.id for case in module.CASES]
    assert len(set(ids)) == len(ids)
