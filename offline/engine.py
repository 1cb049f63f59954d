"""The offline engine: `preview`, `up` and `destroy` of a stack without the Pulumi CLI.

The program runs under the mock runtime (program.py); every resource it registers goes through
`Engine.register`, which decides what the Pulumi engine would do with it (lifecycle.py) against the
stack's state (state.py) and, unless previewing, does it through the executor: a Command's
create, update or delete command over SSH (or on this machine), a CopyToRemote's copy. Resources
the program no longer registers, and the old halves of create-before-delete replacements, are
deleted after the program has finished, dependants first. The state is written at the end, also
after a failure (with what was applied), so the next `up` takes over where this one stopped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import lifecycle
from .lifecycle import Action, Decision
from .program import reveal
from .state import COMPUTED, ResourceState, StackState, canonical, mark_outputs

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # pulumi's wire value for an output not yet known


@dataclass(frozen=True)
class Registration:
    """What the program asked for: one custom resource as sent to the engine."""

    urn: str
    type: str
    name: str
    parent: str
    dependencies: list[str]
    inputs: dict[str, Any]
    """As on the wire: secrets marked, assets as pulumi assets."""
    replace_on_changes: list[str]
    delete_before_replace: bool
    secret_outputs: list[str]


@dataclass
class Step:
    """One decision of the engine, and what became of it."""

    action: Action
    urn: str
    type: str
    name: str
    changed: tuple[str, ...] = ()
    old_inputs: dict[str, Any] | None = None
    new_inputs: dict[str, Any] | None = None
    seconds: float = 0.0
    ran: str | None = None
    """What ran for it: `create`, `update`, `delete`, `copy`; None when nothing had to."""
    error: str | None = None
    drift: tuple[str, ...] = ()
    """What drifted on the host since the step last ran (`<file or unit>: <problem>`)."""


class StepFailed(RuntimeError):
    pass


@dataclass
class Engine:
    state: StackState
    executor: Any | None = None
    """Runs commands and copies (offline.executor.Executor); None with `preview`."""
    preview: bool = False
    on_step: Callable[[Step], None] | None = None
    """Called as each step finishes (progress lines)."""
    steps: list[Step] = field(default_factory=list)
    applied: dict[str, ResourceState] = field(default_factory=dict)
    drifted: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """By URN: what drifted on the host (see `check_drift`); such a resource is updated, as if
    its inputs had changed, and so are the copies it depends on (it may have consumed them)."""
    _replaced: list[ResourceState] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- during the program ---------------------------------------------------------------------
    def register(self, registration: Registration, emulate: Callable[[dict[str, Any]], dict[str, Any]]) -> dict:
        """The outputs of one registered resource; `emulate(plain inputs)` gives those of
        resources this engine does not run (certificates, Kubernetes objects)."""
        old = self.state.resources.get(registration.urn)
        new_inputs = canonical(registration.inputs)
        decision = lifecycle.decide(old.inputs if old else None, new_inputs,
                                    replace_on_changes=registration.replace_on_changes,
                                    delete_before_replace=registration.delete_before_replace)
        drift = self.drifted.get(registration.urn, ())
        if drift and decision.action is Action.SAME:
            decision = Decision(Action.UPDATE, ("drift",))
        step = Step(decision.action, registration.urn, registration.type, registration.name, decision.changed,
                    old.inputs if old else None, new_inputs, drift=drift)
        started = time.monotonic()
        try:
            if decision.action is Action.SAME:
                assert old is not None
                outputs = reveal(old.outputs)
            elif self.preview:
                outputs = self._previewed(registration, old, emulate)
            else:
                outputs = self._apply(registration, old, decision, step, emulate)
        except Exception as error:
            step.error = str(error)
            raise
        finally:
            step.seconds = time.monotonic() - started
            self._record(step)
        if not self.preview:
            with self._lock:
                self.applied[registration.urn] = ResourceState(
                    urn=registration.urn, type=registration.type, name=registration.name, parent=registration.parent,
                    dependencies=list(registration.dependencies), inputs=new_inputs,
                    outputs=canonical(mark_outputs(outputs, registration.inputs, registration.secret_outputs)),
                    replace_on_changes=list(registration.replace_on_changes),
                    delete_before_replace=registration.delete_before_replace,
                    secret_outputs=list(registration.secret_outputs))
        return outputs

    def _previewed(self, registration: Registration, old: ResourceState | None,
                   emulate: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        """Outputs as a preview knows them: a command's output is not known until it runs."""
        plain = reveal(registration.inputs)
        if registration.type in lifecycle.COMMAND_TYPES:
            return {**plain, "stdout": UNKNOWN, "stderr": UNKNOWN}
        if _has_computed(canonical(registration.inputs)):
            return {**(reveal(old.outputs) if old else {}), **plain}
        return emulate(plain)

    def _apply(self, registration: Registration, old: ResourceState | None, decision: Decision, step: Step,
               emulate: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
        plain = reveal(registration.inputs)
        if decision.action is Action.REPLACE and old is not None:
            if decision.delete_before_replace:
                self._delete(old, Step(Action.DELETE, old.urn, old.type, f"{old.name} (replaced)"))
            else:
                with self._lock:
                    self._replaced.append(old)
        if registration.type in lifecycle.COMMAND_TYPES:
            command = lifecycle.command_to_run(registration.type, decision.action, plain)
            result = {"stdout": "", "stderr": ""}
            if command is not None:
                step.ran = "update" if decision.action is Action.UPDATE and plain.get("update") else "create"
                result = self._executor().run_command(registration.type, registration.name, plain, command)
            return {**plain, **result}
        if registration.type == lifecycle.COPY_TYPE:
            if lifecycle.copies(registration.type, decision.action, decision.changed) or "drift" in decision.changed:
                step.ran = "copy"
                self._executor().copy(registration.name, plain)
            return dict(plain)
        return emulate(plain)

    def _executor(self) -> Any:
        if self.executor is None:
            raise RuntimeError("applying needs an executor; a preview runs nothing")
        return self.executor

    def _record(self, step: Step) -> None:
        with self._lock:
            self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    # --- before the program: drift -------------------------------------------------------------
    def check_drift(self, read: Callable[[dict[str, Any], str], str]) -> None:
        """Compare what each step recorded with its host: one read-only round trip per host
        (`read(connection, command)` returns the command's output), in parallel."""
        from concurrent.futures import ThreadPoolExecutor

        from components.render import drift as render_drift

        by_host: dict[str, list[ResourceState]] = {}
        connections: dict[str, dict[str, Any]] = {}
        for resource in self.state.resources.values():
            if resource.type != "command:remote:Command":
                continue
            connection = reveal(resource.inputs.get("connection")) or {}
            target = json_key(connection)
            by_host.setdefault(target, []).append(resource)
            connections[target] = connection

        def check(target: str) -> tuple[str, str]:
            sudo = any('sudo -n bash "$step"' in str(reveal(r.inputs.get("create"))) for r in by_host[target])
            try:
                return target, read(connections[target], render_drift.check_command(sudo=sudo))
            except Exception as error:
                host = connections[target].get("host")
                raise StepFailed(f"drift check on {host} failed: {error}") from error

        with ThreadPoolExecutor(max_workers=8) as pool:
            outputs = dict(pool.map(check, sorted(by_host)))
        for target, output in outputs.items():
            found = render_drift.parse(output)
            for resource in by_host[target]:
                if resource.name in found:
                    self.drifted[resource.urn] = tuple(found[resource.name])
        # A drifted step is repaired by running it again; the copies it depends on go again first,
        # since a step may consume what they staged (the file server moves its copies into place).
        for urn in list(self.drifted):
            for dependency in self.state.resources[urn].dependencies:
                copy = self.state.resources.get(dependency)
                if copy is not None and copy.type == lifecycle.COPY_TYPE:
                    self.drifted.setdefault(dependency, ("copied again for a drifted step",))

    # --- after the program ----------------------------------------------------------------------
    def finish(self, program_failed: bool) -> StackState:
        """Run the deletions (unless the program failed) and return the state to keep."""
        registered = {step.urn for step in self.steps}
        removed = [] if program_failed else [r for urn, r in self.state.resources.items() if urn not in registered]
        removals = {r.urn: Step(Action.DELETE, r.urn, r.type, r.name, (), r.inputs, None) for r in removed}
        with self._lock:
            self.steps.extend(removals.values())
        if self.preview:
            return self.state
        doomed = {r.urn: r for r in removed}
        replaced = {r.urn: r for r in self._replaced}
        order = lifecycle.deletion_order(
            [urn for urn in self.state.resources if urn in doomed or urn in replaced],
            {urn: r.dependencies for urn, r in self.state.resources.items()},
            {urn: r.parent for urn, r in self.state.resources.items()})
        kept = dict(self.state.resources)
        failure: Exception | None = None
        for urn in order:
            resource = doomed.get(urn) or replaced[urn]
            step = removals.get(urn) or Step(Action.DELETE, urn, resource.type, f"{resource.name} (replaced)")
            try:
                self._delete(resource, step)
            except Exception as error:  # kept in the state: the next up tries again
                failure = failure or error
                continue
            if urn in doomed:
                kept.pop(urn, None)
        # The new state: what this run applied, in the order it applied it, then whatever the old
        # state holds that this run neither applied nor deleted (after a failure: untouched).
        resources = dict(self.applied)
        for urn, resource in kept.items():
            resources.setdefault(urn, resource)
        self.state = StackState(self.state.stack, resources)
        if failure is not None:
            raise failure
        return self.state

    def _delete(self, resource: ResourceState, step: Step) -> None:
        """Run `resource`'s delete command (if it has one), reporting it as `step`."""
        plain = reveal(resource.inputs)
        command = lifecycle.command_to_run(resource.type, Action.DELETE, plain)
        started = time.monotonic()
        try:
            if command is not None:
                step.ran = "delete"
                self._executor().run_command(resource.type, step.name, plain, command)
        except Exception as error:
            step.error = str(error)
            raise
        finally:
            step.seconds = time.monotonic() - started
            if self.on_step is not None:
                self.on_step(step)

    def summary(self) -> dict[Action, int]:
        counts = {action: 0 for action in Action}
        for step in self.steps:
            counts[step.action] += 1
        return counts


def json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _has_computed(value: Any) -> bool:
    if value == COMPUTED:
        return True
    if isinstance(value, dict):
        return any(_has_computed(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_computed(v) for v in value)
    return False


def summary_line(counts: dict[Action, int]) -> str:
    return (f"{counts[Action.CREATE]} created, {counts[Action.UPDATE]} updated, {counts[Action.REPLACE]} replaced, "
            f"{counts[Action.DELETE]} deleted, {counts[Action.SAME]} unchanged")
