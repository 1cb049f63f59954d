"""Debian mirror: aptly (snapshots, signed publish, atomic switch) or debmirror, served by nginx.

The update program (`/usr/local/sbin/airgap-apt-mirror-update`) is what both the `pulumi up`
step and the systemd timer run, under one lock:

- aptly: one aptly mirror per upstream component (a published component stays a component),
  created with the upstream's keyring (never `-ignore-signatures` unless the stack says so),
  updated, snapshotted as `<repo>-<component>-<UTC time>`; if the packages differ from what is
  published, the new snapshots are published with `publish switch` (signed with the stack's
  key) in one step, so clients see the old state or the new one, never a mix. A report of what
  changed is kept; the newest `keep` snapshots stay, older ones are dropped and `db cleanup`
  reclaims their packages. When the upstream's InRelease (it lists every index's checksum) and
  the repository's settings are byte for byte what the last complete update saw, the update
  stops there: nothing is downloaded, snapshotted or cleaned up (`AIRGAP_FULL_UPDATE=1` forces
  the whole update, e.g. to re-check the pool).
- debmirror: a copy of the upstream tree (its own signatures kept) in a dated directory built
  from hard links of the previous one, switched in with an atomic symlink swap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import systemd
from .shell import put_file, q

UPDATE_PROGRAM = "/usr/local/sbin/airgap-apt-mirror-update"
CONFIG_DIR = "/etc/airgap/apt-mirror"
UNIT = "airgap-apt-mirror-update"
PUBLIC_KEY_NAME = "airgap-archive-key.asc"
REPORTS = "airgap-reports"


@dataclass(frozen=True)
class AptRepo:
    name: str
    url: str
    distribution: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    keys: tuple[str, ...]
    """Armored public keys of the upstream."""
    filter: str | None = None
    filter_with_deps: bool = False
    ignore_signatures: bool = False
    tree: str | None = None
    """An imported bundle's archive tree on the mirror host, in place of `url`."""


@dataclass(frozen=True)
class AptMirrorSpec:
    root: str
    """Storage path: aptly's rootDir, keyrings, GNUPGHOME, debmirror trees."""
    method: str
    keep: int
    schedule: str
    repos: tuple[AptRepo, ...]

    @property
    def public(self) -> str:
        """What nginx serves: aptly's publish root (debmirror trees are linked into it)."""
        return f"{self.root}/aptly/public"

    def keyring(self, repo: AptRepo) -> str:
        return f"{self.root}/keyrings/{repo.name}.gpg"


def aptly_config(spec: AptMirrorSpec) -> str:
    return json.dumps({
        "rootDir": f"{spec.root}/aptly",
        "downloadConcurrency": 4,
        "architectures": [],
        "dependencyFollowSuggests": False,
        "dependencyFollowRecommends": False,
        "dependencyFollowAllVariants": False,
        "dependencyFollowSource": False,
        "gpgDisableSign": False,
        "gpgDisableVerify": False,
        "gpgProvider": "gpg",
        "downloadSourcePackages": False,
        "skipLegacyPool": True,
        "ppaDistributorID": "",
        "ppaCodename": "",
        "FileSystemPublishEndpoints": {},
        "S3PublishEndpoints": {},
        "SwiftPublishEndpoints": {},
    }, indent=2, sort_keys=True)


