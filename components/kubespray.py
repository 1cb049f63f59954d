"""Kubespray's offline inventory variables from the stack's outputs (see render/kubespray.py),
exported as the stack output `kubesprayOffline`."""

from __future__ import annotations

import pulumi

from .images import registry_prefix
from .render import kubespray as render
from .settings import DEFAULT_UPSTREAMS, Settings


def kubespray_offline(settings: Settings, *, file_server_url: pulumi.Input[str] | None = None,
                      apt_base_url: pulumi.Input[str] | None = None,
                      rpm_base_url: pulumi.Input[str] | None = None) -> pulumi.Output[str]:
    endpoint = settings.registry_endpoint() if settings.registry else None

    def build(urls: list) -> str:
        files, apt, rpm = urls
        return render.to_yaml(render.offline_vars(render.KubesprayInputs(
            registry_endpoint=endpoint,
            mirror_prefixes=tuple((u, registry_prefix(u)) for u in DEFAULT_UPSTREAMS) if endpoint else (),
            file_server_url=files, apt_base_url=apt, rpm_base_url=rpm)))

    return pulumi.Output.all(file_server_url, apt_base_url, rpm_base_url).apply(build)
