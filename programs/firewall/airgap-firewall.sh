#!/bin/bash
# This host's egress lockdown (airgap-infra), applied like a "commit confirmed": installed as
# /usr/local/sbin/airgap-firewall by the network lockdown step. It only ever replaces, or deletes,
# its own nftables table (inet airgap): Docker's, kube-proxy's and anyone else's stay untouched.
#
#   airgap-firewall apply TOKEN SECONDS   load the rules TOKEN names (rules.nft, with the names in
#                                         `names` resolved now); the last confirmed rules come back
#                                         by themselves after SECONDS unless `confirm TOKEN` runs first
#   airgap-firewall confirm TOKEN         keep them; run over a fresh SSH connection from the admin
#                                         machine, which proves the new rules still let the admin in
#   airgap-firewall status                one line: confirmed|armed|rolled-back|none TOKEN ARMING TIME why
#   airgap-firewall rollback TOKEN ARMING what the rollback timer runs: the confirmed rules come back if
#                                         that arming is still waiting for its confirmation
#   airgap-firewall remove                the table, the units and the files of the lockdown gone
#
# Files: $CONF/rules.nft and $CONF/names (from the stack), $CONF/active.nft (the confirmed rules the
# boot unit loads), $STATE/commit (the status line) and $STATE/candidate-TOKEN.nft (what was loaded).
set -euo pipefail
umask 022
CONF=${AIRGAP_FIREWALL_CONF:-/etc/airgap/firewall}
STATE=${AIRGAP_FIREWALL_STATE:-/var/lib/airgap/network}
SELF=$(readlink -f "$0")
UNITS=(airgap-firewall.service airgap-network-audit.timer airgap-network-audit.service)

say() { printf 'airgap-firewall: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
now() { date -u +%Y-%m-%dT%H:%M:%SZ; }

loaded() { nft list table inet airgap >/dev/null 2>&1; }

status_line() {  # the current status: STATE TOKEN ARMING TIME WHY
  cat "$STATE/commit" 2>/dev/null || echo "none - - - no rules applied yet"
}

set_status() {  # STATE TOKEN ARMING WHY...
  printf '%s %s %s %s %s\n' "$1" "$2" "$3" "$(now)" "${*:4}" > "$STATE/commit.new"
  mv -f "$STATE/commit.new" "$STATE/commit"
}

lock() {  # one change at a time: apply, confirm, rollback and remove
  install -d -m 0700 "$STATE"
  exec 9>"$STATE/lock"
  flock 9
}

token_here() {  # the token of the rules the stack last wrote here
  cat "$CONF/rules.nft" "$CONF/names" | sha256sum | cut -c1-16
}

resolved_elements() {  # `add element` lines for every name in $CONF/names, resolved on this host now
  local name protocol port label address family found
  while read -r name protocol port label; do
    case "$name" in '' | '#'*) continue ;; esac
    found=no
    for family in 4 6; do
      # ahostsv6 answers a name without IPv6 addresses with IPv4-mapped ones: those are not IPv6.
      for address in $(getent "ahostsv$family" "$name" | awk '{print $1}' | grep -v '^::ffff:' | sort -u); do
        printf '%s %s %s %s %s (%s)\n' "$family" "$address" "$protocol" "$port" "$label" "$name"
        found=yes
      done
    done
    [ "$found" = yes ] || die "$name does not resolve on this host, so the lockdown cannot allow it; fix the name or its DNS (network.dns)"
  done < "$CONF/names" |
    # Names of their own set (elements of one set may not overlap): one element per destination.
    awk '!seen[$1 " " $2 " " $3 " " $4]++ {
      comment = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ [^ ]+ /, "", comment)
      printf "add element inet airgap named_v%s { %s . %s . %s comment \"%s\" }\n", $1, $2, $3, $4, comment
    }'
}

restore_confirmed() {  # the last confirmed rules, or none of ours
  if [ -f "$CONF/active.nft" ]; then
    nft -f "$CONF/active.nft"
  elif loaded; then
    nft delete table inet airgap
  fi
}

arm_rollback() {  # TOKEN ARMING SECONDS: the confirmed rules come back after SECONDS unless confirmed
  if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && command -v systemd-run >/dev/null; then
    # A transient timer of the service manager outlives this SSH session whatever logind's
    # KillUserProcesses says.
    systemd-run --quiet --unit="airgap-firewall-rollback-$2" --on-active="${3}s" --timer-property=AccuracySec=1s \
      "$SELF" rollback "$1" "$2"
  else
    # Without the lock (fd 9): the confirmation must not wait for the rollback's sleep.
    setsid -f "$SELF" rollback-after "$1" "$2" "$3" </dev/null >>"$STATE/rollback.log" 2>&1 9>&-
  fi
}

