"""Change review: plans are deterministic, never hold a secret, and a one-line change reads as a small diff."""

from __future__ import annotations

import datetime
import difflib
import os
import re
import shutil
import subprocess
import sys

import pytest

from offline import tls_emulation
from offline.stackfile import PROJECT_DIR, load_stack
from review.plan import MASK, diff_markdown, plan
from sandbox.keys import client_key, openssh_private

STACKS = sorted(p.name.split(".")[1] for p in PROJECT_DIR.glob("Pulumi.*.yaml"))


def _plan_in_process(stack: str, hashseed: str) -> bytes:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    return subprocess.run([sys.executable, "-m", "review.plan", stack], cwd=PROJECT_DIR, env=env,
                          capture_output=True, check=True, timeout=600).stdout


@pytest.mark.parametrize("stack", STACKS)
def test_a_plan_is_byte_identical_across_two_evaluations(stack):
    # Separate interpreters with different hash seeds: no set or dict order leaks into the plan.
    first, second = _plan_in_process(stack, "1"), _plan_in_process(stack, "2")
    assert first == second
    assert first.count(b"\n---\n") + 1 > 10, "the plan lists the stack's resources"


@pytest.mark.parametrize("stack", STACKS)
def test_the_committed_plan_is_the_plan_the_code_makes(stack):
    # plans/<stack>.yaml is committed: a change that alters what a stack does reaches review as a
    # diff of that file, and cannot land without it.
    committed = (PROJECT_DIR / "plans" / f"{stack}.yaml").read_text()
    made = plan(stack)
    if made != committed:
        diff = "\n".join(list(difflib.unified_diff(committed.splitlines(), made.splitlines(), "committed", "made",
                                                   lineterm=""))[:40])
        pytest.fail(f"plans/{stack}.yaml is not the plan this code makes; run `make plans` and commit "
                    f"the result with the change:\n{diff}")


def test_a_plan_does_not_depend_on_the_day_it_is_made(monkeypatch):
    before = plan("dev")
    monkeypatch.setattr(tls_emulation, "start_of_year",
                        lambda: datetime.datetime(2031, 1, 1, tzinfo=datetime.UTC))
    assert plan("dev") == before
    assert "BEGIN CERTIFICATE" in before, "the plan holds issued certificates, the date-dependent part"


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_appears_in_a_plan(stack):
    config = load_stack(stack)
    text = plan(stack, config)
    secrets = config.values["airgap-infra:secrets"]
    assert secrets, "the stack has secrets to hide"
    for name, value in secrets.items():
        for line in [value, *value.splitlines()]:
            if len(line.strip()) >= 6 and not line.startswith("-----"):
                assert line not in text, f"secrets.{name} appears in the plan"
    assert "PRIVATE KEY-----\n" not in text
    assert MASK in text, "secret inputs are shown as masked, not dropped"


def test_the_sandbox_plan_masks_the_derived_ssh_key():
    text = plan("sandbox")
    body = "".join(openssh_private(client_key()).strip().splitlines()[1:-1])
    assert body[:40] not in text.replace("\n", "")


def test_scripts_and_config_files_are_shown_in_full_as_block_text():
    text = plan("sandbox")
    # A rendered remote script, as a YAML block, with its shell lines one per line.
    assert re.search(r"^  create: \|\n    set -e\n", text, re.M)
    assert "\n    set -euo pipefail\n" in text
    # A rendered configuration file (the registry's config.yml) appears in full, not as a digest.
    assert re.search(r"^    storage:\n      filesystem:\n", text, re.M) or "rootdirectory:" in text


def test_a_one_line_config_change_is_a_small_readable_diff():
    before_config = load_stack("dev")
    after_config = load_stack("dev")
    after_config.values["airgap-infra:images"] = [
        "nginx:1.27.2" if image == "nginx:1.25.5" else image
        for image in after_config.values["airgap-infra:images"]]
    before, after = plan("dev", before_config), plan("dev", after_config)
    markdown = diff_markdown("dev", before, after, "main")
    summary = re.search(r"(\d+) changed, (\d+) added, (\d+) removed, (\d+) unchanged", markdown)
    assert summary is not None, markdown
    changed, added, removed, unchanged = map(int, summary.groups())
    assert (added, removed) == (0, 0)
    assert 1 <= changed <= 4 and unchanged > 10 * changed
    diff_lines = [line for line in markdown.splitlines() if line[:1] in "+-" and not line.startswith("---")]
    assert any("nginx:1.27.2" in line for line in diff_lines if line.startswith("+"))
    assert any("nginx:1.25.5" in line for line in diff_lines if line.startswith("-"))
    assert len(diff_lines) <= 12 * changed, "\n".join(diff_lines)
    assert "```diff" in markdown and "### changed:" in markdown


@pytest.mark.skipif(shutil.which("git") is None, reason="git is part of the bootstrap")
def test_plan_diff_against_a_git_ref(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_DIR), str(clone)], check=True)
    stack_file = clone / "Pulumi.dev.yaml"
    stack_file.write_text(stack_file.read_text().replace("postgres:15.8", "postgres:15.9"))
    result = subprocess.run([sys.executable, "-m", "review.plan", "diff", "--base", "HEAD", "dev"], cwd=clone,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "## Stack `dev` (against `HEAD`)" in result.stdout
    assert "+" in result.stdout and "postgres:15.9" in result.stdout
    assert re.search(r"[1-4] changed, 0 added, 0 removed", result.stdout)
    listed = subprocess.run(["git", "worktree", "list"], cwd=clone, capture_output=True, text=True).stdout
    assert len(listed.strip().splitlines()) == 1, "the throwaway worktree is removed"
