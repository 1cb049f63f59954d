"""`FileServer`: nginx with TLS and an index on a host, serving checksummed artifacts (Falco
rules and driver modules, OpenSearch plugins, Pulumi plugins, …) and their `SHA256SUMS`.

Children: `<name>-tls-*` (certificate, `tls.mode: generate`), `<name>-copy-<n>` (a file
carried across the gap, copied to the host content-addressed), `<name>-install` (nginx site,
artifacts verified and put in place, `SHA256SUMS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from . import remote
from .pki import StackPki, service_tls
from .render import file_server as render, nginx
from .render.shell import step_script
from .settings import FileServerSettings


@dataclass(frozen=True)
class FileServerArgs:
    host: remote.Host
    settings: FileServerSettings
    pki: StackPki | None = None
    tls_key: pulumi.Output[str] | None = None


class FileServer(pulumi.ComponentResource):
    base_url: pulumi.Output[str]
    ca_bundle: pulumi.Output[str]
    artifacts: pulumi.Output[dict]
    """Served path → {url, sha256}."""
    address: str
    port: int

    def __init__(self, name: str, args: FileServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:FileServer", name, None, opts)
        settings, host = args.settings, args.host
        hostname = settings.hostname or host.address
        tls = service_tls(f"{name}-tls", settings.tls, hostname=hostname, address=host.address, pki=args.pki,
                          key=args.tls_key, parent=self)
        root = settings.storage_path
        site = nginx.Site(name=f"airgap-{name}", address=host.address, port=settings.port, hostname=hostname,
                          root=root, tls=tls is not None)
        artifacts = [render.Artifact(path=a.path, sha256=a.sha256, url=a.url, staged=a.file is not None)
                     for a in settings.artifacts]
        copies = [
            remote.copy(f"{name}-copy-{a.sha256[:12]}", host, pulumi.FileAsset(a.file),
                        f"{root}/{render.STAGING}/{a.sha256}", parent=self, content_id=f"sha256:{a.sha256}")
            for a in settings.artifacts if a.file is not None
        ]

        def install_script(cert_pem: str | None) -> str:
            body = nginx.install_lines(site, cert_pem) + "\n" + render.install_body(root, artifacts)
            return step_script(body, sudo=host.sudo)

        cert = tls.cert_pem if tls is not None else pulumi.Output.from_input("")
        remote.step(
            f"{name}-install", host, cert.apply(lambda pem: install_script(pem or None)), parent=self,
            secrets=[tls.key_pem] if tls is not None else [],
            delete=step_script(nginx.remove_lines(site) + "\n" + render.uninstall_body(root, purge=settings.purge),
                               sudo=host.sudo),
            depends_on=copies,
        )
        self.address, self.port = host.address, settings.port
        self.base_url = pulumi.Output.from_input(site.url)
        self.ca_bundle = tls.ca_pem if tls is not None else pulumi.Output.from_input("")
        self.artifacts = pulumi.Output.from_input(
            {a.path: {"url": f"{site.url}/{a.path}", "sha256": a.sha256} for a in settings.artifacts})
        self.register_outputs({"baseUrl": self.base_url, "artifacts": self.artifacts})
