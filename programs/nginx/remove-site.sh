# shellcheck shell=bash
# Removing an nginx site in a step (airgap-infra), after shell/prelude.sh.

airgap_nginx_remove() {  # CONF: remove a site's file; reload nginx only if the site was there
  if [ -f "$1" ]; then
    rm -f "$1"
    if nginx -t -q 2>/dev/null; then systemctl reload nginx >/dev/null 2>&1 || true; fi
  fi
}
