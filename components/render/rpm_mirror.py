"""RPM mirror: `dnf reposync` with signatures checked, dated snapshots, served by nginx or httpd.

The update program (`/usr/local/sbin/airgap-rpm-mirror-update`) syncs each repository into a
working copy with `dnf reposync --gpgcheck --download-metadata` (packages whose signature fails
are removed; with `repo_gpgcheck`, unsigned or badly signed metadata is refused). The upstream's
metadata is kept as it is, `repomd.xml.asc` included, so it stays valid: nothing regenerates it.
When the metadata changed, a dated snapshot is made (packages hard-linked, metadata copied) and
switched in with an atomic symlink swap; a half-finished sync is never served.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import programs, systemd
from .shell import heredoc_delimiter, put_file, q

UPDATE_PROGRAM = "/usr/local/sbin/airgap-rpm-mirror-update"
CONFIG_DIR = "/etc/airgap/rpm-mirror"
UNIT = "airgap-rpm-mirror-update"


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
    """An Apache httpd virtual host (for `server: httpd`)."""
    ssl = (f"    SSLEngine on\n    SSLCertificateFile {cert_path}\n    SSLCertificateKeyFile {key_path}\n"
           "    SSLProtocol -all +TLSv1.2 +TLSv1.3\n") if tls else ""
    return (
        f"Listen {address}:{port}\n"
        f"<VirtualHost {address}:{port}>\n"
        f"    ServerName {hostname}\n"
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
    lines = [
        "for tool in dnf createrepo_c gpg rpm python3; do",
        "  command -v \"$tool\" >/dev/null 2>&1 || missing=yes",
        "done",
        "if [ -z \"${missing:-}\" ] && ! dnf reposync --help >/dev/null 2>&1; then missing=yes; fi",
        "if [ \"${missing:-}\" = yes ]; then",
        "  if command -v apt-get >/dev/null 2>&1; then",
        "    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dnf dnf-plugins-core createrepo-c rpm gnupg python3",
        "  else dnf install -y dnf-plugins-core createrepo_c; fi",
        "fi",
        f"install -d -m 0755 {q(spec.root)} {q(spec.public)} {q(CONFIG_DIR + '/keys')}",
    ]
    for repo in spec.repos:
        lines.append(put_file(spec.key_path(repo), repo.key, tag="keys"))
    lines += [
        put_file(UPDATE_PROGRAM, update_program(spec), mode="0755", tag="program"),
        systemd.scheduled_lines(UNIT, "Update the RPM mirrors (airgap-infra)", UPDATE_PROGRAM, spec.schedule),
    ]
    return "\n".join(lines)


def httpd_install_lines(site_text: str, name: str, tls: bool) -> str:
    """Install an httpd site (Debian's apache2 layout, or httpd's conf.d), check it, reload."""
    return "\n".join([
        "if command -v apache2ctl >/dev/null 2>&1; then",
        f"  conf=/etc/apache2/sites-enabled/{name}.conf; ctl=apache2ctl; service=apache2",
        "  [ -L /etc/apache2/sites-enabled/000-default.conf ] && rm -f /etc/apache2/sites-enabled/000-default.conf",
        # Listen lines live in each site, on the host's own address; Debian's `Listen 80` on every
        # address goes (kept in ports.conf.airgap-saved, restored when the mirror is removed).
        "  [ -f /etc/apache2/ports.conf.airgap-saved ] || cp -p /etc/apache2/ports.conf /etc/apache2/ports.conf.airgap-saved",
        "  [ -s /etc/apache2/ports.conf ] && : > /etc/apache2/ports.conf",
        "  a2enmod -q ssl >/dev/null" if tls else "  true",
        "else",
        f"  conf=/etc/httpd/conf.d/{name}.conf; ctl=apachectl; service=httpd",
        "fi",
        f"airgap_install_file \"$conf\" 0644 root:root site-{name} <<'{heredoc_delimiter(site_text)}'",
        site_text.rstrip("\n"),
        heredoc_delimiter(site_text),
        "\"$ctl\" -t",
        "systemctl enable \"$service\" >/dev/null 2>&1 || true",
        "if ! systemctl is-active \"$service\" >/dev/null 2>&1; then systemctl start \"$service\"",
        f"elif airgap_changed site-{name}; then systemctl reload \"$service\"; fi",
    ])


def httpd_remove_lines(name: str) -> str:
    """Remove our httpd site if there is one (a switch to nginx, or removal)."""
    return "\n".join([
        f"for conf in /etc/apache2/sites-enabled/{name}.conf /etc/httpd/conf.d/{name}.conf; do",
        "  if [ -f \"$conf\" ]; then",
        "    rm -f \"$conf\"",
        "    if [ -f /etc/apache2/ports.conf.airgap-saved ]; then",
        "      mv -f /etc/apache2/ports.conf.airgap-saved /etc/apache2/ports.conf",
        "    fi",
        "    if ! command -v apache2ctl >/dev/null 2>&1; then systemctl reload httpd >/dev/null 2>&1 || true",
        "    elif [ -z \"$(ls -A /etc/apache2/sites-enabled)\" ]; then",
        "      systemctl disable --now apache2 >/dev/null 2>&1 || true   # it served only the mirror",
        "    else systemctl reload apache2 >/dev/null 2>&1 || true; fi",
        "  fi",
        "done",
    ])


def uninstall_body(spec: RpmMirrorSpec, *, purge: bool) -> str:
    lines = [
        systemd.remove_scheduled_lines(UNIT),
        f"rm -f {q(UPDATE_PROGRAM)}",
    ]
    if purge:
        lines.append(f"rm -rf --one-file-system {q(spec.root)} {q(CONFIG_DIR)}")
    else:
        lines.append(f"echo {q(f'rpm mirror removed; packages and snapshots kept in {spec.root}')} >&2")
    return "\n".join(lines)
