"""The offline engine's state: per stack, every resource it created with its inputs and outputs,
kept in one JSON file as Pulumi keeps a stack's checkpoint.

Written atomically (a new file beside the old one, synced, then renamed; mode 0600). Secrets never
appear in it as plain text: every value the program marked secret, and every output the resource
declares secret (`additionalSecretOutputs`), is sealed with the stack's own secrets key (the
passphrase scheme of the stack file) as `{"secure": "v1:…"}`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from .program import SECRET_SIG, SECRET_VALUE_SIG, is_secret
from .stackfile import PROJECT_DIR, decrypt, encrypt

VERSION = 1
COMPUTED = "<computed>"
"""A value not known until the resource it comes from is applied (shown in a preview)."""


class StateError(RuntimeError):
    pass


@dataclass
class ResourceState:
    urn: str
    type: str
    name: str
    parent: str
    dependencies: list[str]
    inputs: dict[str, Any]
    """Canonical inputs (see `canonical`): secrets still marked, assets as their digest."""
    outputs: dict[str, Any] = field(default_factory=dict)
    replace_on_changes: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    secret_outputs: list[str] = field(default_factory=list)


def wrap_secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG: SECRET_VALUE_SIG, "value": value}


def _tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode() + b"\0")
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def canonical(value: Any) -> Any:
    """A wire value as plain JSON data: assets become their kind, path and content digest (what
    the engine compares), unknowns become COMPUTED, secrets keep their marker."""
    if isinstance(value, (pulumi.FileAsset, pulumi.FileArchive)):
        path = Path(value.path) if os.path.isabs(value.path) else PROJECT_DIR / value.path
        shown = os.path.relpath(path, PROJECT_DIR) if path.is_relative_to(PROJECT_DIR) else str(path)
        return {"asset": type(value).__name__, "path": shown, "hash": _tree_digest(path) if path.exists() else None}
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return COMPUTED  # pulumi's Unknown (and anything else the wire can carry) is not known yet


def seal(value: Any, key: bytes | None) -> Any:
    """Secret-marked values replaced by `{"secure": …}`, encrypted with `key`."""
    if is_secret(value):
        if key is None:
            raise StateError("the state must keep a secret but the stack has no secrets key (encryptionsalt); "
                             "initialise it with a passphrase")
        return {"secure": encrypt(key, json.dumps(value.get("value"), sort_keys=True))}
    if isinstance(value, dict):
        return {k: seal(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [seal(v, key) for v in value]
    return value


def unseal(value: Any, key: bytes | None) -> Any:
    if isinstance(value, dict) and set(value) == {"secure"}:
        if key is None:
            raise StateError("the state holds secrets but no secrets key was given")
        try:
            return wrap_secret(json.loads(decrypt(key, value["secure"])))
        except Exception as error:  # InvalidTag: another passphrase sealed it
            raise StateError("cannot open a secret in the state: wrong passphrase for this stack") from error
    if isinstance(value, dict):
        return {k: unseal(v, key) for k, v in value.items()}
    if isinstance(value, list):
        return [unseal(v, key) for v in value]
    return value


def mark_outputs(outputs: dict[str, Any], inputs: dict[str, Any], secret_outputs: list[str]) -> dict[str, Any]:
    """Outputs marked secret as the engine marks them (to be sealed): those the resource declares
    secret, and those that echo an input the program gave as a secret."""
    def secret(key: str) -> bool:
        return key in secret_outputs or is_secret(inputs.get(key))
    return {key: wrap_secret(value) if secret(key) and not is_secret(value) else value
            for key, value in outputs.items()}


@dataclass
class StackState:
    stack: str
    resources: dict[str, ResourceState] = field(default_factory=dict)
    """By URN, in the order they were created."""

    @classmethod
    def load(cls, path: Path, stack: str, key: bytes | None) -> StackState:
        if not path.exists():
            return cls(stack)
        try:
            document = json.loads(path.read_text())
        except ValueError as error:
            raise StateError(f"{path}: not a state file ({error})") from error
        if document.get("version") != VERSION or document.get("stack") != stack:
            raise StateError(f"{path}: holds version {document.get('version')} of stack {document.get('stack')!r}; "
                             f"expected version {VERSION} of {stack!r}")
        resources = {}
        for item in document.get("resources", []):
            item = unseal(item, key)
            resources[item["urn"]] = ResourceState(**item)
        return cls(stack, resources)

    def save(self, path: Path, key: bytes | None) -> None:
        document = {"version": VERSION, "stack": self.stack,
                    "resources": [seal(asdict(resource), key) for resource in self.resources.values()]}
        text = json.dumps(document, indent=1, sort_keys=True) + "\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

