"""`HarborInstall`: Harbor from its offline installer on a host, its projects, a pull robot, and
the stack's images copied in.

Children:
- `<name>-tls-*`: the certificate from the stack CA (`tls.mode: generate`);
- `<name>-installer`: the offline installer archive, copied to the host (sha256 checked there);
- `<name>-install`: `harbor.yml` (a secret file), the private registry's CA (for the scanner)
  and `install.sh [--with-trivy]`, run only when what it installs changed; fails unless
  `/api/v2.0/health` reports every component healthy;
- `<name>-trivy-db`: Trivy's databases, pulled from the private registry where `trivyDb` put
  them (digests as the registry's lock has them) and laid out where the scanner reads them;
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
from .images import ImageRef, parse_image_ref, registry_prefix
from .pki import StackPki, service_tls
from .registry import TRANSFER_DIR, Registry, fill_step
from .render import harbor as render, registry_fill
from .render.formats.hosts import host_port, url_host
from .render.htpasswd import curl_user_config
from .render.shell import step_script
from .settings import HarborSettings, Settings


@dataclass(frozen=True)
class TrivyDbFromRegistry:
    """Trivy's databases as the private registry's fill left them, and how the Harbor host reads them."""

    registry: Registry
    """The registry `trivyDb` filled; the databases are read once its fill is done."""
    endpoint: str
    user: str
    password: pulumi.Output[str]
    """The user's password (a secret)."""
    db: ImageRef
    java_db: ImageRef


def trivy_db_from(settings: Settings, registry: Registry | None) -> TrivyDbFromRegistry | None:
    """Where Harbor's scanner gets its databases: the registry `trivyDb` filled (None without a scanner)."""
    harbor, trivy = settings.harbor, settings.trivy_db
    if harbor is None or not harbor.scanner:
        return None
    assert trivy is not None and registry is not None and settings.registry is not None, \
        "settings refuse Harbor's scanner without trivyDb, and trivyDb without a registry"
    users = {user.name: user for user in settings.registry.users}
    user = users[harbor.trivy_db_user] if harbor.trivy_db_user else settings.registry.users[0]
    return TrivyDbFromRegistry(registry=registry, endpoint=settings.registry_endpoint(), user=user.name,
                               password=settings.secret(user.password_secret),
                               db=parse_image_ref(trivy.db), java_db=parse_image_ref(trivy.java_db))


def locked_digests(lock: list, refs: tuple[ImageRef, ...]) -> dict[str, str | None]:
    """Each of `refs`' manifest digest in a registry's image lock, by private repository."""
    digests = {entry["source"]: entry["digest"] for entry in lock or []}
    return {ref.private_path: digests.get(str(ref)) for ref in refs}


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
    trivy_db: TrivyDbFromRegistry | None = None
    """Where the scanner's databases come from (`trivy_db_from`); required with `settings.scanner`."""


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
        source = args.trivy_db
        assert (source is not None) == settings.scanner, "the scanner reads the databases trivy_db_from finds"
        trivy_db = None if source is None else render.TrivyDbSource(
            registry=source.endpoint,
            databases=render.trivy_databases((source.db.private_path, source.db.private_tag),
                                             (source.java_db.private_path, source.java_db.private_tag)))
        spec = render.HarborSpec(hostname=hostname, version=version, archive_sha256=settings.installer_sha256,
                                 data_volume=settings.data_volume, https_port=settings.port, s3=dict(settings.s3),
                                 scanner=settings.scanner, trivy_db=trivy_db)
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
        registry_ca = source.registry.ca_bundle if source is not None else pulumi.Output.from_input("")
        install = remote.step(
            f"{name}-install", host,
            pulumi.Output.all(tls.cert_pem, registry_ca).apply(
                lambda pems: step_script(render.install_body(spec, pems[0], archive, pems[1] or None) + "\n"
                                         + render.health_body(spec), sudo=host.sudo)),
            parent=self, secrets=[tls.key_pem, harbor_yml], depends_on=[installer],
            delete=step_script(render.uninstall_body(spec, purge=settings.purge), sudo=host.sudo),
        )
        if source is not None:
            self._trivy_db(name, host, spec, source, install)
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

    def _trivy_db(self, name: str, host: remote.Host, spec: render.HarborSpec, source: TrivyDbFromRegistry,
                  install: pulumi.Resource) -> None:
        # The digests the registry's fill verified are in the script: a new database there runs it again.
        refs = (source.db, source.java_db)
        script = pulumi.Output.all(source.registry.ca_bundle, source.registry.image_lock).apply(
            lambda values: step_script(render.trivy_db_body(spec, values[0], locked_digests(values[1], refs)),
                                       sudo=host.sudo))
        auth = source.password.apply(lambda pw: registry_fill.auth_file(source.endpoint, source.user, pw))
        remote.step(f"{name}-trivy-db", host, script, parent=self, secrets=[auth],
                    depends_on=[install, source.registry])
