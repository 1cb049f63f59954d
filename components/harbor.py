"""`HarborInstall`: Harbor from its offline installer on a host, its projects, a pull robot, and
the stack's images copied in.

Children:
- `<name>-tls-*`: the certificate from the stack CA (`tls.mode: generate`);
- `<name>-installer`: the offline installer archive, copied to the host (sha256 checked there);
- `<name>-install`: `harbor.yml` (a secret file) and `install.sh --with-trivy`, run only when
  what it installs changed; fails unless `/api/v2.0/health` reports every component healthy;
- `<name>-api`: projects (`library` and one per source registry of the stack's images) and a
  system robot account that may pull from all of them, its secret the stack's;
- `<name>-fill`: the stack's images, digests kept (see registry.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pulumi

from . import remote
from .images import ImageRef, registry_prefix
from .pki import StackPki, service_tls
from .registry import TRANSFER_DIR, fill_step
from .render import harbor as render
from .render.formats.hosts import host_port, url_host
from .render.htpasswd import curl_user_config
from .render.shell import step_script
from .settings import HarborSettings


@dataclass(frozen=True)
class HarborInstallArgs:
    host: remote.Host
    settings: HarborSettings
    images: tuple[ImageRef, ...]
    admin_password: pulumi.Output[str]
    database_password: pulumi.Output[str]
    robot_secret: pulumi.Output[str]
    pki: StackPki | None = None
    tls_key: pulumi.Output[str] | None = None
    s3_secret_key: pulumi.Output[str] | None = None


def projects_for(images: tuple[ImageRef, ...]) -> list[str]:
    """`library` (where non-namespaced images go) and one project per source registry."""
    return sorted({"library", *(registry_prefix(ref.registry) for ref in images)})


class HarborInstall(pulumi.ComponentResource):
    endpoint: pulumi.Output[str]
    ca_bundle: pulumi.Output[str]
    robot_username: pulumi.Output[str]
    robot_secret: pulumi.Output[str]
    image_lock: pulumi.Output[list]

    def __init__(self, name: str, args: HarborInstallArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:HarborInstall", name, None, opts)
        settings, host = args.settings, args.host
        hostname = settings.hostname or host.address
        endpoint = url_host(hostname) if settings.port == 443 else host_port(hostname, settings.port)
        found = re.search(r"(v[0-9]+\.[0-9]+\.[0-9]+)", Path(settings.installer).name)
        assert found is not None, "settings accept only harbor-offline-installer-vX.Y.Z.tgz"
        version = found.group(1)
        spec = render.HarborSpec(hostname=hostname, version=version, archive_sha256=settings.installer_sha256,
                                 data_volume=settings.data_volume, https_port=settings.port, s3=dict(settings.s3))
        tls = service_tls(f"{name}-tls", settings.tls, hostname=hostname, address=host.address, pki=args.pki,
                          key=args.tls_key, parent=self)
        assert tls is not None, "Harbor always speaks TLS"
        archive = f"{TRANSFER_DIR}/{Path(settings.installer).name}"
        installer = remote.copy(f"{name}-installer", host, pulumi.FileAsset(settings.installer), archive,
                                parent=self, content_id=f"sha256:{settings.installer_sha256}")
        harbor_yml = pulumi.Output.all(args.admin_password, args.database_password,
                                       args.s3_secret_key or "").apply(
            lambda values: render.harbor_yml(spec, admin_password=values[0], database_password=values[1],
                                             s3_secret_key=values[2] or None))
        install = remote.step(
            f"{name}-install", host,
            tls.cert_pem.apply(lambda pem: step_script(render.install_body(spec, pem, archive) + "\n"
                                                       + render.health_body(spec), sudo=host.sudo)),
            parent=self, secrets=[tls.key_pem, harbor_yml], depends_on=[installer],
            delete=step_script(render.uninstall_body(spec, purge=settings.purge), sudo=host.sudo),
        )
        admin_curl = args.admin_password.apply(lambda pw: curl_user_config("admin", pw))
        api = remote.step(
            f"{name}-api", host,
            step_script(render.api_body(spec, projects_for(args.images), settings.robot_name), sudo=host.sudo),
            parent=self, secrets=[admin_curl, args.robot_secret], depends_on=[install],
        )
        self.endpoint = pulumi.Output.from_input(endpoint)
        self.ca_bundle = tls.ca_pem
        self.robot_username = pulumi.Output.from_input(f"robot${settings.robot_name}")
        self.robot_secret = pulumi.Output.secret(args.robot_secret)
        self.image_lock = pulumi.Output.from_input([])
        if settings.fill is not None and args.images:
            fill = fill_step(name, self, host, endpoint, tls.ca_pem, "admin", args.admin_password, settings.fill,
                             images=args.images, depends_on=[api])
            self.image_lock = fill.stdout.apply(lambda out: json.loads(out)["images"] if out else [])
        self.register_outputs({"endpoint": self.endpoint, "caBundle": self.ca_bundle,
                               "robotUsername": self.robot_username, "imageLock": self.image_lock})
