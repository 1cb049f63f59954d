#!/bin/sh
# Reads from a host over SSH, on the admin machine (airgap-infra): the OpenSSH client with the
# host keys pinned, through a bastion if any. The private key arrives on stdin and lives in a
# private temporary directory for the length of the command.
# Set before this text: KNOWN_HOSTS (known_hosts lines), TARGET (user@address), PORT, COMMAND (what
# runs there), BASTION (user@address; empty: none) and BASTION_PORT.
: "${KNOWN_HOSTS:?}" "${TARGET:?}" "${PORT:?}" "${COMMAND:?}" "${BASTION=}" "${BASTION_PORT:=22}"
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
umask 077
cat > "$dir/key"
printf '%s\n' "$KNOWN_HOSTS" > "$dir/known_hosts"
set -- -F /dev/null -i "$dir/key" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
  -o UserKnownHostsFile="$dir/known_hosts" -o ConnectTimeout=15
if [ -n "$BASTION" ]; then
  # ssh hands ProxyCommand to a shell: the options are fixed words, $dir is mktemp's and the port a
  # number; the bastion's user@address goes in single-quoted.
  bastion=$(printf '%s' "$BASTION" | sed "s/'/'\\\\''/g")
  set -- "$@" -o "ProxyCommand=ssh $* -p $BASTION_PORT -W %h:%p '$bastion'"
fi
# Not `exec`: the EXIT trap must run, so the key does not outlive the command.
ssh "$@" -p "$PORT" "$TARGET" "$COMMAND"
