"""The layout tells the truth: product code never imports the tests, no target a user runs starts
a test module, components hold no shell text, and settings stay split by service."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ["__main__.py", "components", "bundle", "policy", "review", "offline", "sandbox", "oci", "programs"]


def python_files(*places: str) -> list[Path]:
    files: list[Path] = []
    for place in places:
        path = ROOT / place
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", python_files(*PRODUCT), ids=lambda p: str(p.relative_to(ROOT)))
def test_product_code_never_imports_the_tests(path):
    assert not {m for m in imported_modules(path) if m == "tests" or m.startswith("tests.")}


def test_no_make_target_a_user_runs_starts_a_test_module():
    makefile = (ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z-]*):.*?\n((?:\t.*\n?)*)", makefile, re.M)
    assert targets
    for name, recipe in targets:
        if name == "bench":  # benchmarks may use the test fixtures
            continue
        assert "tests." not in recipe and "tests/" not in recipe.replace("$(PYTEST)", ""), name


@pytest.mark.parametrize("path", python_files(*[str(p.relative_to(ROOT)) for p in (ROOT / "components").glob("*.py")]),
                         ids=lambda p: p.name)
def test_components_hold_no_shell_text(path):
    """Shell is written by renderers (components/render) and programs/; a component only wires them.
    Quoting for the shell is the renderers' tool, so a component that needs it is building shell."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith("render.shell"):
            assert "q" not in {alias.name for alias in node.names}, f"{path.name} quotes shell itself"
    shellish = re.compile(r"""f?["'](?:cat|install -d|rm -f|mkdir|printf|systemctl|mv -f) """)
    assert not shellish.search(path.read_text()), f"{path.name} writes a shell command"


def test_settings_are_split_by_service():
    assert not (ROOT / "components/settings.py").exists()
    modules = sorted((ROOT / "components/settings").glob("*.py"))
    assert len(modules) >= 8
    for module in modules:
        lines = len(module.read_text().splitlines())
        assert lines <= 320, f"{module.name} has {lines} lines; split it along its services"
