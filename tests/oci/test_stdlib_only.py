"""oci/ is shipped to hosts and run by their system python3: it imports the standard library and
itself, nothing else."""

import ast
import sys
from pathlib import Path

import pytest

import oci

MODULES = sorted(Path(oci.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_imports_only_the_standard_library_and_oci(path):
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert imported - sys.stdlib_module_names - {"oci"} == set()
