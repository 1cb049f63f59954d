# shellcheck shell=bash
# The RPM mirror served by Apache httpd (`server: httpd`) in a step (airgap-infra), after
# shell/prelude.sh: Debian's apache2 layout, or httpd's conf.d.

# NAME TLS (yes or no), the site's text on stdin: install the site, check the whole configuration,
# then start httpd, or reload it if the site's files (change tag site-NAME) changed.
airgap_httpd_site() {
  local name=$1 tls=$2 site conf ctl service
  site=$(mktemp "$AIRGAP_WORK/site.XXXXXX")
  cat > "$site"
  if command -v apache2ctl >/dev/null 2>&1; then
    conf=/etc/apache2/sites-enabled/$name.conf ctl=apache2ctl service=apache2
    if [ -L /etc/apache2/sites-enabled/000-default.conf ]; then rm -f /etc/apache2/sites-enabled/000-default.conf; fi
    # Listen lines live in each site, on the host's own address; Debian's `Listen 80` on every
    # address goes (kept in ports.conf.airgap-saved, restored when the mirror is removed).
    if [ ! -f /etc/apache2/ports.conf.airgap-saved ]; then
      cp -p /etc/apache2/ports.conf /etc/apache2/ports.conf.airgap-saved
    fi
    if [ -s /etc/apache2/ports.conf ]; then : > /etc/apache2/ports.conf; fi
    if [ "$tls" = yes ]; then a2enmod -q ssl >/dev/null; fi
  else
    conf=/etc/httpd/conf.d/$name.conf ctl=apachectl service=httpd
  fi
  airgap_install_file "$conf" 0644 root:root "site-$name" < "$site"
  "$ctl" -t
  airgap_keep_active "$service"
  systemctl enable "$service" >/dev/null 2>&1 || true
  if ! systemctl is-active "$service" >/dev/null 2>&1; then
    systemctl start "$service"
  elif airgap_changed "site-$name"; then
    systemctl reload "$service"
  fi
}
