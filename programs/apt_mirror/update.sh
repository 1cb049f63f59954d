#!/bin/bash
# Updates the Debian mirrors (rendered by airgap-infra; run by the timer and by `pulumi up`).
# Set before this text: ROOT, the storage path; KEEP, how many snapshots of each component stay;
# APTLY_CONFIG, aptly's configuration. After the functions: one call per repository (aptly_repo or
# debmirror_repo; serve_tree and stop_trees around an imported bundle's tree), then `finish NAME...`.
: "${ROOT:?}" "${KEEP:?}" "${APTLY_CONFIG:?}"
set -euo pipefail
umask 022
export GNUPGHOME="$ROOT/gnupg" HOME="$ROOT"
REPORTS="$ROOT/aptly/public/airgap-reports"
install -d -m 0755 "$REPORTS" "$ROOT/state"
exec 9>"$ROOT/update.lock"
flock 9   # the timer and `pulumi up` never update at the same time
TREE_PIDS=()
stop_trees() {
  local pid
  for pid in "${TREE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  TREE_PIDS=()
}
trap stop_trees EXIT
apq() { aptly -config="$APTLY_CONFIG" "$@"; }  # queries: their output is read
ap() { apq "$@" >&2; }                         # actions: progress goes to stderr; stdout is the report
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cleanup=no   # set when a snapshot is dropped or a publish switched: then `db cleanup` has work
signing_key=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')

report() {  # NAME STATUS PREVIOUS CURRENT DIFFFILE: the JSON report of this update
  python3 - "$@" <<'PY'
#embed apt_mirror/diff_report.py
PY
}

serve_tree() {  # DIR: an imported bundle's archive tree, served on a loopback port while aptly reads it
  local port_file i
  if [ ! -d "$1/dists" ]; then echo "apt mirror: $1 is not a Debian archive tree (no dists/)" >&2; return 1; fi
  port_file=$(mktemp)
  python3 - "$1" "$port_file" <<'PY' &
#embed apt_mirror/serve_tree.py
PY
  TREE_PIDS+=($!)
  for i in $(seq 1 100); do [ -s "$port_file" ] && break; sleep 0.1; done
  if [ ! -s "$port_file" ]; then echo "apt mirror: could not serve $1 on loopback" >&2; return 1; fi
  # shellcheck disable=SC2034  # read by the aptly_repo call the renderer appends after serve_tree
  TREE_URL="http://127.0.0.1:$(cat "$port_file")"
  rm -f "$port_file"
}

upstream_seen() {  # URL DIST KEYRING SETTINGS...: hash of the upstream's (In)Release and these settings
  python3 - "$@" <<'PY'
#embed apt_mirror/upstream_seen.py
PY
}

write_report() {  # NAME JSON
  printf '%s\n' "$2" > "$REPORTS/.$1.json.new"
  mv -f "$REPORTS/.$1.json.new" "$REPORTS/$1.json"
  printf '%s\n' "$2" > "$REPORTS/$1-$stamp.json"
}

aptly_repo() {  # NAME URL DIST ARCHS FILTER WITHDEPS IGNORESIG KEYRING PREFIX COMPONENT...
  local name=$1 url=$2 dist=$3 archs=$4 filter=$5 withdeps=$6 ignore=$7 keyring=$8 prefix=$9
  shift 9
  local component mirror verify=(-keyring="$keyring") created=() opts=(-architectures="$archs")
  local state="$ROOT/state/$name.published" seen="$ROOT/state/$name.upstream" upstream=""
  # Fetched before aptly's own: an upstream that changes in between is seen as new next time.
  upstream=$(upstream_seen "$url" "$dist" "$keyring" "$archs" "$filter" "$withdeps" "$ignore" "$@") || upstream=""
  if [ -n "$upstream" ] && [ -s "$state" ] && [ "$upstream" = "$(cat "$seen" 2>/dev/null)" ] &&
     [ -z "${AIRGAP_FULL_UPDATE:-}" ]; then
    write_report "$name" "$(report "$name" unchanged "$(cat "$state")" "$(cat "$state")" /dev/null)"
    return 0
  fi
  [ "$ignore" = yes ] && verify=(-ignore-signatures)
  [ -n "$filter" ] && opts+=(-filter="$filter")
  [ "$withdeps" = yes ] && opts+=(-filter-with-deps)
  for component in "$@"; do
    mirror="$name-$component"
    if ! apq mirror show "$mirror" >/dev/null 2>&1; then
      ap mirror create "${verify[@]}" "${opts[@]}" "$mirror" "$url" "$dist" "$component"
    else
      ap mirror edit "${verify[@]}" "${opts[@]}" -archive-url="$url" -filter-with-deps="$([ "$withdeps" = yes ] && echo true || echo false)" "$mirror"
    fi
    ap mirror update "${verify[@]}" "$mirror"
    ap snapshot create "$mirror-$stamp" from mirror "$mirror"
    created+=("$mirror-$stamp")
  done
  local previous="" changed=no snap old diff
  [ -f "$state" ] && previous=$(cat "$state")
  diff=$(mktemp)
  if [ -z "$previous" ]; then
    # first publish: the report lists every package as added (a diff against an empty snapshot)
    apq snapshot show airgap-empty >/dev/null 2>&1 || ap snapshot create airgap-empty empty
    for snap in "${created[@]}"; do apq snapshot diff airgap-empty "$snap" >>"$diff"; done
    changed=yes
  else
    read -r -a old <<<"$previous"
    local i
    for i in "${!created[@]}"; do
      apq snapshot diff "${old[$i]:-missing}" "${created[$i]}" >>"$diff" 2>&1 || changed=yes
    done
    [ "${#old[@]}" = "${#created[@]}" ] || changed=yes
    grep -q '^[!+-] ' "$diff" && changed=yes
  fi
  if [ "$changed" = no ]; then
    for snap in "${created[@]}"; do ap snapshot drop "$snap"; done
    write_report "$name" "$(report "$name" unchanged "$previous" "$previous" "$diff")"
  else
    local joined
    joined=$(IFS=,; echo "$*")
    if apq publish list -raw 2>/dev/null | grep -qxF "$prefix $dist"; then
      ap publish switch -batch -gpg-key="$signing_key" -component="$joined" "$dist" "$prefix" "${created[@]}"
    else
      ap publish snapshot -batch -gpg-key="$signing_key" -component="$joined" -distribution="$dist" \
        -architectures="$archs" "${created[@]}" "$prefix"
    fi
    printf '%s\n' "${created[*]}" > "$state.new"; mv -f "$state.new" "$state"
    cleanup=yes
    write_report "$name" "$(report "$name" updated "$previous" "${created[*]}" "$diff")"
  fi
  rm -f "$diff"
  # keep the newest KEEP snapshots of each component (the published ones always stay)
  local published
  published=" $(cat "$state" 2>/dev/null) "
  for component in "$@"; do
    while read -r snap; do
      case "$published" in *" $snap "*) ;; *) ap snapshot drop "$snap"; cleanup=yes ;; esac
    done < <(apq snapshot list -raw -sort=time | grep -E "^$name-$component-[0-9]{8}T[0-9]{6}Z$" | head -n "-$KEEP")
  done
  if [ -n "$upstream" ]; then printf '%s\n' "$upstream" > "$seen.new"; mv -f "$seen.new" "$seen"; fi
}

