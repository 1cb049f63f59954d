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

# DOCKER_CERTS REGISTRY DAEMON_JSON: the node no longer uses REGISTRY through Docker. When it did
# (REGISTRY's certs.d entry is there), the entry goes, REGISTRY leaves insecure-registries and a
# daemon.json left with nothing in it goes; Docker reloads only when daemon.json changed.
airgap_docker_forget() {
  [ -e "$1/$2" ] || return 0
  rm -rf "${1:?}/$2"
  if [ "$(airgap_merge_daemon_json "$3" "$2" gone)" = changed ]; then
    if systemctl is-active docker >/dev/null 2>&1; then systemctl reload docker; fi
  fi
}