# The program's fixed part; the per-repository calls are appended by `update_program`.
_PROGRAM_HEAD = r'''#!/bin/bash
# Updates the Debian mirrors (rendered by airgap-infra; run by the timer and by `pulumi up`).
set -euo pipefail
umask 022
ROOT=__ROOT__
KEEP=__KEEP__
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
apq() { aptly -config=__CONFIG__ "$@"; }     # queries: their output is read
ap() { apq "$@" >&2; }                       # actions: progress goes to stderr; stdout is the report
stamp=$(date -u +%Y%m%dT%H%M%SZ)
cleanup=no   # set when a snapshot is dropped or a publish switched: then `db cleanup` has work
signing_key=$(gpg --batch --with-colons --list-secret-keys 2>/dev/null | awk -F: '/^fpr/ {print $10; exit}')

report() {  # NAME STATUS PREVIOUS CURRENT DIFFFILE: the JSON report of this update
  python3 - "$@" <<'PY'
import json, re, sys, datetime
name, status, previous, current, diff_file = sys.argv[1:6]
added, removed, upgraded = [], [], []
for line in open(diff_file, encoding="utf-8", errors="replace"):
    m = re.match(r"^([!+-])\s+(\S+)\s+\|\s+(\S+)\s+\|\s+(\S+)\s+\|\s+(\S+)", line)
    if not m:
        continue
    mark, arch, package, old, new = m.groups()
    if mark == "+":
        added.append({"package": package, "arch": arch, "version": new})
    elif mark == "-":
        removed.append({"package": package, "arch": arch, "version": old})
    else:
        upgraded.append({"package": package, "arch": arch, "from": old, "to": new})
print(json.dumps({"repo": name, "status": status, "previous": previous.split(), "current": current.split(),
                  "added": added, "removed": removed, "upgraded": upgraded,
                  "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
                 sort_keys=True))
PY
}

serve_tree() {  # DIR: an imported bundle's archive tree, served on a loopback port while aptly reads it
  local port_file i
  if [ ! -d "$1/dists" ]; then echo "apt mirror: $1 is not a Debian archive tree (no dists/)" >&2; return 1; fi
  port_file=$(mktemp)
  python3 - "$1" "$port_file" <<'PY' &
import functools, http.server, os, sys
tree, port_file = sys.argv[1:]
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=tree))
with open(port_file + ".new", "w") as out:
    out.write(str(server.server_address[1]))
os.rename(port_file + ".new", port_file)
server.serve_forever()
PY
  TREE_PIDS+=($!)
  for i in $(seq 1 100); do [ -s "$port_file" ] && break; sleep 0.1; done
  if [ ! -s "$port_file" ]; then echo "apt mirror: could not serve $1 on loopback" >&2; return 1; fi
  TREE_URL="http://127.0.0.1:$(cat "$port_file")"
  rm -f "$port_file"
}

upstream_seen() {  # URL DIST KEYRING SETTINGS...: hash of the upstream's (In)Release and these settings
  python3 - "$@" <<'PY'
import hashlib, os, sys, urllib.error, urllib.request
url, dist, keyring, *settings = sys.argv[1:]
# A served tree's port changes every run: its identity is its path (AIRGAP_SOURCE).
digest = hashlib.sha256("\0".join([os.environ.get("AIRGAP_SOURCE") or url, dist, *settings]).encode())
with open(keyring, "rb") as keys:
    digest.update(keys.read())
base = f"{url.rstrip('/')}/{dist}" if dist.endswith("/") else f"{url.rstrip('/')}/dists/{dist}/"
for index in ("InRelease", "Release"):
    try:
        with urllib.request.urlopen(base + index, timeout=60) as response:
            digest.update(response.read())
            break
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
else:
    sys.exit(1)
print(digest.hexdigest())
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
  ls -1d "$trees"/2*Z 2>/dev/null | head -n "-$KEEP" | xargs -r rm -rf
  write_report "$name" "{\"repo\": \"$name\", \"status\": \"copied\", \"current\": [\"$stamp\"]}"
}
'''

_PROGRAM_TAIL = r'''
if [ __METHOD__ = aptly ] && [ "$cleanup" = yes ]; then
  ap db cleanup
fi
for name in __NAMES__; do cat "$REPORTS/$name.json"; done
'''


def update_program(spec: AptMirrorSpec) -> str:
    """The update program, with every value quoted."""
    head = (_PROGRAM_HEAD.replace("__ROOT__", q(spec.root)).replace("__KEEP__", str(int(spec.keep)))
            .replace("__CONFIG__", q(f"{CONFIG_DIR}/aptly.conf")))
    calls = []
    for repo in spec.repos:
        archs = ",".join(repo.architectures)
        if spec.method == "aptly":
            rest = " ".join(q(v) for v in (
                repo.distribution, archs, repo.filter or "",
                "yes" if repo.filter_with_deps else "no", "yes" if repo.ignore_signatures else "no",
                spec.keyring(repo), repo.name, *repo.components))
            if repo.tree:
                calls.append(f"serve_tree {q(repo.tree)}\n"
                             f"AIRGAP_SOURCE={q('tree:' + repo.tree)} aptly_repo {q(repo.name)} \"$TREE_URL\" {rest}\n"
                             "stop_trees")
            else:
                calls.append(f"aptly_repo {q(repo.name)} {q(repo.url)} {rest}")
        else:
            calls.append("debmirror_repo " + " ".join(q(v) for v in (
                repo.name, repo.url, repo.distribution, archs, spec.keyring(repo), *repo.components)))
    tail = (_PROGRAM_TAIL.replace("__METHOD__", q(spec.method))
            .replace("__NAMES__", " ".join(q(repo.name) for repo in spec.repos)))
    return head + "\n" + "\n".join(calls) + "\n" + tail




