#!/bin/sh
# The network audit of one host (airgap-infra), sent as the command of an SSH read at every run:
# the probes of this run go in as PROBES (JSON), the report comes back on stdout as one JSON line.
# Set before this text: PROBES, and SUDO (non-empty: run through `sudo -n`, as reading the drop
# counters needs root).
: "${PROBES:?}" "${SUDO=}"
set --
if [ -n "$SUDO" ]; then set -- sudo -n; fi
"$@" python3 - "$PROBES" <<'PY'
#embed firewall/network_audit.py
PY
