# shellcheck shell=bash
# Removing an nginx site in a step (airgap-infra), after shell/prelude.sh.

airgap_nginx_remove() {  # CONF BEFORE: remove a site's file; reload nginx only if the site was there
  if [ -f "$1" ]; then
    rm -f "$1"
    if nginx -t -q 2>/dev/null; then systemctl reload nginx >/dev/null 2>&1 || true; fi
  fi
  airgap_nginx_restore "$2"
}

# BEFORE: once no site of the stack is left (sites-enabled/airgap-*.conf), nginx as it was before the
# first one (install-site.sh wrote BEFORE): Debian's default site back, stopped and disabled if it
# was. Without BEFORE (sites installed by an older version), nginx is left as it is.
airgap_nginx_restore() {
  local conf key value default_site=no enabled=yes active=yes
  [ -f "$1" ] || return 0
  for conf in /etc/nginx/sites-enabled/airgap-*.conf; do
    if [ -e "$conf" ]; then return 0; fi
  done
  while IFS='=' read -r key value; do
    case "$key" in
      default_site) default_site=$value ;;
      enabled) enabled=$value ;;
      active) active=$value ;;
    esac
  done < "$1"
  if [ "$default_site" = yes ] && [ -e /etc/nginx/sites-available/default ] \
     && [ ! -e /etc/nginx/sites-enabled/default ]; then
    ln -s /etc/nginx/sites-available/default /etc/nginx/sites-enabled/default
  fi
  if [ "$enabled" = no ]; then systemctl disable nginx >/dev/null 2>&1 || true; fi
  if [ "$active" = no ]; then
    systemctl stop nginx >/dev/null 2>&1 || true
  elif nginx -t -q 2>/dev/null; then
    systemctl reload nginx >/dev/null 2>&1 || systemctl start nginx >/dev/null 2>&1 || true
  fi
  rm -f "$1"
}
