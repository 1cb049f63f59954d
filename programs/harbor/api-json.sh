# shellcheck shell=bash
# The JSON of Harbor's API in a step (airgap-infra), after shell/prelude.sh: api_json.py, written to
# the step's private work directory, so that stdin stays free for the JSON it reads.

cat > "$AIRGAP_WORK/harbor_api_json.py" <<'PY'
#embed harbor/api_json.py
PY

airgap_harbor_json() {  # COMMAND ARGS...: see api_json.py
  python3 "$AIRGAP_WORK/harbor_api_json.py" "$@"
}
