# shellcheck shell=bash
# A node's registry endpoint (airgap-infra), after shell/prelude.sh: what an earlier endpoint left.

# RECORD ENDPOINT DOCKER_CERTS CONTAINERD_CERTS DAEMON_JSON: when RECORD names another endpoint than
# ENDPOINT (the registry moved to another port or name), its certs.d entries go and it leaves
# daemon.json; the caller then records ENDPOINT in RECORD.
airgap_registry_clients_moved() {
  local previous
  previous=$(cat "$1" 2>/dev/null || true)
  if [ -z "$previous" ] || [ "$previous" = "$2" ]; then
    return 0
  fi
  case "$previous" in */*|.|..) return 0 ;; esac   # a name inside certs.d, nothing else
  rm -rf "${4:?}/$previous"
  airgap_docker_forget "$3" "$previous" "$5"
}
