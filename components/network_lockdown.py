"""`NetworkLockdown`: deny-by-default egress on every managed host, allowing what the stack uses.

Each host the stack runs steps on gets an nftables table of its own with exactly the endpoints
components/egress.py derives for it (rendered by render/firewall.py), unless `network.optOut`
names it with a reason. Children, per locked-down host:

- `<name>-<host>`: the rules, their boot unit and the audit's timer installed, then the rules
  loaded with a rollback armed (its `delete` removes our table and nothing else);
- `<name>-<host>-confirm`: on the admin machine, a fresh SSH connection through the new rules
  confirms them. One that does not get through fails this step once the host has put its
  previous rules back by itself, saying why.

The component's own inputs list every managed host with its lockdown or its opt-out and reason:
the policy pack reads them. Every other component waits for this one, so a host's rules already
allow what a step on it is about to reach (a new upstream, a new mirror).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from . import egress, remote
from .render import firewall as render
from .render.shell import step_script
from .render.ssh_read import Hop
from .settings import Settings


@dataclass(frozen=True)
class NetworkLockdownArgs:
    settings: Settings
    """The whole stack: what a host reaches depends on every service and client on it."""
    hosts: Mapping[str, remote.Host]


def lockdown_spec(settings: Settings, host: str) -> render.Lockdown:
    """The plain description of one host's rules."""
    return render.Lockdown(
        host=host,
        egress=egress.egress(settings, host),
        ssh_port=settings.hosts[host].port,
        ssh_sources=egress.ssh_sources(settings, host),
        container_networks=settings.network.container_networks,
    )


def _hop(host: remote.Host) -> Hop:
    return Hop(host.address, host.port, host.user, host.host_key)


class NetworkLockdown(pulumi.ComponentResource):
    confirmed: dict[str, pulumi.Output[str]]
    """Per locked-down host: what its confirmation printed, once its rules stand."""

    def __init__(self, name: str, args: NetworkLockdownArgs, opts: pulumi.ResourceOptions | None = None):
        settings, network = args.settings, args.settings.network
        locked = egress.locked_down_hosts(settings)
        record = {host: {"address": args.hosts[host].address, "lockdown": host in locked}
                  | ({} if host in locked else {"optOut": network.opt_out[host]})
                  for host in egress.managed_hosts(settings)}
        super().__init__("airgap:index:NetworkLockdown", name, {"managedHosts": record}, opts)
        self.confirmed = {}
        for host_name in locked:
            host = args.hosts[host_name]
            spec = lockdown_spec(settings, host_name)
            body = render.install_lines(spec, must_fail=network.audit.must_fail, timeout=network.audit.timeout_seconds,
                                        schedule=network.audit.schedule, rollback_seconds=network.rollback_seconds)
            applied = remote.step(f"{name}-{host_name}", host, step_script(body, sudo=host.sudo), parent=self,
                                  delete=step_script(render.remove_lines(), sudo=host.sudo))

            def confirm_script(armed: str, host: remote.Host = host, spec: render.Lockdown = spec) -> str:
                return render.confirm_script(
                    _hop(host), host=host.name, token=render.commit_token(spec), armed=armed,
                    rollback_seconds=network.rollback_seconds, ssh_sources=spec.ssh_sources, sudo=host.sudo,
                    bastion=_hop(host.bastion) if host.bastion else None)

            # Its text names the arming the step printed: each new arming is confirmed afresh.
            confirm = remote.local_step(f"{name}-{host_name}-confirm", applied.stdout.apply(confirm_script),
                                        parent=self, secrets=[host.private_key], depends_on=[applied])
            self.confirmed[host_name] = confirm.stdout
        self.register_outputs({"managedHosts": record})
