"""`preview`, `up` and `destroy` of a stack without the Pulumi CLI, as a user sees them.

    python -m offline preview STACK [--state FILE]   # every resource: create/update/replace/delete/same
    python -m offline up STACK [--state FILE]        # apply; a progress line per step, then a summary
    python -m offline destroy STACK [--state FILE]   # delete everything the stack made (data stays
                                                     # unless the stack said purge: true)
    python -m offline drift STACK                    # read-only: what changed on the hosts by hand since
                                                     # the steps last ran (no state needed: usable beside
                                                     # the Pulumi CLI); exits 3 when something drifted

The state lives in `out/<stack>/state.json` unless `--state` says otherwise; the stack file is
decrypted with PULUMI_CONFIG_PASSPHRASE(_FILE), as the Pulumi CLI would.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .engine import Engine, Step, summary_line
from .executor import Executor
from .lifecycle import Action
from .masking import reviewable, stack_secrets
from .program import ProgramRun, run_program
from .stackfile import PROJECT_DIR, StackConfig, load_stack
from .state import ResourceState, StackState, canonical

MAIN = PROJECT_DIR / "__main__.py"
SYMBOLS = {Action.CREATE: "+", Action.UPDATE: "~", Action.REPLACE: "+-", Action.DELETE: "-", Action.SAME: " "}
PREVIEW_WORDS = {Action.CREATE: "to create", Action.UPDATE: "to update", Action.REPLACE: "to replace",
                 Action.DELETE: "to delete", Action.SAME: "unchanged"}


def default_state_path(stack: str) -> Path:
    return PROJECT_DIR / "out" / stack / "state.json"


@dataclass
class Outcome:
    engine: Engine
    run: ProgramRun | None
    error: BaseException | None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def counts(self) -> dict[Action, int]:
        return self.engine.summary()

    def changes(self) -> int:
        counts = self.counts
        return sum(n for action, n in counts.items() if action is not Action.SAME)


def _lines(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=1, sort_keys=True).splitlines()


def input_diff(step: Step, secrets: list[str]) -> list[str]:
    """What drifted on the host, then a unified diff per changed input (secrets masked, scripts
    line by line)."""
    old = reviewable(step.old_inputs or {}, secrets)
    new = reviewable(step.new_inputs or {}, secrets)
    out = [f"drifted: {what}" for what in step.drift]
    for key in step.changed:
        if key == "drift":
            continue
        if key in old and key in new and old[key] == new[key]:  # only masked parts differ
            out.append(f"{key}: {old[key] if isinstance(old[key], str) else '…'} (a secret in it changed)")
            continue
        out += list(difflib.unified_diff(_lines(old.get(key, "")) if key in old else [],
                                         _lines(new.get(key, "")) if key in new else [],
                                         f"{key} (state)", f"{key} (program)", lineterm="", n=2))
    return out


def describe(step: Step) -> str:
    changed = f"  [{', '.join(step.changed)}]" if step.changed else ""
    return f"{SYMBOLS[step.action]:>2} {step.action.value:<8} {step.type}  {step.name}{changed}"


def run(config: StackConfig, state_path: Path, *, mode: str, executor: Executor | None = None,
        on_step: Callable[[Step], None] | None = None, main: Path = MAIN) -> Outcome:
    """Preview, apply (`up`) or `destroy` `config` against the state in `state_path`."""
    state = StackState.load(state_path, config.stack, config.secrets_key)
    engine = Engine(state, executor=executor, preview=mode == "preview", on_step=on_step)
    program: ProgramRun | None = None
    error: BaseException | None = None
    if mode != "destroy" and executor is not None and state.resources:
        try:
            engine.check_drift(executor.read)
        except Exception as failure:
            return Outcome(engine, None, failure)
    if mode != "destroy":
        program = run_program(config, executor=executor, preview=mode == "preview", engine=engine, main=main)
        error = program.error
    try:
        engine.finish(program_failed=error is not None)
    except Exception as failure:  # a delete failed: the rest of the state is still kept
        error = error or failure
    if mode != "preview":
        engine.state.save(state_path, config.secrets_key)
    return Outcome(engine, program, error)


def _print_preview(outcome: Outcome, secrets: list[str], out: TextIO) -> None:
    for step in sorted(outcome.engine.steps, key=lambda s: (s.action is Action.SAME, s.name)):
        if step.action is Action.SAME:
            continue
        print(describe(step), file=out)
        for line in input_diff(step, secrets):
            print(f"      {line}", file=out)
    counts = outcome.counts
    print("Resources: " + ", ".join(f"{counts[a]} {PREVIEW_WORDS[a]}" for a in Action), file=out)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["preview", "up", "destroy", "drift"])
    parser.add_argument("stack")
    parser.add_argument("--state", type=Path, help="state file (default: out/<stack>/state.json)")
    args = parser.parse_args(argv)
    config = load_stack(args.stack)
    if args.command == "drift":
        return drift(config, out=out or sys.stdout)
    state_path = args.state or default_state_path(args.stack)
    return command(args.command, config, state_path, out=out)


def drift(config: StackConfig, *, out: TextIO, local_dir: Path = PROJECT_DIR, main: Path = MAIN) -> int:
    """Report drift on every host the stack's steps run on, from the program alone (no state)."""
    program = run_program(config, main=main).raise_error()
    resources = {}
    for record in program.by_type("command:remote:Command"):
        resources[record.urn] = ResourceState(record.urn, record.type, record.name, record.parent,
                                              record.dependencies, canonical(record.inputs))
    engine = Engine(StackState(config.stack, resources))
    executor = Executor(local_dir=local_dir)
    try:
        engine.check_drift(executor.read)
    finally:
        executor.close()
    names = {urn: resources[urn].name for urn in engine.drifted if urn in resources}
    for urn, name in sorted(names.items(), key=lambda item: item[1]):
        for what in engine.drifted[urn]:
            print(f"{name}: {what}", file=out)
    print(f"{len(names)} of {len(resources)} steps drifted", file=out)
    return 3 if names else 0


