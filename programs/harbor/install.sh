# shellcheck shell=bash
# Harbor from its offline installer, in its install step (airgap-infra), after shell/prelude.sh.

airgap_harbor_installer() {  # ARCHIVE SHA256: the host has the tools; the installer is the one the stack names
  local tool
  for tool in docker tar sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || { echo "harbor: $tool is needed on the host" >&2; exit 1; }
  done
  echo "$2  $1" | sha256sum -c --quiet - \
    || { echo 'harbor: the installer archive does not match its sha256; refusing to install' >&2; exit 1; }
}

airgap_harbor_unpack() {  # ARCHIVE INSTALL_DIR: the installer unpacked into INSTALL_DIR, once
  local tmp
  if [ ! -x "$2/install.sh" ]; then
    tmp=$(mktemp -d "$(dirname "$2")/.extract.XXXXXX")
    tar -xzf "$1" -C "$tmp"
    mv "$tmp"/harbor "$2" && rmdir "$tmp"
  fi
}

# HARBOR_YML INSTALL_DIR SCANNER FILE...: install.sh (docker compose down/up of every Harbor
# container) runs only when what it installs changed: the version, harbor.yml, SCANNER (the flag
# --with-trivy, or empty) or a FILE prepare reads (certificate, key, the CA it trusts).
airgap_harbor_install() {
  local dir=$2 scanner=$3 want
  install -m 0600 "$1" "$dir/harbor.yml"
  shift 3
  want=$({ cat "$dir/harbor.yml" "$@"; printf '%s' "$scanner"; } | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$dir/.airgap-installed" 2>/dev/null)" != "$want" ]; then
    (cd "$dir" && ./install.sh ${scanner:+"$scanner"}) >&2
    echo "$want" > "$dir/.airgap-installed"
  else
    echo 'harbor: installed and unchanged; install.sh not run' >&2
  fi
}
