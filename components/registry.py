"""`Registry`: a private Docker Distribution registry on a host, filled with the stack's images.

Children, in order:
- `<name>-tls-*`: the server certificate from the stack CA (`tls.mode: generate`);
- `<name>-image-archive`: the registry image archive (`runtime: docker` only);
- `<name>-install`: packages, config, unit or container, TLS, htpasswd; restart only on change;
  fails unless `/v2/` answers over TLS with auth;
- `<name>-oci-layout`: an OCI layout carried across the gap, copied to the host (when used);
- `<name>-fill`: copies the images in with digests kept and prints the image lock;
- `<name>-lock-file`: writes the lock on the admin machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi

from oci.plan import FillImage

from . import remote
from .images import ImageRef
from .pki import StackPki, service_tls
from .render import htpasswd, registry as render, registry_fill
from .render.formats.hosts import host_port
from .render.shell import step_script
from .settings import FillSettings, RegistrySettings

TRANSFER_DIR = render.TRANSFER_DIR
FILL_VERSION = "fill-1"


@dataclass(frozen=True)
class RegistryArgs:
    host: remote.Host
    """The machine that runs the registry."""
    settings: RegistrySettings
    """The stack's `registry` settings."""
    images: tuple[ImageRef, ...]
    """Images to copy in, digests kept."""
    passwords: Mapping[str, pulumi.Output[str]]
    """Password (a secret) of each user in `settings.users`, by user name."""
    pki: StackPki | None = None
    """Issues the certificate when `settings.tls.mode` is `generate`."""
    tls_key: pulumi.Output[str] | None = None
    """Private key PEM (a secret) when `settings.tls.mode` is `files`."""
    salt_seed: str = ""
    """Per-stack seed for htpasswd salts (see render/htpasswd.py)."""
    artifacts: tuple[ImageRef, ...] = ()
    """OCI artifacts (e.g. Trivy's databases) copied in from `artifacts_layout`, digests kept."""
    artifacts_layout: str | None = None
    """OCI layout on the admin machine that holds `artifacts`."""


class Registry(pulumi.ComponentResource):
    endpoint: pulumi.Output[str]
    """`hostname:port` clients pull from."""
    ca_bundle: pulumi.Output[str]
    """PEM clients must trust."""
    image_lock: pulumi.Output[list]
    """One entry per image: source, digest, platforms, private ref, private ref by digest."""

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:Registry", name, None, opts)
        settings, host = args.settings, args.host
        hostname = settings.hostname or host.address
        endpoint = host_port(hostname, settings.port)

        cert_pem, ca_pem, key_pem = self._tls(name, args, hostname)
        depends: list[pulumi.Resource] = []
        archive = f"{render.IMAGES_DIR}/registry.tar"
        if settings.runtime == "docker":
            assert settings.docker.image_archive is not None
            depends.append(remote.copy(
                f"{name}-image-archive", host, pulumi.FileAsset(settings.docker.image_archive), archive,
                parent=self, content_id=_file_digest(settings.docker.image_archive),
            ))

        users = [(user.name, args.passwords[user.name]) for user in settings.users]
        first_user, first_password = users[0]
        htpasswd_text = pulumi.Output.all(*(password for _, password in users)).apply(
            lambda passwords: htpasswd.htpasswd_file(
                [(user, pw) for (user, _), pw in zip(users, passwords, strict=True)], seed=args.salt_seed)
        )
        health_auth = first_password.apply(lambda pw: htpasswd.curl_user_config(first_user, pw))

        def install_script(pems: list[str]) -> str:
            spec = render.RegistrySpec(
                address=host.address, hostname=hostname, port=settings.port,
                storage_path=settings.storage_path, cert_pem=pems[0], ca_pem=pems[1],
                runtime=settings.runtime, docker_image=settings.docker.image, docker_archive=archive,
            )
            body = (render.install_package_runtime(spec) if settings.runtime == "package"
                    else render.install_docker_runtime(spec))
            if (settings.fill.oci_layout or args.artifacts_layout) and settings.fill.runner == "host":
                body += "\n" + render.transfer_dir_lines()
            return step_script(body, sudo=host.sudo)

        uninstall = step_script(
            render.uninstall(settings.runtime, settings.storage_path, purge=settings.purge), sudo=host.sudo)
        install = remote.step(
            f"{name}-install", host,
            pulumi.Output.all(cert_pem, ca_pem).apply(install_script),
            parent=self,
            secrets=[key_pem, htpasswd_text, health_auth],
            delete=uninstall,
            depends_on=depends,
        )

        self.endpoint = pulumi.Output.from_input(endpoint)
        self.ca_bundle = pulumi.Output.from_input(ca_pem)
        self.image_lock = pulumi.Output.from_input([])
        if args.images or args.artifacts:
            fill = fill_step(
                name, self, host, endpoint, ca_pem, first_user, first_password, settings.fill,
                images=args.images, artifacts=args.artifacts, artifacts_layout=args.artifacts_layout,
                depends_on=[install],
            )
            self.image_lock = fill.stdout.apply(lambda out: json.loads(out)["images"] if out else [])
            if settings.fill.lock_file:
                remote.local_file(f"{name}-lock-file", settings.fill.lock_file, fill.stdout, parent=self)
        self.register_outputs({"endpoint": self.endpoint, "caBundle": self.ca_bundle, "imageLock": self.image_lock})

    def _tls(self, name: str, args: RegistryArgs, hostname: str):
        """(certificate chain PEM, CA bundle PEM, key PEM secret) for the server."""
        material = service_tls(f"{name}-tls", args.settings.tls, hostname=hostname, address=args.host.address,
                               pki=args.pki, key=args.tls_key, parent=self)
        assert material is not None, "the registry always speaks TLS"
        return material.cert_pem, material.ca_pem, material.key_pem

