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

from . import systemd
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


_PROGRAM_HEAD = r'''#!/bin/bash
# Updates the RPM mirrors (rendered by airgap-infra; run by the timer and by `pulumi up`).
set -euo pipefail
umask 022
ROOT=__ROOT__
KEEP=__KEEP__
install -d -m 0755 "$ROOT/sync" "$ROOT/snapshots" "$ROOT/public" "$ROOT/public/airgap-reports" "$ROOT/installroot"
install -d -m 0700 "$ROOT/home"
exec 9>"$ROOT/update.lock"
flock 9   # the timer and `pulumi up` never update at the same time
# A private rpm database (inside the installroot) holds the keys packages are checked against;
# Debian's rpm would otherwise look in ~/.rpmdb.
export HOME="$ROOT/home"
printf '%%_dbpath /var/lib/rpm\n' > "$HOME/.rpmmacros"
cat > "$ROOT/dnf.conf" <<'CONF'
[main]
cachedir=/var/cache/dnf
logdir=/var/log
persistdir=/var/lib/dnf
reposdir=/etc/yum.repos.d
gpgcheck=1
CONF
stamp=$(date -u +%Y%m%dT%H%M%SZ)
REPORTS="$ROOT/public/airgap-reports"

stop_keyring_agents() {  # librepo leaves a gpg-agent on each repository keyring it used
  local keyring
  for keyring in "$ROOT"/installroot/var/cache/dnf/*/pubring; do
    [ -d "$keyring" ] && gpgconf --homedir "$keyring" --kill gpg-agent 2>/dev/null || true
  done
}
trap stop_keyring_agents EXIT

sync_repo() {  # ID BASEURL KEYFILE RELEASEVER METASIGNED ARCH...
  local id=$1 baseurl=$2 key=$3 releasever=$4 signed=$5
  shift 5
  local source=() arches=() arch work="$ROOT/sync/$id" current next status
  for arch in "$@"; do arches+=(--arch="$arch"); done
  rpm --root "$ROOT/installroot" --import "$key"
  if [ -n "$baseurl" ]; then
    source=(--setopt=reposdir=/dev/null --repofrompath="$id,$baseurl")
  else
    source=(--setopt=reposdir="$ROOT/host-repos")   # the host's definition, copied below
    install -d -m 0755 "$ROOT/host-repos"
    grep -l "^\[$id\]" /etc/yum.repos.d/*.repo | head -n1 | xargs -r -I{} cp {} "$ROOT/host-repos/$id.repo"
  fi
  dnf --assumeyes --quiet --config="$ROOT/dnf.conf" --installroot="$ROOT/installroot" --releasever="$releasever" \
    "${source[@]}" --setopt="$id.gpgcheck=1" --setopt="$id.repo_gpgcheck=$([ "$signed" = yes ] && echo 1 || echo 0)" \
    --setopt="$id.gpgkey=file://$key" \
    reposync --repoid="$id" --gpgcheck --download-metadata --download-path="$ROOT/sync" "${arches[@]}" >&2
  if [ "$signed" = yes ] && [ ! -s "$work/repodata/repomd.xml.asc" ]; then
    echo "rpm mirror: $id: the upstream's repomd.xml.asc is missing; refusing to publish unsigned metadata" >&2
    return 1
  fi
  install -d -m 0755 "$ROOT/snapshots/$id"
  current=""
  if [ -L "$ROOT/public/$id" ]; then current=$(readlink -f "$ROOT/public/$id"); fi
  if [ -n "$current" ] && cmp -s "$current/repodata/repomd.xml" "$work/repodata/repomd.xml"; then
    status=unchanged
  else
    next="$ROOT/snapshots/$id/$stamp"
    rm -rf "$next.partial"
    cp -al "$work" "$next.partial"                          # packages: hard links, never rewritten
    rm -rf "$next.partial/repodata"; cp -a "$work/repodata" "$next.partial/repodata"   # metadata: a copy
    mv "$next.partial" "$next"
    ln -sfn "$next" "$ROOT/public/.$id.new" && mv -T "$ROOT/public/.$id.new" "$ROOT/public/$id"
    status=updated
  fi
  python3 - "$id" "$status" "$current" "$(readlink -f "$ROOT/public/$id")" > "$REPORTS/.$id.json.new" <<'PY'
import datetime, json, os, sys
repo, status, old, new = sys.argv[1:5]
def rpms(tree):
    found = set()
    for base, _, files in os.walk(tree) if tree else ():
        found |= {f for f in files if f.endswith(".rpm")}
    return found
before, after = rpms(old), rpms(new)
print(json.dumps({"repo": repo, "status": status, "previous": os.path.basename(old), "current": os.path.basename(new),
                  "added": sorted(after - before), "removed": sorted(before - after),
                  "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
                 sort_keys=True))
PY
  mv -f "$REPORTS/.$id.json.new" "$REPORTS/$id.json"
  # keep the newest KEEP snapshots; the published one always stays
  ls -1d "$ROOT/snapshots/$id"/2*Z 2>/dev/null | head -n "-$KEEP" | while read -r old; do
    [ "$old" = "$(readlink -f "$ROOT/public/$id")" ] || rm -rf "$old"
  done
}
'''


def update_program(spec: RpmMirrorSpec) -> str:
    head = _PROGRAM_HEAD.replace("__ROOT__", q(spec.root)).replace("__KEEP__", str(int(spec.keep)))
    calls = [
        "sync_repo " + " ".join(q(v) for v in (
            repo.id, repo.baseurl or "", spec.key_path(repo), repo.releasever,
            "yes" if repo.metadata_signed else "no", *repo.arches))
        for repo in spec.repos
    ]
    tail = "for id in " + " ".join(q(r.id) for r in spec.repos) + "; do cat \"$REPORTS/$id.json\"; done\n"
    return head + "\n" + "\n".join(calls) + "\n" + tail




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
