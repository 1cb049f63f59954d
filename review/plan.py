"""Change review without the Pulumi CLI: a deterministic plan of a stack, and a Markdown diff of
the plans at a git ref and in the working tree, readable in a pull request.

    python -m review.plan STACK [--out FILE]          # make plan STACK=sandbox
    python -m review.plan diff --base REF [STACK ...]  # make plan-diff BASE=origin/main

The plan lists every resource the program registers (type, name, parent, dependencies) with all
its inputs: rendered scripts and configuration files in full, as block text, and every secret
masked (secret-marked values, and any stack secret wherever it would appear).
"""

from __future__ import annotations

import argparse
import datetime
import difflib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pulumi
import yaml

from offline.program import is_secret, plain_parts, reveal, run_program
from offline.stackfile import PROJECT_DIR, load_stack

MASK = "[secret]"
# Certificates in a plan are issued at this fixed instant, so that a plan depends on the code and
# the stack only, never on the day it is made (a real preview shows the certificates kept in state).
PLAN_TLS_ISSUED_AT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _plain(value, secrets: list[str]):
    if isinstance(value, (pulumi.FileAsset, pulumi.FileArchive)):
        path = os.path.relpath(value.path, PROJECT_DIR) if os.path.isabs(value.path) else value.path
        return f"<{type(value).__name__} {path}>"
    if isinstance(value, dict):
        return {k: _plain(v, secrets) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_plain(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, MASK)
        return value.rstrip(" ") if "\n" not in value else re.sub(r"[ \t]+\n", "\n", value)
    return value


def _readable_connection(inputs: dict) -> dict:
    """A step's connection is secret as a whole (it holds the key); show where it goes, not the key."""
    connection = inputs.get("connection")
    if not is_secret(connection):
        return inputs
    shown = reveal(connection)
    for hop in (shown, shown.get("proxy") or {}):
        if "privateKey" in hop:
            hop["privateKey"] = MASK
    return {**inputs, "connection": shown}


def _fold_update(inputs: dict) -> dict:
    """A step's update is its create (re-running the idempotent script); show it once."""
    if "update" in inputs and inputs.get("update") == inputs.get("create"):
        return {**inputs, "update": "(same as create)"}
    return inputs


def plan(stack: str, config=None) -> str:
    """The plan of `stack` (or of `config`, a loaded stack) as YAML text, one document per resource,
    sorted by URN."""
    config = config or load_stack(stack)
    run = run_program(config, tls_issued_at=PLAN_TLS_ISSUED_AT).raise_error()
    secrets = sorted({line for value in config.values.get(f"{config.project}:secrets", {}).values()
                      for line in [value, *value.splitlines()] if len(line) >= 6}, key=len, reverse=True)
    documents = []
    for record in sorted(run.records, key=lambda r: r.urn):
        documents.append({
            "resource": f"{record.type} {record.name}",
            "parent": record.parent.rsplit("::", 1)[-1] if record.parent else None,
            "dependsOn": sorted(d.rsplit("::", 1)[-1] for d in record.dependencies),
            "inputs": _plain(_fold_update(plain_parts(_readable_connection(record.inputs))), secrets),
        })
    exports = _plain(plain_parts(run.exports), secrets)
    documents.append({"resource": "exports", "inputs": exports})
    return yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120,
                         allow_unicode=True, explicit_start=True)


def _resources(text: str) -> dict[str, str]:
    """Plan text split per resource."""
    blocks: dict[str, str] = {}
    # Documents start with a bare `---` line; block text is indented, so it never holds one.
    for block in re.split(r"^---\n", text, flags=re.M):
        if block.strip():
            name = next(line for line in block.splitlines() if line.startswith("resource:"))[len("resource: "):]
            blocks[name] = block
    return blocks


def diff_markdown(stack: str, before: str, after: str, base: str) -> str:
    old, new = _resources(before), _resources(after)
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(name for name in set(old) & set(new) if old[name] != new[name])
    unchanged = len(set(old) & set(new)) - len(changed)
    lines = [f"## Stack `{stack}` (against `{base}`)", "",
             f"{len(changed)} changed, {len(added)} added, {len(removed)} removed, {unchanged} unchanged.", ""]
    for name in added:
        lines += [f"### added: `{name}`", "", "```yaml", new[name].rstrip(), "```", ""]
    for name in removed:
        lines += [f"### removed: `{name}`", ""]
    for name in changed:
        body = difflib.unified_diff(old[name].splitlines(), new[name].splitlines(), f"{base}", "working tree",
                                    lineterm="", n=3)
        lines += [f"### changed: `{name}`", "", "```diff", *list(body)[2:], "```", ""]
    return "\n".join(lines)


def plan_at(ref: str, stack: str) -> str:
    """The plan the code at git `ref` produces for `stack` (in a throwaway worktree)."""
    with tempfile.TemporaryDirectory(prefix="airgap-plan-") as tmp:
        worktree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(worktree), ref], cwd=PROJECT_DIR,
                       check=True)
        try:
            result = subprocess.run([sys.executable, "-m", "review.plan", stack], cwd=worktree,
                                    capture_output=True, text=True, timeout=900)
            if result.returncode != 0:
                raise SystemExit(f"the plan at {ref} failed:\n{result.stderr[-2000:]}")
            return result.stdout
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=PROJECT_DIR, check=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "diff":
        parser = argparse.ArgumentParser(prog="python -m review.plan diff")
        parser.add_argument("--base", required=True)
        parser.add_argument("stacks", nargs="*")
        args = parser.parse_args(argv[1:])
        stacks = args.stacks or sorted(p.name.split(".")[1] for p in PROJECT_DIR.glob("Pulumi.*.yaml"))
        print("\n".join(diff_markdown(s, plan_at(args.base, s), plan(s), args.base) for s in stacks))
        return 0
    parser = argparse.ArgumentParser(prog="python -m review.plan")
    parser.add_argument("stack")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    text = plan(args.stack)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
