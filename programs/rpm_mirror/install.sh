# shellcheck shell=bash
# The RPM mirror's install step (airgap-infra), after shell/prelude.sh.

airgap_rpm_mirror_tools() {  # install dnf with reposync, createrepo_c, rpm, gpg and python3 when one is missing
  local tool missing=no
  for tool in dnf createrepo_c gpg rpm python3; do
    command -v "$tool" >/dev/null 2>&1 || missing=yes
  done
  if [ "$missing" = no ] && ! dnf reposync --help >/dev/null 2>&1; then missing=yes; fi
  if [ "$missing" = yes ]; then
    if command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dnf dnf-plugins-core createrepo-c rpm gnupg python3
    else
      dnf install -y dnf-plugins-core createrepo_c
    fi
  fi
}

airgap_rpm_mirror_prune_keys() {  # KEY_DIR ID...: the keys of repositories not among ID... removed
  local key_dir=$1 key id
  shift
  for key in "$key_dir"/*.asc; do
    [ -e "$key" ] || continue
    id=$(basename "$key" .asc)
    if airgap_among "$id" "$@"; then continue; fi
    rm -f "$key"
  done
}
