#!/bin/sh
# Confirms a host's new egress rules from the admin machine (airgap-infra): the lockdown step has
# loaded them with a rollback armed; a fresh SSH connection here, through the new rules, confirms
# them. A connection that does not get through leaves the rollback to happen by itself: this waits
# for it, reads the host's status through the restored rules, and fails saying why.
# Set before this text: HOST (its name in the stack), ADDRESS, PORT, LOGIN, KNOWN_HOSTS (known_hosts
# lines), BASTION_ADDRESS (empty: none), BASTION_PORT, BASTION_LOGIN, RULES (which rules: their hash), ARMED (what
# the step printed: a new arming makes this run again), ROLLBACK (seconds), CONNECT_TIMEOUT, SUDO
# ("sudo -n " or empty) and SSH_FROM (where the rules take SSH from, for the message).
# The SSH private key arrives on stdin as one base64 line.
: "${HOST:?}" "${ADDRESS:?}" "${PORT:?}" "${LOGIN:?}" "${KNOWN_HOSTS:?}" "${RULES:?}" "${ROLLBACK:?}"
: "${BASTION_ADDRESS=}" "${BASTION_PORT:=22}" "${BASTION_LOGIN=}" "${ARMED=}" "${CONNECT_TIMEOUT:=10}" "${SUDO=}"
: "${SSH_FROM=anywhere}"
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
umask 077
if ! IFS= read -r line || ! printf '%s' "$line" | base64 -d > "$dir/key"; then
  echo "airgap: $HOST: no SSH key on stdin" >&2
  exit 1
fi
printf '%s\n' "$KNOWN_HOSTS" > "$dir/known_hosts"
# Every connection is new (no ControlMaster): each one has to pass the host's rules on its own.
{
  printf 'Host target\n  HostName %s\n  Port %s\n  User %s\n' "$ADDRESS" "$PORT" "$LOGIN"
  if [ -n "$BASTION_ADDRESS" ]; then
    printf '  ProxyCommand ssh -F %s -W %%h:%%p bastion\n' "$dir/config"
    printf 'Host bastion\n  HostName %s\n  Port %s\n  User %s\n' "$BASTION_ADDRESS" "$BASTION_PORT" "$BASTION_LOGIN"
  fi
  printf 'Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n' "$dir/key"
  printf '  StrictHostKeyChecking yes\n  UserKnownHostsFile %s\n  GlobalKnownHostsFile /dev/null\n' "$dir/known_hosts"
  printf '  ConnectTimeout %s\n  ConnectionAttempts 1\n  ControlMaster no\n  ControlPath none\n' "$CONNECT_TIMEOUT"
  printf '  LogLevel ERROR\n'
} > "$dir/config"

firewall() {  # ARGS...: airgap-firewall on the host, over a new SSH connection; 255: no connection
  ssh -F "$dir/config" target "${SUDO}/usr/local/sbin/airgap-firewall $*"
}

echo "airgap: $HOST: confirming rules $RULES ($ARMED) over a fresh SSH connection" >&2
status=0
firewall confirm "$RULES" || status=$?
if [ "$status" -eq 3 ]; then
  # Nothing armed: an earlier attempt was rolled back. Arm the same rules again, confirm afresh.
  echo "airgap: $HOST: rules $RULES are not armed; loading them again" >&2
  status=0
  firewall apply "$RULES" "$ROLLBACK" >&2 || status=$?
  if [ "$status" -eq 0 ]; then
    firewall confirm "$RULES" || status=$?
  fi
fi
if [ "$status" -eq 0 ]; then
  exit 0
fi
if [ "$status" -ne 255 ]; then
  echo "airgap: $HOST: confirming rules $RULES failed (exit status $status)" >&2
  exit 1
fi
echo "airgap: $HOST: a fresh SSH connection from this machine did not get through the new rules;" \
  "the host restores its previous rules by itself within ${ROLLBACK}s" >&2
sleep "$ROLLBACK"
tries=0
now=""
while [ "$tries" -lt 6 ]; do
  if now=$(firewall status); then break; fi
  now=""
  tries=$((tries + 1))
  sleep 5
done
if [ -z "$now" ]; then
  echo "airgap: $HOST: still unreachable over SSH after the rollback time; look at its console" >&2
  exit 1
fi
echo "airgap: $HOST: the new egress rules would cut SSH from the admin machine (they take SSH only from" \
  "$SSH_FROM: network.adminAddresses), so they were rolled back; the host says: $now." \
  "Fix the settings and run up again." >&2
exit 1
