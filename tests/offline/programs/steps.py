"""A small Pulumi program for the engine's tests: local commands declared from the `steps` config,
each writing what it does to a log file in the working directory."""

import json

import pulumi
from pulumi_command import local

steps = json.loads(pulumi.Config().get("steps") or "[]")
made: dict[str, local.Command] = {}
for step in steps:
    name = step["name"]
    made[name] = local.Command(
        name,
        create=step.get("create", f"echo create {name} >> log"),
        update=step.get("update"),
        delete=step.get("delete", f"echo delete {name} >> log"),
        triggers=step.get("triggers"),
        stdin=pulumi.Output.secret(step["secret"]) if "secret" in step else None,
        opts=pulumi.ResourceOptions(depends_on=[made[d] for d in step.get("after", [])],
                                    delete_before_replace=step.get("deleteBeforeReplace", False)),
    )
pulumi.export("stdout", {name: command.stdout for name, command in made.items()})
