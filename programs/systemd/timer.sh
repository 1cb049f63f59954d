# shellcheck shell=bash
# Scheduled updates in a step (airgap-infra), after shell/prelude.sh: once <unit>.service and
# <unit>.timer are written, airgap_timer_start enables the timer and starts it.

airgap_timer_start() {  # TAG TIMER: reload units if TAG changed, enable TIMER, start it where systemd runs
  if airgap_changed "$1"; then systemctl daemon-reload; fi
  systemctl enable "$2" >/dev/null 2>&1 || true
  if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    airgap_keep_active "$2"
    systemctl start "$2"
  else  # other service managers may not run timers: they are told so
    echo "note: PID 1 is not systemd; $2 is enabled, and runs where systemd does" >&2
  fi
}
