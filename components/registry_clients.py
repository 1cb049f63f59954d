"""`RegistryClients`: container runtimes on listed nodes trust the private registry (its CA in
`certs.d`), and containerd resolves public registry names through it (`hosts.toml`).

One step per node (`<name>-<host>`), converging the node at every run (see render/registry_clients);
removing a node from the list removes what it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from . import remote
from .images import registry_prefix
from .render import registry_clients as render
from .render.shell import step_script
from .settings import RegistryClientSettings


@dataclass(frozen=True)
class RegistryClientsArgs:
    clients: tuple[tuple[remote.Host, RegistryClientSettings], ...]
    endpoint: pulumi.Input[str]
    """`host:port` of the private registry."""
    ca_bundle: pulumi.Input[str]


class RegistryClients(pulumi.ComponentResource):
    hosts_toml: pulumi.Output[dict]
    """Upstream registry → the hosts.toml text containerd nodes get."""

    def __init__(self, name: str, args: RegistryClientsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:RegistryClients", name, None, opts)
        inputs = pulumi.Output.all(args.endpoint, args.ca_bundle)
        upstreams = sorted({u for _, client in args.clients for u in client.upstreams})
        for host, client in args.clients:
            def script(values, client=client, host=host) -> str:
                endpoint, ca = values
                return step_script(render.client_lines(endpoint, ca, client.upstreams, docker=client.docker,
                                                       containerd=client.containerd, insecure=client.insecure,
                                                       prefix_of=registry_prefix), sudo=host.sudo)

            def removal(values, client=client, host=host) -> str:
                return step_script(render.remove_lines(values[0], client.upstreams, docker=client.docker,
                                                       containerd=client.containerd), sudo=host.sudo)

            remote.step(f"{name}-{host.name}", host, inputs.apply(script), parent=self, delete=inputs.apply(removal))
        self.hosts_toml = inputs.apply(lambda values: {
            u: render.hosts_toml(u, values[0], f"{render.CONTAINERD_CERTS}/{values[0]}/ca.crt", registry_prefix(u))
            for u in upstreams})
        self.register_outputs({"hostsToml": self.hosts_toml})
