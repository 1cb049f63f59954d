# shellcheck shell=bash
# The registry as Debian's docker-registry under a systemd unit of ours (runtime package), in its
# install step (airgap-infra), after shell/prelude.sh.

airgap_registry_package() {  # PACKAGE_UNIT: docker-registry installed; the package's own unit stopped for good
  if ! command -v docker-registry >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry
  fi
  # It listens on :5000 of every address; ours replaces it.
  if systemctl is-enabled "$1" >/dev/null 2>&1 || systemctl is-active "$1" >/dev/null 2>&1; then
    systemctl disable --now "$1"
  fi
}

# UNIT: enable the registry's unit and start it; restart it only when a file it reads changed
# (change tags config, tls, auth, unit).
airgap_registry_unit_start() {
  if airgap_changed unit; then systemctl daemon-reload; fi
  airgap_keep_active "$1"
  systemctl enable "$1" >/dev/null 2>&1 || true
  if airgap_changed config tls auth unit && systemctl is-active "$1" >/dev/null 2>&1; then
    systemctl restart "$1"
  else
    systemctl start "$1"
  fi
}
