#!/bin/bash
# Updates the RPM mirrors (rendered by airgap-infra; run by the timer and by `pulumi up`).
# Set before this text: ROOT, the storage path; KEEP, how many snapshots of each repository stay.
# After the functions: one sync_repo call per repository, then `finish ID...` (the repositories the
# stack mirrors: any other stops being served).
: "${ROOT:?}" "${KEEP:?}"
set -euo pipefail
umask 022
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
    if [ -d "$keyring" ]; then gpgconf --homedir "$keyring" --kill gpg-agent 2>/dev/null || true; fi
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
#embed rpm_mirror/tree_report.py
PY
  mv -f "$REPORTS/.$id.json.new" "$REPORTS/$id.json"
  # keep the newest KEEP snapshots; the published one always stays
  # shellcheck disable=SC2012  # our own UTC time stamps: one word each, and ls sorts them oldest first
  ls -1d "$ROOT/snapshots/$id"/2*Z 2>/dev/null | head -n "-$KEEP" | while read -r old; do
    [ "$old" = "$(readlink -f "$ROOT/public/$id")" ] || rm -rf "$old"
  done
}

finish() {  # ID...: repositories not among ID... stop being served (their snapshots stay); print each report
  local link id keep
  for link in "$ROOT"/public/*; do
    [ -L "$link" ] || continue
    case "$(readlink "$link")" in "$ROOT/snapshots/"*) ;; *) continue ;; esac   # ours: a snapshot
    id=$(basename "$link")
    for keep in "$@"; do
      if [ "$id" = "$keep" ]; then continue 2; fi
    done
    rm -f "$link"
    echo "rpm mirror: $id is no longer mirrored: not served any more; its snapshots stay in $ROOT/snapshots/$id" >&2
  done
  for id in "$@"; do cat "$REPORTS/$id.json"; done
}
