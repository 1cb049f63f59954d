"""Checks across the whole stack, by machine rather than by host name: two host entries with one
address (behind the same bastion, or none) are one machine.

- Storage: no two services keep data in the same directory of a machine, or one inside
  another's, or inside a directory the program itself uses there.
- Loopback: a stack is on this machine's loopback (the sandbox) or on the network, not both:
  a client given a loopback address, or a pod a loopback relay, would reach itself.
(Listeners, by address and port, are `rules.distinct_ports`.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import Any

from ..render.formats.hosts import split_host_port
from ..render.harbor import INSTALL_ROOT
from ..render.registry import IMAGES_DIR, TRANSFER_DIR
from .addresses import is_loopback
from .collector import item_path, key_path
from .rules import machine


def _host(service: Any) -> str:
    return str(service.host)


def _mattermost_docker_host(service: Any) -> str | None:
    """Mattermost keeps files on a host only on the docker target with local storage (else in its
    pods' volumes, or in S3)."""
    if service.target == "docker" and service.file_storage == "local" and service.docker_host:
        return str(service.docker_host)
    return None


# (section, field of the data directory, directories the program itself uses on that machine,
#  the host the data is kept on, or None when the service keeps none there)
STORAGE: tuple[tuple[str, str, dict[str, str], Callable[[Any], str | None]], ...] = (
    ("registry", "storage_path", {TRANSFER_DIR: "receives OCI layouts", IMAGES_DIR: "holds image archives"}, _host),
    ("apt_mirror", "storage_path", {}, _host),
    ("rpm_mirror", "storage_path", {}, _host),
    ("file_server", "storage_path", {}, _host),
    ("harbor", "data_volume", {TRANSFER_DIR: "receives the installer", INSTALL_ROOT: "holds the installer"}, _host),
    ("mattermost", "docker_data_path", {}, _mattermost_docker_host),
)


def _nested(inner: str, outer: str) -> bool:
    return PurePosixPath(inner).is_relative_to(PurePosixPath(outer))


class DistinctStorage:
    """No two services' data directories on one machine are the same or nested, nor inside a
    directory the program uses there."""

    def check(self, model: Any, path: str, root: Any) -> Iterator[str]:
        seen: list[tuple[tuple[str, ...], str, str, str]] = []  # machine, directory, key path, host name
        for section, field, reserved, host_of in STORAGE:
            service = getattr(model, section, None)
            host = host_of(service) if service is not None else None
            if host is None:
                continue
            where, directory = key_path(path, f"{section}.{field}"), getattr(service, field)
            place = machine(root, host)
            for used, what in reserved.items():
                if _nested(directory, used) or _nested(used, directory):
                    yield f"{where}: {directory} overlaps {used}, which {what}; give it a directory of its own"
            for other_place, other, other_where, other_host in seen:
                if other_place != place:
                    continue
                relation = ("is the same directory as" if directory == other else
                            "is inside" if _nested(directory, other) else
                            "holds" if _nested(other, directory) else None)
                if relation:
                    same = "" if other_host == host else f" (host {other_host!r} is the same machine)"
                    yield (f"{where}: {directory} {relation} {other_where} ({other}) on host {host!r}{same}; "
                           "give each service a directory of its own")
            seen.append((place, directory, where, host))


class OneNetwork:
    """The stack's hosts are all on this machine's loopback, or none is; so are the addresses
    clients are given (service hostnames, DNS servers, the mail relay)."""

    def check(self, model: Any, path: str, root: Any) -> Iterator[str]:
        hosts = sorted(root.hosts.items())
        on_loopback = {name for name, host in hosts if is_loopback(host.address)}
        if not on_loopback:
            yield from self._clients_on_loopback(model, path)
            return
        on_network = {name for name, _ in hosts} - on_loopback
        # The odd ones out are reported (the network side when the two are as many).
        odd, rest = (on_loopback, on_network) if len(on_loopback) < len(on_network) else (on_network, on_loopback)
        where = {True: "on this machine's loopback", False: "on the network"}
        for name in sorted(odd):
            yield (f"{item_path(key_path(path, 'hosts'), name)}.address: {root.hosts[name].address} is "
                   f"{where[name in on_loopback]}, while hosts {', '.join(sorted(rest))} are "
                   f"{where[name not in on_loopback]}; clients would reach themselves; put every host on one")

    @staticmethod
    def _clients_on_loopback(model: Any, path: str) -> Iterator[str]:
        for section in ("registry", "apt_mirror", "rpm_mirror", "file_server", "harbor"):
            service = getattr(model, section, None)
            if service is not None and service.hostname and is_loopback(service.hostname):
                yield (f"{key_path(path, f'{section}.hostname')}: {service.hostname} is a loopback name; clients "
                       "on other machines would reach themselves")
        ck8s = getattr(model, "ck8s", None)
        if ck8s is None:
            return
        for index, server in enumerate(ck8s.dns_servers):
            if is_loopback(server):
                yield (f"{key_path(path, 'ck8s.dns_servers')}[{index}]: {server} is a loopback address; node-local-dns "
                       "would forward to the node itself")
        if ck8s.smtp_smarthost and is_loopback(split_host_port(ck8s.smtp_smarthost)[0]):
            yield (f"{key_path(path, 'ck8s.smtp_smarthost')}: {ck8s.smtp_smarthost} is on a loopback address; "
                   "Alertmanager would send to its own pod")
