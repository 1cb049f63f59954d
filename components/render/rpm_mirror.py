"""RPM mirror: `dnf reposync` with signatures checked, dated snapshots, served by nginx or httpd.

The update program (`/usr/local/sbin/airgap-rpm-mirror-update`) syncs each repository into a
working copy with `dnf reposync --gpgcheck --download-metadata` (packages whose signature fails
are removed; with `repo_gpgcheck`, unsigned or badly signed metadata is refused). The upstream's
metadata is kept as it is, `repomd.xml.asc` included, so it stays valid: nothing regenerates it.
When the metadata changed, a dated snapshot is made (packages hard-linked, metadata copied) and
switched in with an atomic symlink swap; a half-finished sync is never served. A repository
taken out of the stack stops being served (its link goes; its snapshots stay, as data do).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import programs, systemd
from .formats import httpd
from .formats.hosts import host_port
from .purge import purge_lines
from .shell import heredoc_delimiter, put_file, q

UPDATE_PROGRAM = "/usr/local/sbin/airgap-rpm-mirror-update"
CONFIG_DIR = "/etc/airgap/rpm-mirror"
UNIT = "airgap-rpm-mirror-update"
INSTALL = programs.load("rpm_mirror/install.sh")
INSTALL_HTTPD_SITE = programs.load("rpm_mirror/install-httpd-site.sh")
REMOVE_HTTPD_SITE = programs.load("rpm_mirror/remove-httpd-site.sh")


@dataclass(frozen=True)
class RpmRepo:
    id: str
    baseurl: str | None
    """None: the host's own repository of this id (from /etc/yum.repos.d)."""
    key: str
    """Armored public key."""
    releasever: str
    arches: tuple[str, ...]
    metadata_signed: bool


@dataclass(frozen=True)
class RpmMirrorSpec:
    root: str
    keep: int
    schedule: str
    repos: tuple[RpmRepo, ...]

    @property
    def public(self) -> str:
        return f"{self.root}/public"

    @staticmethod
    def key_path(repo: RpmRepo) -> str:
        return f"{CONFIG_DIR}/keys/{repo.id}.asc"


def update_program(spec: RpmMirrorSpec) -> str:
    """The update program (programs/rpm_mirror/update.sh): its settings, its functions, then one
    call per repository, every value quoted."""
    head = programs.with_settings("rpm_mirror/update.sh", ROOT=spec.root, KEEP=int(spec.keep))
    calls = [
        "sync_repo " + " ".join(q(v) for v in (
            repo.id, repo.baseurl or "", spec.key_path(repo), repo.releasever,
            "yes" if repo.metadata_signed else "no", *repo.arches))
        for repo in spec.repos
    ]
    calls.append("finish " + " ".join(q(r.id) for r in spec.repos))
    return head + "\n" + "\n".join(calls) + "\n"




def httpd_site(*, name: str, address: str, port: int, hostname: str, root: str, tls: bool,
               cert_path: str, key_path: str) -> str:
    """An Apache httpd virtual host (for `server: httpd`); every value an httpd token
    (formats/httpd.py), an IPv6 address bracketed."""
    listen, root = httpd.token(host_port(address, port)), httpd.token(root)
    ssl = (f"    SSLEngine on\n    SSLCertificateFile {httpd.token(cert_path)}\n"
           f"    SSLCertificateKeyFile {httpd.token(key_path)}\n"
           "    SSLProtocol -all +TLSv1.2 +TLSv1.3\n") if tls else ""
    return (
        f"Listen {listen}\n"
        f"<VirtualHost {listen}>\n"
        f"    ServerName {httpd.token(hostname)}\n"
        f"{ssl}"
        f"    DocumentRoot {root}\n"
        f"    <Directory {root}>\n"
        "        Options +Indexes +FollowSymLinks\n"
        "        AllowOverride None\n"
        "        Require all granted\n"
        "    </Directory>\n"
        "    <LocationMatch \"/\\.\">\n        Require all denied\n    </LocationMatch>\n"
        "</VirtualHost>\n"
    )


def install_body(spec: RpmMirrorSpec) -> str:
    """Install step: packages, keys, update program, timer (programs/rpm_mirror/install.sh)."""
    lines = [
        INSTALL,
        "airgap_rpm_mirror_tools",
        f"install -d -m 0755 {q(spec.root)} {q(spec.public)} {q(CONFIG_DIR + '/keys')}",
    ]
    for repo in spec.repos:
        lines.append(put_file(spec.key_path(repo), repo.key, tag="keys"))
    lines.append(" ".join(["airgap_rpm_mirror_prune_keys", q(CONFIG_DIR + "/keys"), *(q(r.id) for r in spec.repos)]))
    lines += [
        put_file(UPDATE_PROGRAM, update_program(spec), mode="0755", tag="program"),
        systemd.scheduled_lines(UNIT, "Update the RPM mirrors (airgap-infra)", UPDATE_PROGRAM, spec.schedule),
    ]
    return "\n".join(lines)


def httpd_install_lines(site_text: str, name: str, tls: bool) -> str:
    """Install an httpd site (Debian's apache2 layout, or httpd's conf.d), check it, reload
    (programs/rpm_mirror/install-httpd-site.sh)."""
    if not site_text.endswith("\n"):
        site_text += "\n"
    delimiter = heredoc_delimiter(site_text)
    return "\n".join([
        INSTALL_HTTPD_SITE,
        f"airgap_httpd_site {q(name)} {'yes' if tls else 'no'} <<'{delimiter}'\n{site_text}{delimiter}",
    ])


def httpd_remove_lines(name: str) -> str:
    """Remove our httpd site if there is one (a switch to nginx, or removal;
    programs/rpm_mirror/remove-httpd-site.sh)."""
    return "\n".join([REMOVE_HTTPD_SITE, f"airgap_httpd_site_remove {q(name)}"])


def uninstall_body(spec: RpmMirrorSpec, *, purge: bool) -> str:
    lines = [
        systemd.remove_scheduled_lines(UNIT),
        f"rm -f {q(UPDATE_PROGRAM)}",
    ]
    if purge:
        lines += [purge_lines(spec.root), f"rm -rf --one-file-system {q(CONFIG_DIR)}"]
    else:
        lines.append(f"echo {q(f'rpm mirror removed; packages and snapshots kept in {spec.root}')} >&2")
    return "\n".join(lines)


def reports_command(spec: RpmMirrorSpec) -> str:
    """Read-only: every update report the mirror host holds (none yet: nothing)."""
    return f"cat {q(spec.public)}/airgap-reports/*.json 2>/dev/null || true"
