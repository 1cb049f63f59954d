# shellcheck shell=bash
# Removing the RPM mirror's httpd site in a step (airgap-infra): a switch to nginx, or removal.

airgap_httpd_site_remove() {  # NAME: remove our httpd site if there is one
  local conf
  for conf in "/etc/apache2/sites-enabled/$1.conf" "/etc/httpd/conf.d/$1.conf"; do
    if [ -f "$conf" ]; then
      rm -f "$conf"
      if [ -f /etc/apache2/ports.conf.airgap-saved ]; then
        mv -f /etc/apache2/ports.conf.airgap-saved /etc/apache2/ports.conf
      fi
      if ! command -v apache2ctl >/dev/null 2>&1; then
        systemctl reload httpd >/dev/null 2>&1 || true
      elif [ -z "$(ls -A /etc/apache2/sites-enabled)" ]; then
        systemctl disable --now apache2 >/dev/null 2>&1 || true   # it served only the mirror
      else
        systemctl reload apache2 >/dev/null 2>&1 || true
      fi
    fi
  done
}