debmirror_repo() {  # NAME URL DIST ARCHS KEYRING COMPONENT...
  local name=$1 url=$2 dist=$3 archs=$4 keyring=$5
  shift 5
  local host path scheme trees="$ROOT/debmirror/$name" current next
  scheme=${url%%://*}; host=${url#*://}; path=/${host#*/}; host=${host%%/*}
  install -d -m 0755 "$trees"
  current=$(readlink -f "$trees/current" 2>/dev/null || true)
  next="$trees/$stamp"
  if [ -n "$current" ] && [ -d "$current" ]; then cp -al "$current" "$next.partial"; else install -d "$next.partial"; fi
  debmirror --method="$scheme" --host="$host" --root="$path" --dist="$dist" --section="$(IFS=,; echo "$*")" \
    --arch="$archs" --keyring="$keyring" --rsync-extra=none --nosource --diff=none --progress \
    "$next.partial" >&2 || { rm -rf "$next.partial"; return 1; }
  mv "$next.partial" "$next"
  ln -sfn "$next" "$trees/current.new" && mv -T "$trees/current.new" "$trees/current"
  ln -sfn "$trees/current" "$ROOT/aptly/public/$name.new" && mv -T "$ROOT/aptly/public/$name.new" "$ROOT/aptly/public/$name"
  # shellcheck disable=SC2012  # our own UTC time stamps: one word each, and ls sorts them oldest first
  ls -1d "$trees"/2*Z 2>/dev/null | head -n "-$KEEP" | xargs -r rm -rf
  write_report "$name" "{\"repo\": \"$name\", \"status\": \"copied\", \"current\": [\"$stamp\"]}"
}

unpublish_others() {  # NAME...: repositories not among NAME... stop being served; their snapshots stay
  local prefix dist link keep
  while read -r prefix dist; do
    for keep in "$@"; do
      if [ "$prefix" = "$keep" ]; then continue 2; fi
    done
    ap publish drop "$dist" "$prefix"
    find "$ROOT/aptly/public/$prefix" -depth -type d -empty -delete 2>/dev/null || true
    # forgotten: put back, the repository is published again at its next update
    rm -f "$ROOT/state/$prefix.published" "$ROOT/state/$prefix.upstream"
    echo "apt mirror: $prefix is no longer mirrored: not published any more; its snapshots stay" >&2
  done < <(apq publish list -raw 2>/dev/null || true)
  for link in "$ROOT"/aptly/public/*; do   # debmirror's trees are linked in
    [ -L "$link" ] || continue
    case "$(readlink "$link")" in "$ROOT/debmirror/"*) ;; *) continue ;; esac
    for keep in "$@"; do
      if [ "$(basename "$link")" = "$keep" ]; then continue 2; fi
    done
    rm -f "$link"
  done
}

finish() {  # NAME...: unpublish what the stack no longer mirrors, reclaim what dropped snapshots held,
            # then print each repository's report
  unpublish_others "$@"
  if [ "$cleanup" = yes ]; then   # only aptly_repo sets it
    ap db cleanup
  fi
  local name
  for name in "$@"; do cat "$REPORTS/$name.json"; done
}
