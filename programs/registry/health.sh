# shellcheck shell=bash
# The registry's health check in its install step (airgap-infra), after shell/prelude.sh.

# URL CA RESOLVE: fail unless URL (the registry's /v2/) answers over TLS, checked against CA and
# reached at RESOLVE (host:port:address): 401 without credentials, then 200 with the next stdin
# secret, a curl config line `user = "name:password"`.
airgap_registry_health() {
  local url=$1 auth code=000
  local curl=(curl -sS --max-time 5 --cacert "$2" --resolve "$3")
  airgap_secret_tmp auth
  for _ in $(seq 60); do
    code=$("${curl[@]}" -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)
    [ "$code" = 401 ] && break
    sleep 1
  done
  if [ "$code" != 401 ]; then
    echo "registry health: $url answered $code without credentials; expected 401 over TLS" >&2
    exit 1
  fi
  if ! "${curl[@]}" -f -o /dev/null -K "$auth" "$url"; then
    echo "registry health: $url refused the first user's credentials" >&2
    exit 1
  fi
  echo "registry healthy at $url" >&2
}
