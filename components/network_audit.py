"""`NetworkAudit`: at every run, each locked-down host proves it is still isolated.

Once everything else stands, each host probes `network.audit.mustFail` (public registries,
package mirrors, Mattermost's push and telemetry hosts, public resolvers), which must not answer,
and its own endpoints, which must (programs/firewall/network_audit.py, sent over one SSH read
per host). The reports are the stack output `networkAudit`, with the drop counters of each host;
every failure is also logged as a line of its own. The hosts run the same audit on a timer and
keep its report in /var/lib/airgap/network/audit.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from . import egress, remote
from .network_lockdown import lockdown_spec
from .render import firewall as render
from .settings import Settings


@dataclass(frozen=True)
class NetworkAuditArgs:
    settings: Settings
    hosts: Mapping[str, remote.Host]
    after: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What must stand before the probes run: the lockdown and every service the hosts reach."""


def summary(reports: Mapping[str, str], opted_out: Mapping[str, str]) -> dict:
    """host -> its audit report (parsed), or its opt-out; one log line per failure."""
    found: dict[str, dict] = {host: {"lockdown": "off", "reason": reason} for host, reason in opted_out.items()}
    for host, text in reports.items():
        lines = [line for line in (text or "").splitlines() if line.startswith("{")]
        report = json.loads(lines[-1]) if lines else {}
        found[host] = {"lockdown": "on", **report}
        for failure in report.get("failures", []):
            pulumi.log.warn(f"network audit: {host}: {failure}")
    return dict(sorted(found.items()))


class NetworkAudit(pulumi.ComponentResource):
    reports: pulumi.Output[dict]

    def __init__(self, name: str, args: NetworkAuditArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:NetworkAudit", name, None, opts)
        settings, audit = args.settings, args.settings.network.audit
        reads = {}
        for host_name in egress.locked_down_hosts(settings):
            host = args.hosts[host_name]
            command = render.audit_command(lockdown_spec(settings, host_name), must_fail=audit.must_fail,
                                           timeout=audit.timeout_seconds, sudo=host.sudo)
            reads[host_name] = remote.read(command, host, depends_on=args.after)
        opted_out = {host: reason for host, reason in settings.network.opt_out.items()
                     if host in egress.managed_hosts(settings)}
        self.reports = (pulumi.Output.all(**reads).apply(lambda texts: summary(texts, opted_out)) if reads
                        else pulumi.Output.from_input(summary({}, opted_out)))
        self.register_outputs({"reports": self.reports})
