# shellcheck shell=bash
# containerd on a client node reads registry hosts from a drop-in directory (airgap-infra), after
# shell/prelude.sh.

# CONFIG DROPIN_DIR TAG: CONFIG (containerd's config.toml) imports DROPIN_DIR/*.toml, added once at
# the top (imports must precede tables); TAG is marked changed when CONFIG was.
airgap_containerd_imports() {
  local config=$1 glob="$2/*.toml"
  airgap_manage "$config"
  if [ -f "$config" ] && grep -qF "$glob" "$config"; then
    return 0
  fi
  if [ ! -f "$config" ]; then
    printf 'version = 2\nimports = ["%s"]\n' "$glob" > "$config"
  elif grep -q '^imports *=' "$config"; then
    sed -i "s#^imports *= *\\[#imports = [\"$glob\", #" "$config"
  else
    sed -i "1i imports = [\"$glob\"]" "$config"
  fi
  CHANGED="$CHANGED $3"
}

# CONFIG DROPIN_DIR TAG: the import of DROPIN_DIR/*.toml taken out of CONFIG again (a CONFIG that
# held nothing else goes); TAG is marked changed when CONFIG was.
airgap_containerd_unimport() {
  local config=$1 glob="$2/*.toml" pattern
  if [ ! -f "$config" ] || ! grep -qF "$glob" "$config"; then
    return 0
  fi
  if [ "$(cat "$config")" = "$(printf 'version = 2\nimports = ["%s"]' "$glob")" ]; then
    rm -f "$config"   # written by airgap_containerd_imports, with nothing else in it
  else
    pattern=$(printf '"%s"' "$glob" | sed 's/[].[*^$\\#]/\\&/g')
    sed -i -e "s#$pattern, ##" -e "\\#^imports = \\[$pattern\\]\$#d" "$config"
  fi
  CHANGED="$CHANGED $3"
}

# CERTS ENDPOINT DROPIN CONFIG TAG UPSTREAM...: the node no longer uses the registry through
# containerd. When it did (DROPIN is there), the registry's entry in CERTS, each UPSTREAM's
# hosts.toml, DROPIN and its import go; TAG is marked changed when CONFIG was.
airgap_containerd_forget() {
  local certs=$1 endpoint=$2 dropin=$3 config=$4 tag=$5 upstream
  shift 5
  [ -e "$dropin" ] || return 0
  rm -rf "${certs:?}/$endpoint"
  for upstream in "$@"; do
    rm -f "$certs/$upstream/hosts.toml"
  done
  rm -f "$dropin"
  airgap_containerd_unimport "$config" "$(dirname "$dropin")" "$tag"
}
