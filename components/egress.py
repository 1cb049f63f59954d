"""What each managed host reaches over the network, derived from the stack (no Pulumi here).

The stack already names every endpoint a host uses: the registry its runtimes pull from, the
mirrors its package manager reads, the upstream trees a mirror host copies, the transfer
registry a fill reads. `egress(settings, host)` lists them, each with what needs it, for the
host's lockdown (network_lockdown.py) and its audit; the settings use the same functions to
refuse a lockdown that would cut a host off from what it needs.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .images import ImageRef

if TYPE_CHECKING:
    from .settings import FillSettings, Settings


@dataclass(frozen=True)
class Endpoint:
    """One destination a host may reach."""

    address: str
    """An IP address, a CIDR block, or a DNS name (resolved on the host when its rules load)."""
    protocol: str
    """`tcp` or `udp`."""
    port: int
    component: str
    """What uses it (`registry clients`), shown beside the rule with `detail`."""
    detail: str = ""
    """Which of its parts (`upstream-debian`, `docker.io`), if more than one could."""

    @property
    def label(self) -> str:
        return f"{self.component}: {self.detail}" if self.detail else self.component

    @property
    def is_name(self) -> bool:
        return not is_address(self.address)


def is_address(text: str) -> bool:
    """An IP address or a CIDR block (as opposed to a DNS name)."""
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def host_port(text: str, default_port: int) -> tuple[str, int]:
    """`host[:port][/path]` (a registry mirror, an S3 endpoint) as (host, port)."""
    authority = text.split("/", 1)[0]
    parsed = urllib.parse.urlsplit(f"//{authority}")
    return (parsed.hostname or authority).lower(), parsed.port or default_port


def url_endpoint(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    return (parsed.hostname or "").lower(), parsed.port or (443 if parsed.scheme == "https" else 80)


def managed_hosts(settings: Settings) -> list[str]:
    """Hosts the stack runs steps on (a host that only forwards SSH as a bastion is not one)."""
    found = {service.host for service in (settings.registry, settings.apt_mirror, settings.rpm_mirror,
                                          settings.file_server, settings.harbor) if service is not None}
    found |= {client.host for client in settings.mirror_clients}
    found |= {client.host for client in settings.registry_clients}
    if settings.mattermost is not None and settings.mattermost.docker_host is not None:
        found.add(settings.mattermost.docker_host)
    return sorted(found)


def locked_down_hosts(settings: Settings) -> list[str]:
    """Managed hosts without an opt-out: each gets the lockdown."""
    return [host for host in managed_hosts(settings) if host not in settings.network.opt_out]


def _served_at(settings: Settings, service: str) -> tuple[str, int]:
    """Where clients reach one of the stack's services: its hostname (or host address) and port."""
    config = {"registry": settings.registry, "harbor": settings.harbor, "aptMirror": settings.apt_mirror,
              "rpmMirror": settings.rpm_mirror, "fileServer": settings.file_server}[service]
    assert config is not None, f"settings refuse a reference to {service} when it is not configured"
    return (config.hostname or settings.hosts[config.host].address), config.port


def _fill(fill: FillSettings, images: Iterable[ImageRef], what: str) -> Iterator[Endpoint]:
    if fill.runner != "host" or fill.oci_layout:
        return  # the admin machine fills, or the images come carried across in a layout
    for registry in sorted({image.registry for image in images}):
        if registry in fill.upstreams:  # the others are refused by the settings (public_fill_sources)
            address, port = host_port(fill.upstreams[registry], 443)
            yield Endpoint(address, "tcp", port, what, registry)


