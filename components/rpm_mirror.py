"""`RepoSyncMirror`: an RPM mirror on a host (`dnf reposync`), signatures checked, upstream
metadata kept signed, dated snapshots switched atomically, served by nginx or httpd.

Children: `<name>-tls-*` (certificate, `tls.mode: generate`), `<name>-install` (tools, keys,
web server, update program and timer), `<name>-update` (runs the update program; its stdout is
each repository's report).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from . import remote
from .apt_mirror import newest_reports
from .pki import StackPki, service_tls
from .render import nginx, rpm_mirror as render
from .render.formats import repo as repo_format
from .render.shell import SecretFile, put_file, step_script, take_secrets
from .settings import RpmMirrorSettings


@dataclass(frozen=True)
class RepoSyncMirrorArgs:
    host: remote.Host
    settings: RpmMirrorSettings
    pki: StackPki | None = None
    tls_key: pulumi.Output[str] | None = None


class RepoSyncMirror(pulumi.ComponentResource):
    base_url: pulumi.Output[str]
    ca_bundle: pulumi.Output[str]
    repo_files: pulumi.Output[dict]
    """`.repo` file text per repository, as clients write it."""
    keys: pulumi.Output[dict]
    """Armored public key per repository."""
    reports: pulumi.Output[list]

    def __init__(self, name: str, args: RepoSyncMirrorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:RepoSyncMirror", name, None, opts)
        settings, host = args.settings, args.host
        hostname = settings.hostname or host.address
        tls = service_tls(f"{name}-tls", settings.tls, hostname=hostname, address=host.address, pki=args.pki,
                          key=args.tls_key, parent=self)
        spec = mirror_spec(settings)
        site = nginx.Site(name=f"airgap-{name}", address=host.address, port=settings.port, hostname=hostname,
                          root=spec.public, tls=tls is not None)

        def install_script(cert_pem: str | None) -> str:
            body = render.install_body(spec) + "\n"
            if settings.server == "nginx":
                body += render.httpd_remove_lines(site.name) + "\n" + nginx.install_lines(site, cert_pem)
            else:
                body += nginx.remove_lines(site, keep_tls=True) + "\n"  # a switch from nginx frees the port first
                if tls is not None:
                    body += put_file(site.cert_path, cert_pem or "", tag=f"site-{site.name}")
                    body += take_secrets([SecretFile(site.key_path, "0600", "root:root", f"site-{site.name}")])
                body += render.httpd_install_lines(render.httpd_site(
                    name=site.name, address=site.address, port=site.port, hostname=hostname, root=spec.public,
                    tls=tls is not None, cert_path=site.cert_path, key_path=site.key_path), site.name, tls is not None)
                if tls is None:
                    body += "\n" + nginx.drop_tls_lines(site)
            return step_script(body, sudo=host.sudo)

        cert = tls.cert_pem if tls is not None else pulumi.Output.from_input("")
        install = remote.step(
            f"{name}-install", host, cert.apply(lambda pem: install_script(pem or None)), parent=self,
            secrets=[tls.key_pem] if tls is not None else [],
            delete=step_script("\n".join([render.uninstall_body(spec, purge=settings.purge), nginx.remove_lines(site),
                                           render.httpd_remove_lines(site.name)]), sudo=host.sudo),
        )
        update = remote.step(
            f"{name}-update", host, step_script(render.UPDATE_PROGRAM, sudo=host.sudo), parent=self,
            versions=[remote.content_hash(render.update_program(spec))], depends_on=[install],
        )
        self.base_url = pulumi.Output.from_input(site.url)
        self.hostname = hostname
        self.ca_bundle = tls.ca_pem if tls is not None else pulumi.Output.from_input("")
        self.keys = pulumi.Output.from_input({repo.id: repo.key for repo in spec.repos})
        self.repo_files = pulumi.Output.from_input(
            {repo.id: repo_file(site.url, repo, tls is not None) for repo in spec.repos})
        latest = remote.read(render.reports_command(spec), host)
        self.reports = pulumi.Output.all(update.stdout, latest).apply(lambda texts: newest_reports(*texts))
        self.register_outputs({"baseUrl": self.base_url, "repoFiles": self.repo_files, "reports": self.reports})


def mirror_spec(settings: RpmMirrorSettings) -> render.RpmMirrorSpec:
    repos = tuple(
        render.RpmRepo(id=repo.id, baseurl=f"file://{repo.tree}" if repo.tree else repo.baseurl,
                       key=Path(repo.gpg_key).read_text() if repo.gpg_key else "",
                       releasever=repo.releasever, arches=repo.arches, metadata_signed=repo.metadata_signed)
        for repo in settings.repos
    )
    return render.RpmMirrorSpec(root=settings.storage_path, keep=settings.keep, schedule=settings.schedule, repos=repos)


KEY_DIR = "/etc/pki/rpm-gpg"
CA_PATH = "/etc/pki/airgap/mirror-ca.crt"


def repo_file(base_url: str, repo: render.RpmRepo, tls: bool) -> str:
    """A client's `.repo` file for `repo` (formats/repo.py writes every value)."""
    settings: list[tuple[str, str | int]] = [
        ("name", f"{repo.id} (airgap mirror)"),
        ("baseurl", f"{base_url}/{repo.id}"),
        ("enabled", 1),
        ("gpgcheck", 1),
        ("repo_gpgcheck", 1 if repo.metadata_signed else 0),
        ("gpgkey", f"file://{KEY_DIR}/RPM-GPG-KEY-airgap-{repo.id}"),
        ("skip_if_unavailable", 0),
    ]
    if tls:
        settings.append(("sslcacert", CA_PATH))
    return repo_format.repo_file(f"airgap-{repo.id}", settings)
