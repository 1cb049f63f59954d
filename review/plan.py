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
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from offline.masking import MASK, reviewable, shown, stack_secrets
from offline.program import plain_parts, run_program
from offline.stackfile import PROJECT_DIR, load_stack

__all__ = ["MASK", "diff_markdown", "plan", "plan_at"]
# Certificates in a plan are issued at this fixed instant, so that a plan depends on the code and
# the stack only, never on the day it is made (a real preview shows the certificates kept in state).
PLAN_TLS_ISSUED_AT = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def plan(stack: str, config=None) -> str:
    """The plan of `stack` (or of `config`, a loaded stack) as YAML text, one document per resource,
    sorted by URN."""
    config = config or load_stack(stack)
    run = run_program(config, tls_issued_at=PLAN_TLS_ISSUED_AT).raise_error()
    secrets = stack_secrets(config)
    documents = []
    for record in sorted(run.records, key=lambda r: r.urn):
        documents.append({
            "resource": f"{record.type} {record.name}",
            "parent": record.parent.rsplit("::", 1)[-1] if record.parent else None,
            "dependsOn": sorted(d.rsplit("::", 1)[-1] for d in record.dependencies),
            "inputs": reviewable(record.inputs, secrets),
        })
    exports = shown(plain_parts(run.exports), secrets)
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
