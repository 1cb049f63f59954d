#!/bin/sh
# STORAGE: mends what a kill or a power loss left in the registry's storage, before it starts
# (airgap-infra); what it checks, and why, says the Python below (registry/repair_storage.py).
set -eu
cd /  # the caller's directory may be closed to the registry's user
exec python3 -I -S - "$1" <<'PY'
#embed registry/repair_storage.py
PY
