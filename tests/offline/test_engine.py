"""The offline engine applies a program as the Pulumi engine would: local commands that log what
they run show the order and the count of every create, update, replacement and delete."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from offline import cli
from offline.executor import Executor
from offline.lifecycle import Action
from offline.stackfile import StackConfig, key_for, new_encryption_salt
from offline.state import StackState, StateError

PROGRAM = Path(__file__).with_name("programs") / "steps.py"
PASSPHRASE = "engine-test"
SALT = new_encryption_salt(PASSPHRASE, salt=b"8 bytes!")
KEY = key_for(SALT, PASSPHRASE)


class Stack:
    def __init__(self, work: Path):
        self.work = work
        self.state = work / "state.json"

    def config(self, steps: list[dict]) -> StackConfig:
        return StackConfig("t", "s", {"t:steps": steps}, secrets_key=KEY)

    def log(self) -> list[str]:
        path = self.work / "log"
        return path.read_text().splitlines() if path.exists() else []

    def clear_log(self) -> None:
        (self.work / "log").unlink(missing_ok=True)

    def run(self, mode: str, steps: list[dict]) -> cli.Outcome:
        executor = Executor(local_dir=self.work)
        try:
            return cli.run(self.config(steps), self.state, mode=mode, executor=None if mode == "preview" else executor,
                           main=PROGRAM)
        finally:
            executor.close()


@pytest.fixture
def stack(tmp_path):
    return Stack(tmp_path)


def step(name, **extra):
    return {"name": name, **extra}


def actions(outcome) -> dict[str, Action]:
    return {s.name: s.action for s in outcome.engine.steps}


def test_up_creates_in_dependency_order_and_a_second_up_changes_nothing(stack):
    steps = [step("a"), step("b", after=["a"]), step("c", after=["b"])]
    first = stack.run("up", steps)
    assert first.ok, first.error
    assert stack.log() == ["create a", "create b", "create c"]
    stack.clear_log()
    second = stack.run("up", steps)
    assert second.ok and second.changes() == 0
    assert second.counts[Action.SAME] == 3
    assert stack.log() == [], "an unchanged resource runs nothing"


def test_a_changed_script_runs_its_update_command_in_place(stack):
    stack.run("up", [step("a", update="echo update a >> log"), step("b")])
    stack.clear_log()
    outcome = stack.run("up", [step("a", create="echo create a v2 >> log", update="echo update a v2 >> log"),
                               step("b")])
    assert actions(outcome) == {"a": Action.UPDATE, "b": Action.SAME}
    assert stack.log() == ["update a v2"], "update runs the update command, nothing is deleted"


def test_without_an_update_command_an_update_runs_create(stack):
    stack.run("up", [step("a")])
    stack.clear_log()
    stack.run("up", [step("a", create="echo create a v2 >> log")])
    assert stack.log() == ["create a v2"]


def test_a_changed_trigger_replaces_creating_before_deleting(stack):
    stack.run("up", [step("a", triggers=["1"])])
    stack.clear_log()
    outcome = stack.run("up", [step("a", triggers=["2"], create="echo create a2 >> log")])
    assert actions(outcome) == {"a": Action.REPLACE}
    assert stack.log() == ["create a2", "delete a"], "the old half is deleted after the new one exists"


def test_delete_before_replace_deletes_first(stack):
    stack.run("up", [step("a", triggers=["1"], deleteBeforeReplace=True)])
    stack.clear_log()
    stack.run("up", [step("a", triggers=["2"], create="echo create a2 >> log", deleteBeforeReplace=True)])
    assert stack.log() == ["delete a", "create a2"]


def test_a_removed_resource_is_deleted_dependants_first(stack):
    stack.run("up", [step("base"), step("mid", after=["base"]), step("top", after=["mid"]), step("other")])
    stack.clear_log()
    outcome = stack.run("up", [step("other")])
    assert outcome.ok, outcome.error
    assert stack.log() == ["delete top", "delete mid", "delete base"]
    assert outcome.counts[Action.DELETE] == 3
    assert [r.name for r in StackState.load(stack.state, "s", KEY).resources.values()] == ["other"]


def test_a_failed_step_keeps_what_was_applied_and_the_next_up_finishes(stack):
    broken = [step("a"), step("b", after=["a"], create="echo create b >> log; exit 3"), step("c")]
    outcome = stack.run("up", broken)
    assert not outcome.ok and "exited with status 3" in str(outcome.error)
    kept = {r.name for r in StackState.load(stack.state, "s", KEY).resources.values()}
    assert kept == {"a", "c"}, "what succeeded is in the state; the failed step is not"
    stack.clear_log()
    fixed = stack.run("up", [step("a"), step("b", after=["a"]), step("c")])
    assert fixed.ok
    assert actions(fixed) == {"a": Action.SAME, "b": Action.CREATE, "c": Action.SAME}
    assert stack.log() == ["create b"]


def test_a_failed_program_deletes_nothing(stack):
    stack.run("up", [step("a"), step("b")])
    stack.clear_log()
    outcome = stack.run("up", [step("b", create="exit 1")])
    assert not outcome.ok
    assert "delete a" not in stack.log(), "after a failure nothing is removed"
    assert {r.name for r in StackState.load(stack.state, "s", KEY).resources.values()} == {"a", "b"}


def test_preview_decides_without_running_or_writing(stack):
    stack.run("up", [step("a", triggers=["1"]), step("b"), step("c")])
    before = stack.state.read_bytes()
    stack.clear_log()
    outcome = stack.run("preview", [step("a", triggers=["2"]), step("b", create="echo v2 >> log"), step("d")])
    assert actions(outcome) == {"a": Action.REPLACE, "b": Action.UPDATE, "d": Action.CREATE, "c": Action.DELETE}
    assert stack.log() == [] and stack.state.read_bytes() == before


def test_destroy_deletes_everything_dependants_first(stack):
    stack.run("up", [step("a"), step("b", after=["a"])])
    stack.clear_log()
    outcome = stack.run("destroy", [])
    assert outcome.ok and outcome.counts[Action.DELETE] == 2
    assert stack.log() == ["delete b", "delete a"]
    assert StackState.load(stack.state, "s", KEY).resources == {}


def test_no_secret_in_plain_text_in_the_state(stack):
    secret = "hunter2-the-stdin-secret"
    stack.run("up", [step("a", secret=secret, create="cat >> log")])
    assert stack.log() == [secret], "the secret reached the command on stdin"
    text = stack.state.read_text()
    assert secret not in text and '"secure": "v1:' in text
    assert oct(stack.state.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(StateError, match="wrong passphrase"):
        StackState.load(stack.state, "s", key_for(new_encryption_salt("other", salt=b"8 bytes!"), "other"))
    stack.clear_log()
    assert stack.run("up", [step("a", secret=secret, create="cat >> log")]).changes() == 0


def test_preview_prints_each_decision_with_a_masked_diff(stack, tmp_path):
    stack.run("up", [step("a", secret="s3cr3t-value", create="echo one >> log\necho two >> log")])
    out = io.StringIO()
    config = stack.config([step("a", secret="another-secret", create="echo one >> log\necho 2 >> log"), step("n")])
    status = cli.command("preview", config, stack.state, out=out, main=PROGRAM)
    text = out.getvalue()
    assert status == 0
    assert " ~ update   command:local:Command  a  [create, stdin]" in text
    assert "-echo two >> log" in text and "+echo 2 >> log" in text, text
    assert "s3cr3t-value" not in text and "another-secret" not in text
    assert " + create   command:local:Command  n" in text
    assert "Resources: 1 to create, 1 to update, 0 to replace, 0 to delete, 0 unchanged" in text


def test_state_of_another_stack_is_refused(stack):
    stack.run("up", [step("a")])
    with pytest.raises(StateError, match="stack 's'"):
        StackState.load(stack.state, "other", KEY)
    assert json.loads(stack.state.read_text())["stack"] == "s"
