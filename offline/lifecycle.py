"""What the Pulumi engine does with each resource at `up`: the decision, and what it runs.

Pure functions over a resource's old and new inputs, following the engine and pulumi-command as
documented and as implemented (pulumi/pulumi-command, provider/pkg/provider):

- a resource the state does not hold is **created**;
- one whose inputs are those in the state is left **the same**: nothing runs ("this command will
  not be executed if the resource has already been created and its inputs are unchanged");
- a change to a property named in `replaceOnChanges` **replaces** it. The SDK sets
  `replace_on_changes=["triggers[*]"]` on every Command and CopyToRemote, and the provider's schema
  marks `triggers` `replaceOnChanges` (so a changed trigger replaces the resource even when an
  `update` command is given: pulumi/pulumi-command#855). A replacement creates the new resource
  first and deletes the old one afterwards, unless `deleteBeforeReplace` reverses the two;
- any other change **updates** it in place (the provider has no custom diff): a Command runs its
  `update` command, or `create` when there is none; a CopyToRemote copies again only when its
  source or remote path changed;
- a resource the program no longer registers is **deleted**: a Command runs its `delete` command
  (with the inputs it was created with), a CopyToRemote leaves the copied files where they are
  (it has no delete), and dependants are deleted before what they depend on.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COMMAND_TYPES = ("command:remote:Command", "command:local:Command")
COPY_TYPE = "command:remote:CopyToRemote"


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    SAME = "same"


@dataclass(frozen=True)
class Decision:
    action: Action
    changed: tuple[str, ...] = ()
    """Top-level input properties whose values differ."""
    delete_before_replace: bool = False


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(sorted(key for key in set(old) | set(new) if old.get(key) != new.get(key)))


def _forces_replacement(key: str, replace_on_changes: Sequence[str]) -> bool:
    """`replaceOnChanges` paths name a property (`triggers`) or its elements (`triggers[*]`)."""
    return any(path == "*" or path == key or path.startswith((f"{key}[", f"{key}.")) for path in replace_on_changes)


def decide(old: Mapping[str, Any] | None, new: Mapping[str, Any], *, replace_on_changes: Sequence[str] = (),
           delete_before_replace: bool = False) -> Decision:
    """The engine's step for a registered resource, given the inputs the state holds (`old`, or
    None when it holds none) and those the program gives now (`new`); both in one canonical form."""
    if old is None:
        return Decision(Action.CREATE)
    changed = changed_keys(old, new)
    if not changed:
        return Decision(Action.SAME)
    if any(_forces_replacement(key, replace_on_changes) for key in changed):
        return Decision(Action.REPLACE, changed, delete_before_replace)
    return Decision(Action.UPDATE, changed)


def command_to_run(resource_type: str, action: Action, inputs: Mapping[str, Any]) -> str | None:
    """The command text a Command resource runs for `action` (None: nothing runs). For DELETE,
    `inputs` are the ones the resource was created or last updated with."""
    if resource_type not in COMMAND_TYPES:
        return None
    if action in (Action.CREATE, Action.REPLACE):
        return inputs.get("create") or None
    if action is Action.UPDATE:
        return inputs.get("update") or inputs.get("create") or None
    if action is Action.DELETE:
        return inputs.get("delete") or None
    return None


def copies(resource_type: str, action: Action, changed: Sequence[str]) -> bool:
    """Whether a CopyToRemote copies for `action` (an update copies only a changed source or path)."""
    if resource_type != COPY_TYPE:
        return False
    if action in (Action.CREATE, Action.REPLACE):
        return True
    return action is Action.UPDATE and bool({"source", "remotePath"} & set(changed))


def deletion_order(urns: Sequence[str], dependencies: Mapping[str, Sequence[str]],
                   parents: Mapping[str, str]) -> list[str]:
    """`urns` ordered so that every resource comes before those it depends on (or is a child of):
    the engine deletes dependants first. Ties keep the reverse of the given (creation) order."""
    pending = list(reversed(urns))
    wanted = set(urns)
    needed_by: dict[str, set[str]] = {urn: set() for urn in urns}
    for urn in urns:
        for other in [*dependencies.get(urn, ()), parents.get(urn, "")]:
            if other in wanted and other != urn:
                needed_by[other].add(urn)
    ordered: list[str] = []
    done: set[str] = set()
    while pending:
        for urn in pending:
            if needed_by[urn] <= done:
                ordered.append(urn)
                done.add(urn)
                pending.remove(urn)
                break
        else:  # a cycle cannot come from the engine; keep going rather than loop forever
            ordered.extend(pending)
            break
    return ordered
