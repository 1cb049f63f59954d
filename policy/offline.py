"""Run the policy pack over a stack without the Pulumi CLI: the program is evaluated under the
mock runtime (offline/program.py), and every recorded resource goes through
pulumi_policy's own deserialisation and `unknown_checking_proxy` into each policy, with its
enforcement level and the stack's policy configuration (policy/config/<stack>.json, the file
`pulumi preview --policy-pack policy --policy-pack-config` takes).

    python -m policy.offline [STACK ...]     # exits non-zero on any mandatory violation
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pulumi_policy import EnforcementLevel
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

from offline.program import Recorded, run_program
from offline.stackfile import PROJECT_DIR, StackConfig, load_stack
from policy.policies import POLICIES, STACK_POLICIES

CONFIG_DIR = Path(__file__).resolve().parent / "config"


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.level}] {self.policy}: {self.resource}: {self.message}"


def policy_config(stack: str) -> dict:
    path = CONFIG_DIR / f"{stack}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _options(record: Recorded) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=bool(record.options.get("protect")), ignore_changes=[],
        delete_before_replace=record.options.get("deleteBeforeReplace"),
        aliases=list(record.options.get("aliases", [])), custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=list(record.options.get("additionalSecretOutputs", [])), parent=record.parent or None,
    )


def _args(record: Recorded, config: dict) -> ResourceValidationArgs:
    props = unknown_checking_proxy(deserialize_properties(record.inputs))
    return ResourceValidationArgs(record.type, props, record.urn, record.name, _options(record), None, config, {})


def _level(declared: EnforcementLevel | None, configured: object) -> EnforcementLevel:
    """The level a policy runs at: the stack's policy configuration wins over the declared one."""
    level = declared or EnforcementLevel.ADVISORY
    if isinstance(configured, dict) and "enforcementLevel" in configured:
        return EnforcementLevel(configured["enforcementLevel"])
    return level


def check_records(records: Iterable[Recorded], config: dict) -> list[Violation]:
    violations: list[Violation] = []
    for record in records:
        for policy in POLICIES:
            level = _level(policy.enforcement_level, config.get(policy.name))
            if level == EnforcementLevel.DISABLED:
                continue
            policy_settings = {k: v for k, v in {**config.get("all", {}), **config.get(policy.name, {})}.items()
                               if k != "enforcementLevel"}

            def report(message: str, urn: str | None = None, policy=policy, level=level, record=record) -> None:
                violations.append(Violation(policy.name, level.value, record.name, message))

            policy.validate(_args(record, policy_settings), report)
    return violations


def _settings(policy_name: str, config: dict) -> dict:
    merged = {**config.get("all", {}), **config.get(policy_name, {})}
    return {k: v for k, v in merged.items() if k != "enforcementLevel"}


def check_stack_records(records: Iterable[Recorded], config: dict) -> list[Violation]:
    """The stack policies over every recorded resource at once, as CrossGuard runs them."""
    records = list(records)
    resources = [PolicyResource(r.type, unknown_checking_proxy(deserialize_properties(r.inputs)), r.urn, r.name,
                                _options(r), None, None, [], {}) for r in records]
    violations: list[Violation] = []
    for policy in STACK_POLICIES:
        level = _level(policy.enforcement_level, config.get(policy.name))
        if level == EnforcementLevel.DISABLED:
            continue

        def report(message: str, urn: str | None = None, policy=policy, level=level) -> None:
            violations.append(Violation(policy.name, level.value, "stack", message))

        policy.validate(StackValidationArgs(resources, _settings(policy.name, config)), report)
    return violations


def check_stack(config: StackConfig, policy_settings: dict | None = None) -> list[Violation]:
    run = run_program(config).raise_error()
    settings = policy_config(config.stack) if policy_settings is None else policy_settings
    return check_records(run.records, settings) + check_stack_records(run.records, settings)


def main(argv: list[str] | None = None) -> int:
    stacks = argv or sorted(p.name.split(".")[1] for p in PROJECT_DIR.glob("Pulumi.*.yaml"))
    failed = False
    for stack in stacks:
        violations = check_stack(load_stack(stack))
        mandatory = [v for v in violations if v.level == "mandatory"]
        failed |= bool(mandatory)
        print(f"{stack}: {len(mandatory)} mandatory, {len(violations) - len(mandatory)} advisory")
        for violation in violations:
            print(f"  {violation}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
