# shellcheck shell=bash
# An nginx site in a step (airgap-infra), after shell/prelude.sh: airgap_nginx_prepare, then the
# site's files written with the change tag site-<name>, then airgap_nginx_apply site-<name>.

# BEFORE: nginx installed; Debian's default site (on :80 of every address) disabled. Before the
# first site of the stack changes anything, how nginx was is written to BEFORE (once), so that
# removing the last site puts it back (remove-site.sh).
airgap_nginx_prepare() {
  if [ ! -f "$1" ]; then
    airgap_nginx_record_before "$1"
  fi
  if ! command -v nginx >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx
  fi
  # The link goes, the file stays.
  if [ -L /etc/nginx/sites-enabled/default ]; then
    rm -f /etc/nginx/sites-enabled/default
    NGINX_CHANGED=yes
  fi
}

airgap_nginx_record_before() {  # BEFORE: whether nginx had its default site, was enabled, was running
  local site=no enabled=no active=no
  if command -v nginx >/dev/null 2>&1; then
    if [ -L /etc/nginx/sites-enabled/default ]; then site=yes; fi
    if systemctl is-enabled nginx >/dev/null 2>&1; then enabled=yes; fi
    if systemctl is-active nginx >/dev/null 2>&1; then active=yes; fi
  fi
  install -d -m 0755 "$(dirname "$1")"
  printf 'default_site=%s\nenabled=%s\nactive=%s\n' "$site" "$enabled" "$active" > "$1.new"
  mv -f "$1.new" "$1"
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
