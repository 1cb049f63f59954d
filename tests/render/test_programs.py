"""programs/: every program that runs on a host is a file there, used by a renderer, and clean
under bash -n, shellcheck and ruff; the loader embeds and parameterizes without formatting values
into program text; every step every shipped stack renders parses."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.render import programs
from offline.program import plain_parts, run_program
from offline.stackfile import PROJECT_DIR, load_stack

RENDERERS = PROJECT_DIR / "components" / "render"
HOST_PROGRAMS = sorted(p for p in programs.ROOT.rglob("*") if p.suffix in (".sh", ".py"))
SHELL_PROGRAMS = [p for p in HOST_PROGRAMS if p.suffix == ".sh"]
STACKS = sorted(p.name.split(".")[1] for p in PROJECT_DIR.glob("Pulumi.*.yaml"))


def name(path: Path) -> str:
    return path.relative_to(programs.ROOT).as_posix()


def loaded_by_renderers() -> set[str]:
    """Program names passed as a literal to `programs.load` or `programs.with_settings`."""
    names = set()
    for module in RENDERERS.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("load", "with_settings") and node.args
                    and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names.add(node.args[0].value)
    return names


def embedded() -> set[str]:
    return {line[len(programs.EMBED):].strip() for path in HOST_PROGRAMS
            for line in path.read_text().splitlines() if line.startswith(programs.EMBED)}


def test_every_program_is_used_and_every_use_is_a_program():
    assert HOST_PROGRAMS, "programs/ holds the host programs"
    used = loaded_by_renderers() | embedded()
    orphans = sorted(name(p) for p in HOST_PROGRAMS if name(p) not in used)
    assert not orphans, f"files under programs/ no renderer loads or embeds: {orphans}"
    missing = sorted(used - {name(p) for p in HOST_PROGRAMS})
    assert not missing, f"renderers load programs that are not there: {missing}"


@pytest.mark.parametrize("path", SHELL_PROGRAMS, ids=name)
def test_shell_programs_parse(path):
    subprocess.run(["bash", "-n", str(path)], check=True)
    if path.read_text().startswith("#!/bin/sh"):
        subprocess.run(["sh", "-n", str(path)], check=True)  # run by a POSIX sh, not bash


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (Debian: shellcheck)")
def test_shellcheck_reports_nothing():
    result = subprocess.run(["shellcheck", "--norc", *map(str, SHELL_PROGRAMS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_reports_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(programs.ROOT)],
                            capture_output=True, text=True, cwd=PROJECT_DIR)
    if "No module named ruff" in result.stderr:
        pytest.skip("ruff is not installed in this Python (requirements-dev.txt)")
    assert result.returncode == 0, result.stdout + result.stderr


# --- the loader ---------------------------------------------------------------------------------

def test_embed_puts_the_program_inside_the_heredoc(tmp_path, monkeypatch):
    (tmp_path / "inner.py").write_text("print('inner')\n")
    (tmp_path / "outer.sh").write_text("python3 - <<'PY'\n#embed inner.py\nPY\n")
    (tmp_path / "bad.sh").write_text("cat <<'EOF'\n#embed ends.txt\nEOF\n")
    (tmp_path / "ends.txt").write_text("x\nEOF\ny\n")
    monkeypatch.setattr(programs, "ROOT", tmp_path)
    programs.load.cache_clear()
    try:
        assert programs.load("outer.sh") == "python3 - <<'PY'\nprint('inner')\nPY\n"
        result = subprocess.run(["bash", "-c", programs.load("outer.sh")], capture_output=True, text=True)
        assert result.stdout == "inner\n"
        with pytest.raises(ValueError, match="end line"):
            programs.load("bad.sh")
    finally:
        programs.load.cache_clear()


def test_settings_are_quoted_assignments_after_the_shebang():
    text = programs.with_settings("apt_mirror/update.sh", ROOT="/srv/a b; $(touch x)", KEEP=3)
    lines = text.splitlines()
    assert lines[:3] == ["#!/bin/bash", "ROOT='/srv/a b; $(touch x)'", "KEEP=3"]
    assert "\n".join(lines[3:]) + "\n" == programs.load("apt_mirror/update.sh").split("\n", 1)[1]
    shown = subprocess.run(["bash", "-c", "\n".join(lines[1:3]) + '\nprintf "%s\\n" "$ROOT"'],
                           capture_output=True, text=True, check=True).stdout
    assert shown == "/srv/a b; $(touch x)\n"
    with pytest.raises(ValueError, match="not a shell variable name"):
        programs.with_settings("apt_mirror/update.sh", **{"ROOT=x; y": "1"})


# --- what the shipped stacks render ---------------------------------------------------------------

STEP = re.compile(r"^cat > \"\$step\" <<'(?P<end>\w+)'\n(?P<script>.*?)^(?P=end)\n", re.M | re.S)
PROGRAM_FILE = re.compile(r"^airgap_install_file (?P<path>\S+) 0755 \S+ \S+ <<'(?P<end>\w+)'\n(?P<text>.*?)^(?P=end)\n",
                          re.M | re.S)


@pytest.fixture(scope="module", params=STACKS)
def stack_commands(request) -> list[tuple[str, str]]:
    """(resource and input, command text) of every command the stack runs."""
    run = run_program(load_stack(request.param)).raise_error()
    commands = []
    for record in run.records:
        if record.type in ("command:remote:Command", "command:local:Command"):
            inputs = plain_parts(record.inputs)
            commands += [(f"{request.param} {record.name} {key}", inputs[key]) for key in ("create", "update", "delete")
                         if isinstance(inputs.get(key), str)]
    assert commands, f"stack {request.param} runs no command"
    return commands


def test_every_rendered_step_parses(stack_commands, tmp_path):
    scripts = 0
    for label, command in stack_commands:
        parts = [(label, command)]
        for step in STEP.finditer(command):  # a step: the script the wrapper writes, then runs with bash
            parts.append((f"{label} (step script)", step["script"]))
            parts += [(f"{label} ({installed['path']})", installed["text"])
                      for installed in PROGRAM_FILE.finditer(step["script"]) if installed["text"].startswith("#!")]
        for part, text in parts:
            path = tmp_path / "script"
            path.write_text(text)
            result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
            assert result.returncode == 0, f"{part}: {result.stderr}"
            scripts += 1
    assert scripts > len(stack_commands), "the steps' own scripts were found and checked"
