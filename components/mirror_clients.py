"""`MirrorClients`: points hosts' package managers at the stack's mirrors, signatures checked.

One step per client host (`<name>-<host>`): apt sources in deb822 form with `Signed-By` and the
mirror's CA for HTTPS, and/or `.repo` files with `gpgcheck=1` (and `repo_gpgcheck=1` where the
metadata is signed); the host's other sources moved aside, and moved back when the host leaves
the list. apt sources are checked at once with `apt-get update`, which fails on a bad signature.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pulumi

from . import remote
from .apt_mirror import AptlyMirror
from .render import mirror_clients as render
from .render.shell import step_script
from .rpm_mirror import CA_PATH, KEY_DIR, RepoSyncMirror
from .settings import MirrorClientSettings


@dataclass(frozen=True)
class MirrorClientsArgs:
    clients: tuple[tuple[remote.Host, MirrorClientSettings], ...]
    apt: AptlyMirror | None = None
    rpm: RepoSyncMirror | None = None


class MirrorClients(pulumi.ComponentResource):
    steps: dict

    def __init__(self, name: str, args: MirrorClientsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:MirrorClients", name, None, opts)
        apt, rpm = args.apt, args.rpm
        empty: pulumi.Output[dict] = pulumi.Output.from_input({})
        inputs = pulumi.Output.all(
            apt.sources if apt else empty, apt.keys if apt else empty, apt.ca_bundle if apt else "",
            rpm.repo_files if rpm else empty, rpm.keys if rpm else empty, rpm.ca_bundle if rpm else "",
        )
        self.steps = {}
        for host, client in args.clients:
            def script(values, client=client, host=host, restore=False) -> str:
                # Every run converges the whole client: what is not wanted (any more) is removed,
                # so an update alone takes away a mirror, a repository or the moving aside.
                sources, apt_keys, apt_ca, repo_files, rpm_keys, rpm_ca = values
                parts = []
                if client.apt and apt is not None and not restore:
                    parts.append(render.apt_lines(sources=sources, keys=apt_keys, ca_pem=apt_ca or None,
                                                  hostname=apt.hostname, move_aside=client.move_aside))
                else:
                    parts.append(render.apt_restore_lines())
                if client.rpm and rpm is not None and not restore:
                    parts.append(render.yum_lines(repo_files=repo_files, keys=rpm_keys, ca_pem=rpm_ca or None,
                                                  move_aside=client.move_aside, key_dir=KEY_DIR, ca_path=CA_PATH))
                else:
                    parts.append(render.yum_restore_lines(KEY_DIR, CA_PATH))
                return step_script("\n".join(parts), sudo=host.sudo)

            depends = [m for m in (apt, rpm) if m is not None]
            self.steps[host.name] = remote.step(
                f"{name}-{host.name}", host, inputs.apply(script), parent=self,
                delete=inputs.apply(functools.partial(script, restore=True)),
                depends_on=depends,
            )
        self.register_outputs({})