def egress(settings: Settings, host: str) -> tuple[Endpoint, ...]:
    """Every endpoint `host` uses according to the stack, in a stable order."""
    found: list[Endpoint] = []
    registry, harbor, apt, rpm, files = (settings.registry, settings.harbor, settings.apt_mirror,
                                         settings.rpm_mirror, settings.file_server)
    if registry is not None and registry.host == host:
        found += _fill(registry.fill, settings.images, "registry fill")
    if harbor is not None and harbor.host == host and harbor.fill is not None:
        found += _fill(harbor.fill, settings.images, "harbor fill")
    if harbor is not None and harbor.host == host and harbor.scanner and registry is not None:
        found.append(_tcp(_served_at(settings, "registry"), "harbor scanner", "its databases from the registry"))
    if apt is not None and apt.host == host:
        found += [_tcp(url_endpoint(repo.url), "apt mirror", repo.name) for repo in apt.repos if repo.url]
    if rpm is not None and rpm.host == host:
        found += [_tcp(url_endpoint(repo.baseurl), "rpm mirror", repo.id)
                  for repo in rpm.repos if repo.baseurl]
    if files is not None and files.host == host:
        found += [_tcp(url_endpoint(artifact.url), "file server", artifact.path)
                  for artifact in files.artifacts if artifact.url]
    for client in settings.mirror_clients:
        if client.host == host and client.apt:
            found.append(_tcp(_served_at(settings, "aptMirror"), "mirror clients", "apt mirror"))
        if client.host == host and client.rpm:
            found.append(_tcp(_served_at(settings, "rpmMirror"), "mirror clients", "rpm mirror"))
    if any(client.host == host for client in settings.registry_clients):
        found.append(_tcp(_served_at(settings, "registry"), "registry clients", "registry"))
    found += _mattermost(settings, host)
    for name, other in sorted(settings.hosts.items()):
        if other.bastion == host:
            found.append(Endpoint(other.address, "tcp", other.port, "bastion", f"ssh to {name}"))
    found += _network(settings, host)
    return tuple(found)


def _tcp(address_port: tuple[str, int], component: str, detail: str = "") -> Endpoint:
    return Endpoint(address_port[0], "tcp", address_port[1], component, detail)


def _mattermost(settings: Settings, host: str) -> Iterator[Endpoint]:
    mattermost = settings.mattermost
    if mattermost is None or mattermost.target != "docker" or mattermost.docker_host != host:
        return
    service = "harbor" if settings.harbor is not None else "registry"
    yield _tcp(_served_at(settings, service), "mattermost", f"image from the {service}")
    if mattermost.file_storage == "s3" and mattermost.s3 is not None:
        yield _tcp(host_port(mattermost.s3.endpoint, 443 if mattermost.s3.ssl else 80), "mattermost", "s3 file storage")


def _network(settings: Settings, host: str) -> Iterator[Endpoint]:
    network = settings.network
    for server in network.dns:
        yield Endpoint(server, "udp", 53, "network.dns")
        yield Endpoint(server, "tcp", 53, "network.dns")
    for server in network.ntp:
        yield Endpoint(server, "udp", 123, "network.ntp")
    if network.smtp is not None:
        yield _tcp(host_port(network.smtp, 25), "network.smtp")
    for entry in network.allow:
        if entry.hosts and host not in entry.hosts:
            continue
        if entry.service is not None:
            yield _tcp(_served_at(settings, entry.service), "network.allow", entry.why)
        else:
            assert entry.to is not None and entry.port is not None, "settings require to and port together"
            yield Endpoint(entry.to, entry.protocol, entry.port, "network.allow", entry.why)


def named_destinations(settings: Settings, host: str) -> list[str]:
    """The DNS names among `host`'s endpoints (they need a resolver the host may reach)."""
    return sorted({endpoint.address for endpoint in egress(settings, host) if endpoint.is_name})


def ssh_sources(settings: Settings, host: str) -> tuple[str, ...]:
    """Addresses SSH to `host` may come from; empty: anywhere (no `network.adminAddresses`).
    A host behind a bastion also takes SSH from the bastion's address."""
    admin = settings.network.admin_addresses
    if not admin:
        return ()
    bastion = settings.hosts[host].bastion
    extra = [settings.hosts[bastion].address] if bastion is not None else []
    return tuple(dict.fromkeys([*admin, *(address for address in extra if is_address(address))]))


def public_fill_sources(settings: Settings) -> list[tuple[str, str, str, str, int]]:
    """(section, host, registry, first image, its index in `images`) for each registry a fill on a
    locked-down host would read from the internet: no upstream inside the gap and no layout carried
    across."""
    locked = set(locked_down_hosts(settings))
    found = []
    fills: Mapping[str, tuple[str, FillSettings | None]] = {
        "registry": (settings.registry.host, settings.registry.fill) if settings.registry else ("", None),
        "harbor": (settings.harbor.host, settings.harbor.fill) if settings.harbor else ("", None),
    }
    for section, (host, fill) in fills.items():
        if fill is None or host not in locked or fill.runner != "host" or fill.oci_layout:
            continue
        seen: set[str] = set()
        for index, image in enumerate(settings.images):
            if image.registry not in fill.upstreams and image.registry not in seen:
                seen.add(image.registry)
                found.append((section, host, image.registry, str(image), index))
    return found
