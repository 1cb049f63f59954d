# shellcheck shell=bash
# Harbor's health check (airgap-infra), after shell/prelude.sh and harbor/api-json.sh.

airgap_harbor_health() {  # URL CA ATTEMPTS: wait until URL (/api/v2.0/health) says Harbor and every component are healthy
  local status=''
  for _ in $(seq "$3"); do
    status=$(curl -fsS --max-time 5 --cacert "$2" "$1" 2>/dev/null | airgap_harbor_json health || true)
    [ "$status" = healthy ] && break
    sleep 2
  done
  [ "$status" = healthy ] || { echo "harbor: $1 is not healthy" >&2; exit 1; }
}