def fill_step(name: str, parent: pulumi.Resource, host: remote.Host, endpoint: str, ca_pem: pulumi.Output[str],
              user: str, password: pulumi.Output[str], fill: FillSettings, *, images: tuple[ImageRef, ...],
              artifacts: tuple[ImageRef, ...] = (), artifacts_layout: str | None = None,
              depends_on: list[pulumi.Resource]):
    """The fill of a registry (Docker Distribution or Harbor): layouts copied to the host when the
    fill runs there, then one step that copies, verifies and prints the lock."""
    depends: list[pulumi.Resource] = list(depends_on)

    def layout_on_runner(layout: str | None, suffix: str) -> str | None:
        """Where the fill reads a layout: here (admin runner), or copied to the host."""
        if layout is None or fill.runner == "admin":
            return layout
        depends.append(remote.copy(
            f"{name}-{suffix}", host, pulumi.FileArchive(layout), TRANSFER_DIR, parent=parent,
            content_id=_file_digest(str(Path(layout) / "index.json")), depends_on=list(depends_on),
        ))
        return f"{TRANSFER_DIR}/{Path(layout).name}"

    layout_dir = layout_on_runner(fill.oci_layout, "oci-layout")
    artifacts_dir = layout_on_runner(artifacts_layout, "artifacts-layout")
    plan_images = [fill_image(ref, fill.upstreams, layout_dir) for ref in images]
    plan_images += [fill_image(ref, {}, artifacts_dir) for ref in artifacts]
    plan = registry_fill.fill_plan(endpoint, plan_images, parallel=fill.parallel, retries=fill.retries)
    auth = password.apply(lambda pw: registry_fill.auth_file(endpoint, user, pw))
    script = ca_pem.apply(lambda ca: step_script(registry_fill.fill_step(plan, ca),
                                                 sudo=host.sudo and fill.runner == "host"))
    if fill.runner == "admin":
        return remote.local_step(f"{name}-fill", script, parent=parent, secrets=[auth],
                                 versions=[FILL_VERSION], depends_on=depends, log_stdout=False)
    return remote.step(f"{name}-fill", host, script, parent=parent, secrets=[auth],
                       versions=[FILL_VERSION], depends_on=depends, log_stdout=False)


def fill_image(ref: ImageRef, upstreams: Mapping[str, str], layout_dir: str | None) -> FillImage:
    """Where the fill reads `ref` from, and where it puts it."""
    return FillImage(source=str(ref), location=registry_fill.source_location(ref, upstreams, layout_dir),
                     repository=ref.private_path, tag=ref.private_tag, digest=ref.digest)


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
