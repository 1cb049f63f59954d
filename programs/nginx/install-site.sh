# shellcheck shell=bash
# An nginx site in a step (airgap-infra), after shell/prelude.sh: airgap_nginx_prepare, then the
# site's files written with the change tag site-<name>, then airgap_nginx_apply site-<name>.

airgap_nginx_prepare() {  # nginx installed; Debian's default site (on :80 of every address) disabled
  if ! command -v nginx >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx
  fi
  # The link goes, the file stays.
  if [ -L /etc/nginx/sites-enabled/default ]; then
    rm -f /etc/nginx/sites-enabled/default
    NGINX_CHANGED=yes
  fi
}

airgap_nginx_apply() {  # TAG: check the whole configuration, then start nginx, or reload it if TAG changed
  nginx -t -q
  airgap_keep_active nginx
  systemctl enable nginx >/dev/null 2>&1 || true
  if ! systemctl is-active nginx >/dev/null 2>&1; then
    systemctl start nginx
  elif airgap_changed "$1" || [ "${NGINX_CHANGED:-}" = yes ]; then
    systemctl reload nginx
  fi
}