def command(mode: str, config: StackConfig, state_path: Path, *, out: TextIO | None = None,
            local_dir: Path = PROJECT_DIR, main: Path = MAIN) -> int:
    """What `python -m offline MODE` does for a loaded stack; returns the exit status."""
    out = out or sys.stdout
    outcome = shown_run(mode, config, state_path, out=out, local_dir=local_dir, main=main)
    if not outcome.ok:
        print(f"error: {outcome.error}", file=out)
        return 1
    return 0


def shown_run(mode: str, config: StackConfig, state_path: Path, *, out: TextIO | None = None,
              local_dir: Path = PROJECT_DIR, main: Path = MAIN) -> Outcome:
    """`run`, printing what a user sees: the preview, or a line per step and the summary."""
    out = out or sys.stdout
    secrets = stack_secrets(config)
    started = time.monotonic()
    if mode == "preview":
        print(f"Previewing {config.stack} (state {state_path})", file=out)
        executor = Executor(local_dir=local_dir)  # reads only: drift checks, the program's reads
        try:
            outcome = run(config, state_path, mode="preview", executor=executor, main=main)
        finally:
            executor.close()
        _print_preview(outcome, secrets, out)
    else:
        verb = "Updating" if mode == "up" else "Destroying"
        print(f"{verb} {config.stack} (state {state_path})", file=out)

        def progress(step: Step) -> None:
            if step.action is Action.SAME:
                return
            ran = f"{step.ran} {step.seconds:6.1f}s" if step.ran else "nothing to run"
            status = f"  FAILED: {step.error.splitlines()[0]}" if step.error else ""
            print(f"{describe(step)}  ({ran}){status}", file=out, flush=True)

        executor = Executor(local_dir=local_dir)
        try:
            outcome = run(config, state_path, mode=mode, executor=executor, on_step=progress, main=main)
        finally:
            executor.close()
        print(f"{summary_line(outcome.counts)} in {time.monotonic() - started:.0f}s", file=out)
    return outcome


if __name__ == "__main__":
    sys.exit(main())
