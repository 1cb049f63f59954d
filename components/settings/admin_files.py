"""Files on the admin machine (where the program runs): the ones the stack reads, and the ones it writes.

Read (artifacts, keys, certificates, archives, layouts): a path is resolved first (`..` and
symbolic links), then must lie inside the project directory or below one of the directories the
stack lists under `adminFileRoots` (e.g. where bundles are imported, /srv/airgap), and no part of
it below that root may be hidden (`.git`, `.ssh`, `.venv`). So `/etc/passwd` or `~/.ssh/id_ed25519`
never becomes an artifact on a file server.

Written (the image lock, the Compliant Kubernetes overrides): a relative path below the project
directory, still there once links are resolved, in no hidden folder, with no name starting with
'-', and never on or inside the project's own files and folders (`PROJECT_SOURCES`).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[2]
# The project's own top-level files and folders; outputs go anywhere else (tests/test_layout.py
# keeps this list equal to what the repository holds).
PROJECT_SOURCES = (
    "Makefile", "Pulumi.yaml", "README.md", "__main__.py", "bench", "bundle", "components", "examples", "oci",
    "offline", "plans", "policy", "programs", "pyproject.toml", "requirements-dev.txt", "requirements.txt",
    "review", "sandbox", "scripts", "tests",
)
STACK_FILE = re.compile(r"Pulumi\..+\.ya?ml")
# Directories whose files are the machine's own, never a stack's input.
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run", "/sbin",
               "/sys", "/usr", "/var/lib", "/var/log", "/var/spool")
ROOTS = "admin_file_roots"
"""Key of the validation context that holds the extra roots (`adminFileRoots`, resolved)."""


def _roots(info: Any) -> tuple[Path, ...]:
    context = getattr(info, "context", None) or {}
    return (PROJECT_DIR, *(Path(root) for root in context.get(ROOTS, ())))


def _checked_text(value: object) -> str:
    if not isinstance(value, str) or not value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must be a file path (no control characters)")
    return value


def resolved(value: str) -> Path:
    """`value` (relative to the project, or absolute) with `..` and symbolic links resolved."""
    path = Path(_checked_text(value))
    return (path if path.is_absolute() else PROJECT_DIR / path).resolve()


def confined(path: Path, value: str, info: Any = None) -> Path:
    """`path` (resolved) if it lies inside an allowed root, in no hidden folder below it."""
    roots = _roots(info)
    for root in roots:
        if path.is_relative_to(root):
            hidden = [part for part in path.relative_to(root).parts if part.startswith(".")]
            if hidden:
                raise ValueError(f"{value!r} lies in the hidden {hidden[0]!r}; the stack reads no hidden files")
            return path
    extra = f" or below {', '.join(str(root) for root in roots[1:])}" if len(roots) > 1 else ""
    raise ValueError(f"{value!r} resolves to {path}, outside the project directory{extra}; copy it into "
                     "the project or list its directory under adminFileRoots")


def existing_file(value: str) -> Path:
    path = resolved(value)
    if not path.is_file():
        raise ValueError(f"file {value!r} not found (paths are relative to the project directory)")
    return path


def read_small(path: Path, value: str, limit: int = 1 << 20) -> bytes:
    """The content of a key or certificate file, which is never large."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{value!r} is larger than {limit} bytes; a key or certificate file is not")
    return data


def project_file(value: str, info: Any) -> str:
    """The absolute, resolved path of a file the stack reads on the admin machine."""
    return str(confined(existing_file(value), value, info))


def admin_root(value: str) -> str:
    """An `adminFileRoots` entry: an absolute directory, resolved, that is no system directory."""
    path = Path(_checked_text(value))
    if not path.is_absolute():
        raise ValueError(f"{value!r} is not an absolute path")
    resolved = path.resolve()
    if not resolved.is_dir():
        raise ValueError(f"{value!r} is not a directory on this machine")
    if len(resolved.parts) < 3 or any(resolved.is_relative_to(system) for system in SYSTEM_DIRS):
        raise ValueError(f"{value!r} resolves to {resolved}, a system directory or one too near '/'; list the "
                         "directory that holds the stack's files (e.g. /srv/airgap)")
    if any(part.startswith(".") for part in resolved.parts):
        raise ValueError(f"{value!r} lies in a hidden directory")
    return str(resolved)


def project_output(value: str) -> str:
    """A file or folder the program writes, relative to the project directory."""
    parts = PurePosixPath(_checked_text(value)).parts
    bad = [part for part in parts if part.startswith((".", "-"))]
    if bad:
        raise ValueError(f"{value!r}: {bad[0]!r} starts with '.' or '-'; outputs go in plain folders of the project")
    resolved = (PROJECT_DIR / value).resolve()
    if not resolved.is_relative_to(PROJECT_DIR) or resolved == PROJECT_DIR:
        raise ValueError(f"{value!r} resolves to {resolved}, outside the project directory")
    first = resolved.relative_to(PROJECT_DIR).parts[0]
    if first.startswith(".") or first in PROJECT_SOURCES or STACK_FILE.fullmatch(first):
        raise ValueError(f"{value!r} would be written on or inside the project's own {first!r}; write outputs "
                         "elsewhere (e.g. out/)")
    return value
