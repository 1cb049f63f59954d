"""Hosts and the one helper for remote work.

Every change on a machine is a `step`: a rendered, check-then-act bash script (see
`render/shell.py`) run over SSH by `pulumi_command.remote.Command`. This module never builds
shell text; it wires rendered text to resources:

- one `ConnectionArgs` per host, its host key pinned, optionally through a bastion;
- secrets go to the script on stdin (one base64 line each), never into its text or environment;
- `update` is the same script as `create`, so a change to a step's script (or to the versions it
  names, written into it as a comment) re-runs exactly that step in place. `triggers` hold only
  the machine a step runs on: pulumi-command replaces a resource when a trigger changes (new half
  created first, then the old half's `delete` run), which is right when a step moves to another
  host and wrong for anything else (it would uninstall what the new half just installed). So
  `delete` runs only when a step leaves the stack or its host changes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_command import local, remote

from .render.formats.hosts import host_port
from .settings import HostSettings, Settings


@dataclass(frozen=True)
class Host:
    """A machine reached over SSH with a pinned host key."""

    name: str
    """Name under `hosts` in the stack."""
    address: str
    port: int
    user: str
    host_key: str
    """`<type> <base64>`: the only key accepted from this host."""
    private_key: pulumi.Output[str] = field(repr=False, compare=False)
    """Client key (a secret Output)."""
    bastion: Host | None = None
    sudo: bool = False

    def connection(self) -> remote.ConnectionArgs:
        proxy = None
        if self.bastion is not None:
            proxy = remote.ProxyConnectionArgs(
                host=self.bastion.address,
                port=self.bastion.port,
                user=self.bastion.user,
                private_key=self.bastion.private_key,
                host_key=self.bastion.host_key,
            )
        return remote.ConnectionArgs(
            host=self.address,
            port=self.port,
            user=self.user,
            private_key=self.private_key,
            host_key=self.host_key,
            proxy=proxy,
            dial_error_limit=10,
            per_dial_timeout=15,
        )


def hosts_from(settings: Settings) -> dict[str, Host]:
    """Every configured host, with its bastion resolved."""

    def build(name: str, host: HostSettings) -> Host:
        bastion = None
        if host.bastion is not None:
            bastion = build(host.bastion, settings.hosts[host.bastion])
        return Host(
            name=name,
            address=host.address,
            port=host.port,
            user=host.user,
            host_key=host.host_key,
            private_key=settings.secret(host.private_key_secret),
            bastion=bastion,
            sudo=host.sudo,
        )

    return {name: build(name, host) for name, host in sorted(settings.hosts.items())}


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def secret_stdin(values: Sequence[pulumi.Input[str]]) -> pulumi.Output[str]:
    """Secrets as stdin for a step: one base64 line each, in the order the script reads them."""
    joined = pulumi.Output.all(*values).apply(
        lambda items: "".join(base64.b64encode(str(v).encode()).decode() + "\n" for v in items)
    )
    return pulumi.Output.secret(joined)


def target(host: Host) -> str:
    """The machine a step runs on, as its trigger: a step that moves to another is replaced."""
    via = f" via {host_port(host.bastion.address, host.bastion.port)}" if host.bastion is not None else ""
    return f"{host.user}@{host_port(host.address, host.port)}{via}"


def _named(script: pulumi.Input[str], name: str) -> pulumi.Output[str]:
    from .render.shell import named_step

    return pulumi.Output.from_input(script).apply(lambda text: named_step(text, name))


def _versioned(script: pulumi.Input[str], versions: Sequence[str]) -> pulumi.Input[str]:
    """`script` naming `versions` in a first comment line, so that a new version is an update."""
    if not versions:
        return script
    return pulumi.Output.from_input(script).apply(lambda text: f"# versions: {' '.join(versions)}\n{text}")


def step(
    name: str,
    host: Host,
    script: pulumi.Input[str],
    *,
    parent: pulumi.Resource,
    secrets: Sequence[pulumi.Input[str]] = (),
    delete: pulumi.Input[str] | None = None,
    versions: Sequence[str] = (),
    depends_on: Sequence[pulumi.Resource] = (),
    log_stdout: bool = True,
) -> remote.Command:
    """Run the rendered `script` on `host`; re-run in place whenever its text or versions change.
    The step runs under its name, the key of the manifest of what it keeps on the host."""
    script = _versioned(_named(script, name), versions)
    if delete is not None:
        delete = _named(delete, name)
    return remote.Command(
        name,
        connection=host.connection(),
        create=script,
        update=script,
        delete=delete,
        stdin=secret_stdin(secrets) if secrets else None,
        triggers=[target(host)],
        add_previous_output_in_env=False,
        logging=remote.Logging.STDOUT_AND_STDERR if log_stdout else remote.Logging.STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def local_step(
    name: str,
    script: pulumi.Input[str],
    *,
    parent: pulumi.Resource,
    stdin: pulumi.Input[str] | None = None,
    secrets: Sequence[pulumi.Input[str]] = (),
    versions: Sequence[str] = (),
    depends_on: Sequence[pulumi.Resource] = (),
    log_stdout: bool = True,
) -> local.Command:
    """The same contract as `step`, on the admin machine (for work that runs where pulumi runs)."""
    if stdin is not None and secrets:
        raise ValueError("a local step takes either plain stdin or secrets, not both")
    script = _versioned(script, versions)
    return local.Command(
        name,
        create=script,
        update=script,
        stdin=secret_stdin(secrets) if secrets else stdin,
        interpreter=["/bin/sh", "-c"],
        add_previous_output_in_env=False,
        logging=local.Logging.STDOUT_AND_STDERR if log_stdout else local.Logging.STDERR,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def local_file(
    name: str,
    path: str,
    content: pulumi.Input[str],
    *,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> local.Command:
    """Write `content` (not a secret) to `path` on the admin machine, relative to the project."""
    from .render.local_file import write_file_script

    return local_step(name, write_file_script(path), parent=parent, stdin=content, depends_on=depends_on)


def read(command: str, host: Host, *, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.Output[str]:
    """Run a read-only `command` on `host` at every program run (preview included) and return its
    stdout: an invoke of the local OpenSSH client, host keys pinned, through the bastion if any;
    after `depends_on` stand, when given."""
    from .render.ssh_read import Hop, read_command

    def hop(h: Host) -> Hop:
        return Hop(h.address, h.port, h.user, h.host_key)

    script = read_command(hop(host), command, hop(host.bastion) if host.bastion else None)
    result = local.run_output(command=script, stdin=host.private_key, interpreter=["/bin/sh", "-c"],
                              logging=local.Logging.STDERR,
                              opts=pulumi.InvokeOutputOptions(depends_on=list(depends_on)) if depends_on else None)
    # What is read is not secret; the key that read it is, and would otherwise taint it.
    return pulumi.Output.unsecret(result.stdout)


def copy(
    name: str,
    host: Host,
    source: pulumi.Asset | pulumi.Archive,
    remote_path: str,
    *,
    parent: pulumi.Resource,
    content_id: str,
    depends_on: Sequence[pulumi.Resource] = (),
) -> remote.CopyToRemote:
    """Copy a file or directory to `host`; `content_id` (a digest of what is copied) and the host
    trigger it (a copy has no delete: replacing one only copies again)."""
    return remote.CopyToRemote(
        name,
        connection=host.connection(),
        source=source,
        remote_path=remote_path,
        triggers=[content_id, target(host)],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
