# shellcheck shell=bash
# Trivy's databases where Harbor's Trivy adapter reads them (airgap-infra), after shell/prelude.sh:
# trivy_db.py, written to the step's private work directory, so that stdin stays free for the
# registry's credentials.

cat > "$AIRGAP_WORK/harbor_trivy_db.py" <<'PY'
#embed harbor/trivy_db.py
PY

HARBOR_TRIVY_AUTH=""

airgap_harbor_trivy_db_login() {  # the private registry's auth file (skopeo's format) is the next stdin secret
  command -v python3 >/dev/null 2>&1 \
    || { echo "harbor: python3 is needed on $(hostname) to lay out Trivy's databases" >&2; exit 1; }
  airgap_secret_tmp HARBOR_TRIVY_AUTH
}

airgap_harbor_trivy_db() {  # ARGS...: one database, as trivy_db.py takes them (the auth file is added)
  python3 -I "$AIRGAP_WORK/harbor_trivy_db.py" --auth "$HARBOR_TRIVY_AUTH" "$@"
}
