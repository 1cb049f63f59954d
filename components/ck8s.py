"""Compliant Kubernetes overrides from the stack's own outputs (see render/ck8s.py): exported as
stack outputs and, with `ck8s.outputDir`, written as files on the admin machine."""

from __future__ import annotations

import operator

import pulumi

from . import remote
from .file_server import FileServer
from .images import parse_image_ref, registry_prefix
from .render import ck8s as render
from .settings import DEFAULT_UPSTREAMS, Settings

CA_ISSUER = "airgap-infra-ca"
"""The cert-manager ClusterIssuer (and its secret) that stands for the stack's CA."""


class Ck8sOverrides(pulumi.ComponentResource):
    files: pulumi.Output[dict]
    """File name → YAML text."""

    def __init__(self, name: str, settings: Settings, file_server: FileServer | None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:Ck8sOverrides", name, None, opts)
        self.files = ck8s_overrides(settings, file_server, parent=self, name=name)
        self.register_outputs({"files": self.files})


def ck8s_overrides(settings: Settings, file_server: FileServer | None,
                   parent: pulumi.Resource | None = None, name: str = "ck8s") -> pulumi.Output[dict]:
    config = settings.ck8s
    assert config is not None
    endpoint = settings.registry_endpoint() if settings.registry else None
    trivy = settings.trivy_db
    base = file_server.base_url if file_server else pulumi.Output.from_input(None)

    def build(files_url: str | None) -> dict:
        inputs = render.Ck8sInputs(
            registry_endpoint=endpoint,
            registry_address=settings.hosts[settings.registry.host].address if settings.registry else None,
            mirror_prefixes={u: f"{endpoint}/{registry_prefix(u)}" for u in DEFAULT_UPSTREAMS} if endpoint else {},
            trivy_db_repository=parse_image_ref(trivy.db).private_path if trivy else None,
            trivy_java_db_repository=parse_image_ref(trivy.java_db).private_path if trivy else None,
            file_server_url=files_url,
            file_server_address=file_server.address if file_server else None,
            file_server_port=file_server.port if file_server else None,
            falco_driver=config.falco_driver, falco_driver_path=config.falco_driver_path,
            falco_indexes=config.falco_indexes, opensearch_plugins=config.opensearch_plugins,
            dns_zone=config.dns_zone, dns_servers=config.dns_servers,
            alert_email=config.alert_email, smtp_smarthost=config.smtp_smarthost, smtp_from=config.smtp_from,
            ca_issuer=CA_ISSUER if settings.needs_stack_ca() else None,
        )
        common, sc = render.overrides(inputs)
        return {"common-config.yaml": render.to_yaml(common), "sc-config.yaml": render.to_yaml(sc)}

    result = base.apply(build)
    if config.output_dir and parent is not None:
        for file_name in ("common-config.yaml", "sc-config.yaml"):
            remote.local_file(f"{name}-{file_name.split('.')[0]}", f"{config.output_dir}/{file_name}",
                              result.apply(operator.itemgetter(file_name)), parent=parent)
    return result
