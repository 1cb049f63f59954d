"""`AptlyMirror`: a signed Debian mirror on a host, updated on a schedule, served by nginx.

Children:
- `<name>-tls-*`: the server certificate from the stack CA (`tls.mode: generate`);
- `<name>-install`: aptly (or debmirror), nginx, upstream keyrings, the stack's signing key,
  the update program and its systemd timer; prints the public key clients trust;
- `<name>-update`: runs the update program (first mirror, and again whenever the repositories'
  settings change); its stdout is each repository's report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi

from . import remote
from .pki import StackPki, service_tls
from .render import apt_mirror as render, nginx
from .render.formats import deb822 as deb822_format
from .render.shell import step_script
from .settings import AptMirrorSettings


@dataclass(frozen=True)
class AptlyMirrorArgs:
    host: remote.Host
    settings: AptMirrorSettings
    signing_key: pulumi.Output[str] | None
    """Armored GPG private key (a secret) that signs what aptly publishes."""
    pki: StackPki | None = None
    tls_key: pulumi.Output[str] | None = None


class AptlyMirror(pulumi.ComponentResource):
    base_url: pulumi.Output[str]
    """Where clients find the repositories: `<base_url>/<repo name>`."""
    public_key: pulumi.Output[str]
    """Armored public key that signs the published repositories (aptly), or the upstreams' keys."""
    ca_bundle: pulumi.Output[str]
    """PEM clients trust for HTTPS ("" with plain HTTP)."""
    sources: pulumi.Output[dict]
    """deb822 sources text per repository, as clients write it."""
    keys: pulumi.Output[dict]
    """Armored key each repository is signed with, by repository name."""
    hostname: str
    reports: pulumi.Output[list]
    """What the last update changed, per repository."""

    def __init__(self, name: str, args: AptlyMirrorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:AptlyMirror", name, None, opts)
        settings, host = args.settings, args.host
        hostname = settings.hostname or host.address
        tls = service_tls(f"{name}-tls", settings.tls, hostname=hostname, address=host.address, pki=args.pki,
                          key=args.tls_key, parent=self)
        spec = mirror_spec(settings)
        site = nginx.Site(name=f"airgap-{name}", address=host.address, port=settings.port, hostname=hostname,
                          root=spec.public, tls=tls is not None)

        def install_script(cert_pem: str | None) -> str:
            return step_script("\n".join([nginx.install_lines(site, cert_pem),
                                          render.install_body(spec, nginx.site_config(site), site.name),
                                          render.print_keys_lines(spec)]), sudo=host.sudo)

        secrets: list[pulumi.Input[str]] = []
        if tls is not None:
            secrets.append(tls.key_pem)
        if spec.method == "aptly":
            assert args.signing_key is not None
            secrets.append(args.signing_key)
        cert = tls.cert_pem if tls is not None else pulumi.Output.from_input("")
        install = remote.step(
            f"{name}-install", host, cert.apply(lambda pem: install_script(pem or None)), parent=self,
            secrets=secrets,
            delete=step_script(render.uninstall_body(spec, site.name, purge=settings.purge)
                               + "\n" + nginx.remove_lines(site), sudo=host.sudo),
        )
        update = remote.step(
            f"{name}-update", host, step_script(render.update_body(), sudo=host.sudo), parent=self,
            versions=[remote.content_hash(render.update_program(spec))], depends_on=[install],
        )

        self.base_url = pulumi.Output.from_input(site.url)
        self.public_key = install.stdout
        self.ca_bundle = tls.ca_pem if tls is not None else pulumi.Output.from_input("")
        self.sources = pulumi.Output.from_input({repo.name: deb822(site.url, repo) for repo in spec.repos})
        self.hostname = hostname
        if spec.method == "aptly":
            self.keys = self.public_key.apply(lambda key: {repo.name: key for repo in spec.repos})
        else:
            self.keys = pulumi.Output.from_input({repo.name: "".join(repo.keys) for repo in spec.repos})
        # The reports of the last update, whoever ran it: this run's update step, or the timer
        # (read from the host at every run, preview included).
        latest = remote.read(render.reports_command(spec), host)
        self.reports = pulumi.Output.all(update.stdout, latest).apply(lambda texts: newest_reports(*texts))
        self.register_outputs({"baseUrl": self.base_url, "publicKey": self.public_key, "sources": self.sources,
                               "keys": self.keys,
                               "reports": self.reports})


def mirror_spec(settings: AptMirrorSettings) -> render.AptMirrorSpec:
    repos = tuple(
        render.AptRepo(
            name=repo.name, url=repo.url or "", tree=repo.tree, distribution=repo.distribution,
            components=repo.components,
            architectures=repo.architectures, keys=tuple(Path(k).read_text() for k in repo.keys),
            filter=repo.filter, filter_with_deps=repo.filter_with_deps, ignore_signatures=repo.ignore_signatures,
        )
        for repo in settings.repos
    )
    return render.AptMirrorSpec(root=settings.storage_path, method=settings.method, keep=settings.keep,
                                schedule=settings.schedule, repos=repos)


def deb822(base_url: str, repo: render.AptRepo, signed_by: str = "/etc/apt/keyrings/airgap-{name}.asc") -> str:
    """A client's apt source for `repo` (formats/deb822.py writes every field)."""
    return deb822_format.paragraph([
        ("Types", ["deb"]),
        ("URIs", [f"{base_url}/{repo.name}"]),
        ("Suites", [repo.distribution]),
        ("Components", repo.components),
        ("Architectures", repo.architectures),
        ("Signed-By", signed_by.format(name=repo.name)),
    ])


def parse_reports(stdout: str) -> list:
    return [json.loads(line) for line in (stdout or "").splitlines() if line.strip().startswith("{")]


def newest_reports(*texts: str) -> list:
    """One report per repository, the newest of those given (reports carry their UTC time)."""
    newest: dict[str, dict] = {}
    for text in texts:
        for report in parse_reports(text):
            held = newest.get(report["repo"])
            if held is None or report.get("time", "") >= held.get("time", ""):
                newest[report["repo"]] = report
    return [newest[name] for name in sorted(newest)]