def keyring_lines(spec: AptMirrorSpec) -> str:
    """Each repository's upstream keys, as a binary keyring aptly and debmirror verify with."""
    lines = [f"install -d -m 0755 {q(spec.root + '/keyrings')}"]
    for repo in spec.repos:
        armored = f"{CONFIG_DIR}/keys/{repo.name}.asc"
        lines.append(put_file(armored, "".join(k if k.endswith("\n") else k + "\n" for k in repo.keys),
                              tag=f"keys-{repo.name}"))
        keyring = spec.keyring(repo)
        lines.append(
            f"if airgap_changed keys-{repo.name} || [ ! -s {q(keyring)} ]; then\n"
            f"  gpg --batch --dearmor < {q(armored)} > {q(keyring + '.new')}\n"
            f"  mv -f {q(keyring + '.new')} {q(keyring)}\n"
            "fi"
        )
    return "\n".join(lines)


def signing_key_lines(spec: AptMirrorSpec) -> str:
    """Import the stack's signing key (next stdin secret) into the mirror's own GNUPGHOME, and
    publish its public half for clients."""
    home = f"{spec.root}/gnupg"
    public = f"{spec.public}/{PUBLIC_KEY_NAME}"
    return f"""install -d -m 0700 {q(home)}
airgap_secret_tmp signing_key
fingerprint=$(GNUPGHOME={q(home)} gpg --batch --with-colons --import-options show-only --import < "$signing_key" \\
  | awk -F: '/^fpr/ {{print $10; exit}}')
if [ -z "$fingerprint" ]; then echo "apt mirror: the signing key secret holds no OpenPGP key" >&2; exit 1; fi
if ! GNUPGHOME={q(home)} gpg --batch --list-secret-keys "$fingerprint" >/dev/null 2>&1; then
  GNUPGHOME={q(home)} gpg --batch --import < "$signing_key"
fi
install -d -m 0755 {q(spec.public)}
GNUPGHOME={q(home)} gpg --batch --armor --export "$fingerprint" | airgap_install_file {q(public)} 0644 root:root signing-key"""


def install_body(spec: AptMirrorSpec, nginx_site: str, site_name: str) -> str:
    """Install step: packages, configuration, keys, update program, timer, nginx."""
    packages = "aptly gnupg nginx python3" if spec.method == "aptly" else "debmirror gnupg nginx python3"
    lines = [
        f"for tool in {'aptly' if spec.method == 'aptly' else 'debmirror'} gpg nginx python3; do",
        "  command -v \"$tool\" >/dev/null 2>&1 || missing=yes",
        "done",
        f"if [ \"${{missing:-}}\" = yes ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages}; fi",
        f"install -d -m 0755 {q(spec.root)} {q(spec.root + '/aptly')} {q(spec.public)} {q(CONFIG_DIR)}",
        put_file(f"{CONFIG_DIR}/aptly.conf", aptly_config(spec), tag="config"),
        keyring_lines(spec),
    ]
    if spec.method == "aptly":
        lines.append(signing_key_lines(spec))
    lines += [
        put_file(UPDATE_PROGRAM, update_program(spec), mode="0755", tag="program"),
        systemd.scheduled_lines(UNIT, "Update the Debian mirrors (airgap-infra)", UPDATE_PROGRAM, spec.schedule),
    ]
    return "\n".join(lines)


def update_body() -> str:
    """Update step: run the update program now; its stdout is every repository's report."""
    return UPDATE_PROGRAM


def uninstall_body(spec: AptMirrorSpec, site_name: str, *, purge: bool) -> str:
    lines = [
        systemd.remove_scheduled_lines(UNIT),
        f"rm -f {q(UPDATE_PROGRAM)}",
        f"rm -f /etc/nginx/sites-enabled/{site_name}.conf",
        "systemctl reload nginx >/dev/null 2>&1 || true",
    ]
    if purge:
        lines.append(f"rm -rf --one-file-system {q(spec.root)} {q(CONFIG_DIR)}")
    else:
        lines.append(f"echo {q(f'apt mirror removed; packages and snapshots kept in {spec.root}')} >&2")
    return "\n".join(lines)
