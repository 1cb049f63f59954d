# shellcheck shell=bash
# The Debian mirror's install step (airgap-infra), after shell/prelude.sh: its tools, the upstreams'
# keyrings and the stack's signing key.

airgap_apt_mirror_tools() {  # METHOD (aptly or debmirror): install the mirror's packages when a tool is missing
  local tool
  for tool in "$1" gpg nginx python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" gnupg nginx python3
      return
    fi
  done
}

airgap_apt_mirror_keyring() {  # ARMORED KEYRING TAG: the binary keyring aptly and debmirror verify with
  if airgap_changed "$3" || [ ! -s "$2" ]; then
    gpg --batch --dearmor < "$1" > "$2.new"
    mv -f "$2.new" "$2"
  fi
}

# GNUPGHOME PUBLIC: import the stack's signing key (the next stdin secret) into the mirror's own
# GNUPGHOME, and publish its public half at PUBLIC for clients.
airgap_apt_mirror_signing_key() {
  local home=$1 public=$2 signing_key fingerprint
  install -d -m 0700 "$home"
  airgap_secret_tmp signing_key
  fingerprint=$(GNUPGHOME=$home gpg --batch --with-colons --import-options show-only --import < "$signing_key" \
    | awk -F: '/^fpr/ {print $10; exit}')
  if [ -z "$fingerprint" ]; then echo "apt mirror: the signing key secret holds no OpenPGP key" >&2; exit 1; fi
  if ! GNUPGHOME=$home gpg --batch --list-secret-keys "$fingerprint" >/dev/null 2>&1; then
    GNUPGHOME=$home gpg --batch --import < "$signing_key"
  fi
  install -d -m 0755 "$(dirname "$public")"
  GNUPGHOME=$home gpg --batch --armor --export "$fingerprint" | airgap_install_file "$public" 0644 root:root signing-key
}

# CONFIG_KEYS KEYRINGS NAME...: the upstream keys (armored, CONFIG_KEYS/NAME.asc) and keyrings
# (KEYRINGS/NAME.gpg) of repositories not among NAME... removed.
airgap_apt_mirror_prune_keys() {
  local config_keys=$1 keyrings=$2 file name
  shift 2
  for file in "$config_keys"/*.asc "$keyrings"/*.gpg; do
    [ -e "$file" ] || continue
    name=$(basename "$file"); name=${name%.*}
    if airgap_among "$name" "$@"; then continue; fi
    rm -f "$file"
  done
}
