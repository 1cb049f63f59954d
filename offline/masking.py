"""What a reviewer or a log may see of a resource's inputs: every secret masked, scripts and files
as text. Shared by change review (review/plan.py) and the offline engine's preview."""

from __future__ import annotations

import os
import re
from typing import Any

import pulumi

from .program import is_secret, plain_parts, reveal
from .stackfile import PROJECT_DIR, StackConfig

MASK = "[secret]"


def stack_secrets(config: StackConfig) -> list[str]:
    """Every stack secret, and each of its lines, that could appear in plain text (longest first)."""
    values = config.values.get(f"{config.project}:secrets", {})
    return sorted({line for value in values.values() for line in [value, *value.splitlines()] if len(line) >= 6},
                  key=len, reverse=True)


def readable_connection(inputs: dict) -> dict:
    """A step's connection is secret as a whole (it holds the key); show where it goes, not the key."""
    connection = inputs.get("connection")
    if not is_secret(connection):
        return inputs
    shown = reveal(connection)
    for hop in (shown, shown.get("proxy") or {}):
        if "privateKey" in hop:
            hop["privateKey"] = MASK
    return {**inputs, "connection": shown}


def fold_update(inputs: dict) -> dict:
    """A step's update is its create (re-running the idempotent script); show it once."""
    if "update" in inputs and inputs.get("update") == inputs.get("create"):
        return {**inputs, "update": "(same as create)"}
    return inputs


def shown(value: Any, secrets: list[str]) -> Any:
    """`value` with stack secrets masked wherever they appear, keys sorted, assets by their path,
    trailing blanks dropped."""
    if isinstance(value, (pulumi.FileAsset, pulumi.FileArchive)):
        path = os.path.relpath(value.path, PROJECT_DIR) if os.path.isabs(value.path) else value.path
        return f"<{type(value).__name__} {path}>"
    if isinstance(value, dict) and "asset" in value and set(value) == {"asset", "path", "hash"}:
        return f"<{value['asset']} {value['path']}>"  # an asset in the engine's canonical form
    if isinstance(value, dict):
        return {k: shown(v, secrets) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shown(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value.rstrip(" ") if "\n" not in value else re.sub(r"[ \t]+\n", "\n", value)
    return value


def reviewable(inputs: dict, secrets: list[str]) -> Any:
    """A resource's inputs as review shows them."""
    return shown(fold_update(plain_parts(readable_connection(inputs))), secrets)