stop_rollback() {  # the waiting rollback of ARMING, if any (it would find nothing to do anyway)
  local pid
  if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    systemctl stop "airgap-firewall-rollback-$1.timer" >/dev/null 2>&1 || true
  fi
  pid=$(cat "$STATE/rollback-$1.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && grep -qa "rollback-after" "/proc/$pid/cmdline" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/rollback-$1.pid"
}

cmd_apply() {  # TOKEN SECONDS
  local token=$1 seconds=$2 state current arming candidate
  command -v nft >/dev/null || die "nft is not installed; install Debian's nftables (from the stack's mirror) or opt this host out (network.optOut)"
  lock
  [ "$(token_here)" = "$token" ] || die "the rules here are not $token (a newer apply wrote others); run up again"
  read -r state current arming _ < <(status_line)
  if [ "$state" = confirmed ] && [ "$current" = "$token" ] && loaded; then
    echo "confirmed $token"
    return 0
  fi
  candidate="$STATE/candidate-$token.nft"
  { cat "$CONF/rules.nft"; resolved_elements; } > "$candidate.new"
  nft -c -f "$candidate.new" || die "nft refuses the rules $token; nothing was changed"
  mv -f "$candidate.new" "$candidate"
  [ "$state" != armed ] || stop_rollback "$arming"
  arming=$(date -u +%Y%m%dT%H%M%S)-$$
  # The rollback is armed before the rules load: whatever happens to this session, they come back.
  set_status armed "$token" "$arming" "loaded; the previous rules come back after ${seconds}s unless confirmed"
  if ! arm_rollback "$token" "$arming" "$seconds"; then
    set_status rolled-back "$token" "$arming" "the rollback could not be armed; the previous rules stay"
    die "could not arm the rollback of $token; nothing was loaded"
  fi
  if ! nft -f "$candidate"; then
    restore_confirmed
    set_status rolled-back "$token" "$arming" "nft could not load the rules; the previous rules stay"
    stop_rollback "$arming"
    die "nft could not load the rules $token; the previous rules stay"
  fi
  say "rules $token loaded; they stay only if \`airgap-firewall confirm $token\` runs within ${seconds}s"
  echo "armed $token $arming"
}

cmd_confirm() {  # TOKEN
  local token=$1 state current arming client=${SSH_CLIENT:-}
  lock
  read -r state current arming _ < <(status_line)
  if [ "$state" = confirmed ] && [ "$current" = "$token" ]; then
    echo "confirmed $token (already)"
    return 0
  fi
  if [ "$state" != armed ] || [ "$current" != "$token" ]; then
    say "nothing to confirm for $token: $(status_line)"
    exit 3
  fi
  cp -f "$STATE/candidate-$token.nft" "$CONF/active.nft.new"
  mv -f "$CONF/active.nft.new" "$CONF/active.nft"
  set_status confirmed "$token" "$arming" "over a fresh SSH connection from ${client%% *}"
  stop_rollback "$arming"
  find "$STATE" -maxdepth 1 -name 'candidate-*.nft' ! -name "candidate-$token.nft" -delete
  systemctl enable airgap-firewall.service >/dev/null 2>&1 || true  # loads active.nft at boot
  echo "confirmed $token"
}

cmd_rollback() {  # TOKEN ARMING
  local token=$1 arming=$2 state current armed
  lock
  read -r state current armed _ < <(status_line)
  if [ "$state" != armed ] || [ "$current" != "$token" ] || [ "$armed" != "$arming" ]; then
    return 0  # confirmed meanwhile, or armed again since
  fi
  restore_confirmed
  set_status rolled-back "$token" "$arming" \
    "not confirmed in time by a fresh SSH connection from the admin machine; the previous rules are back"
  say "rules $token rolled back: not confirmed in time"
}

cmd_rollback_after() {  # TOKEN ARMING SECONDS (detached, where no service manager keeps a timer)
  echo "$$" > "$STATE/rollback-$2.pid"
  sleep "$3"
  rm -f "$STATE/rollback-$2.pid"
  cmd_rollback "$1" "$2"
}

cmd_remove() {
  local state current arming
  lock
  read -r state current arming _ < <(status_line)
  [ "$state" != armed ] || stop_rollback "$arming"
  if loaded; then nft delete table inet airgap; fi
  systemctl disable --now "${UNITS[@]}" >/dev/null 2>&1 || true
  rm -f "${UNITS[@]/#//etc/systemd/system/}"
  rm -rf "$CONF"
  find "$STATE" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +
  say "lockdown removed: table inet airgap deleted, every other table left as it was"
}

case "${1:-}" in
  apply) cmd_apply "$2" "$3" ;;
  confirm) cmd_confirm "$2" ;;
  status) status_line ;;
  rollback) cmd_rollback "$2" "$3" ;;
  rollback-after) cmd_rollback_after "$2" "$3" "$4" ;;
  remove) cmd_remove ;;
  *) die "usage: airgap-firewall apply TOKEN SECONDS | confirm TOKEN | status | remove" ;;
esac
