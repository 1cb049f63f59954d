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
