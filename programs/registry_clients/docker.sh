# shellcheck shell=bash
# Docker on a client node trusts the private registry (airgap-infra), after shell/prelude.sh.

airgap_merge_daemon_json() {  # DAEMON_JSON REGISTRY INSECURE: prints `changed` when DAEMON_JSON was rewritten
  python3 - "$@" <<'PY'
#embed registry_clients/merge_daemon_json.py
PY
}

# DAEMON_JSON REGISTRY INSECURE (yes or no): REGISTRY in daemon.json's insecure-registries only
# when INSECURE, keys the stack does not own kept; Docker reloads (SIGHUP) only when it changed.
airgap_docker_daemon_json() {
  airgap_manage "$1"
  if [ "$(airgap_merge_daemon_json "$@")" = changed ]; then
    if systemctl is-active docker >/dev/null 2>&1; then systemctl reload docker; fi
  fi
}
