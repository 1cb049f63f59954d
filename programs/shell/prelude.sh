#!/bin/bash
# The start of every step (airgap-infra): strict mode, a private work directory, and the functions
# steps call. CHANGED collects the tags of files that changed on this run, so a step restarts a
# service only when something it reads was replaced. MANAGED and UNITS collect what the step keeps
# (files it wrote, units it keeps running); its last line records them in the step's manifest, which
# `drift/check.py` compares with the host later. The step's name is its first argument.
set -euo pipefail
umask 022
CHANGED=""
AIRGAP_STEP_NAME=${1:-}
AIRGAP_MANIFESTS=/var/lib/airgap/manifests
MANAGED=()
UNITS=()
AIRGAP_WORK=$(mktemp -d /tmp/airgap-work.XXXXXX)  # private (0700): staged files, secrets
AIRGAP_TMP=("$AIRGAP_WORK")
trap 'rm -rf "${AIRGAP_TMP[@]}"' EXIT
airgap_install_file() {  # PATH MODE OWNER TAG; content on stdin
  # Staged outside the target directory and compared first, so an unchanged file leaves the
  # file and its directory untouched (not even an mtime).
  local path=$1 mode=$2 owner=$3 tag=$4 staged
  MANAGED+=("$path")
  staged=$(mktemp "$AIRGAP_WORK/file.XXXXXX")
  cat > "$staged"
  chmod "$mode" "$staged"; chown "$owner" "$staged"
  if [ -f "$path" ] && cmp -s "$staged" "$path" \
     && [ "$(stat -c '%a %U:%G' "$path")" = "$(stat -c '%a %U:%G' "$staged")" ]; then
    return 0
  fi
  install -d -m 0755 "$(dirname "$path")"
  cp -p "$staged" "$path.airgap-new"
  mv -f "$path.airgap-new" "$path"
  CHANGED="$CHANGED $tag"
}
airgap_secret_file() {  # PATH MODE OWNER TAG; next base64 line of the step's stdin
  local line decoded
  if ! IFS= read -r line; then
    echo "airgap: no secret on stdin for $1" >&2; exit 1
  fi
  decoded=$(mktemp "$AIRGAP_WORK/secret.XXXXXX")  # mktemp creates it 0600
  if ! printf '%s' "$line" | base64 -d > "$decoded"; then
    echo "airgap: secret for $1 is not base64" >&2; exit 1
  fi
  airgap_install_file "$@" < "$decoded"  # a redirect, not a pipe: CHANGED must survive
}
airgap_secret_tmp() {  # VAR: next stdin secret into a private temp file (removed on exit); VAR=its path
  local line tmp
  if ! IFS= read -r line; then
    echo "airgap: no secret on stdin for $1" >&2; exit 1
  fi
  tmp=$(mktemp "$AIRGAP_WORK/secret.XXXXXX")
  if ! printf '%s' "$line" | base64 -d > "$tmp"; then
    echo "airgap: secret for $1 is not base64" >&2; exit 1
  fi
  printf -v "$1" '%s' "$tmp"
}
airgap_among() {  # WORD NAME...: true when WORD is one of NAME... (what the stack still lists)
  local word=$1 name
  shift
  for name in "$@"; do
    if [ "$name" = "$word" ]; then return 0; fi
  done
  return 1
}
airgap_changed() {  # TAG...: true when any of these tags changed on this run
  local tag
  for tag in "$@"; do
    case " $CHANGED " in *" $tag "*) return 0 ;; esac
  done
  return 1
}
airgap_manage() {  # PATH...: files this step keeps that it wrote by other means than airgap_install_file
  MANAGED+=("$@")
}
airgap_keep_active() {  # UNIT...: units this step keeps running
  UNITS+=("$@")
}
airgap_manifest() {  # the step's manifest (tab-separated), written at its end; none if it keeps nothing
  [ -n "$AIRGAP_STEP_NAME" ] || return 0
  local manifest="$AIRGAP_MANIFESTS/$AIRGAP_STEP_NAME" staged path unit
  if [ "${#MANAGED[@]}" -eq 0 ] && [ "${#UNITS[@]}" -eq 0 ]; then
    rm -f "$manifest"
    return 0
  fi
  install -d -m 0700 "$AIRGAP_MANIFESTS"
  staged=$(mktemp "$AIRGAP_MANIFESTS/.new.XXXXXX")
  for path in "${MANAGED[@]}"; do
    [ -f "$path" ] || continue
    printf 'file\t%s\t%s\t%s\n' "$path" "$(sha256sum "$path" | cut -d' ' -f1)" \
      "$(stat --printf '%a\t%U:%G\t%s\t%Y' "$path")" >> "$staged"
  done
  for unit in "${UNITS[@]}"; do printf 'unit\t%s\n' "$unit" >> "$staged"; done
  sort -u -o "$staged" "$staged"
  mv -f "$staged" "$manifest"
}
