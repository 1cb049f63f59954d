airgap_merge_daemon_json() {
python3 - "$@" <<'PY'
#embed registry_clients/merge_daemon_json.py
PY
}
