#!/bin/sh
# Reads from a host over SSH, on the admin machine (airgap-infra): the OpenSSH client with the
# host keys pinned, through a bastion if any. The private key arrives on stdin and lives in a
# private temporary directory for the length of the command.
# Set before this text: KNOWN_HOSTS (known_hosts lines), CLIENT (the client's arguments, plain
# words naming ./key and ./known_hosts), TARGET (user@address), PORT, COMMAND (what runs there) and
# PROXY_COMMAND (how to jump through the bastion, quoted for the shell ssh starts; empty: none).
: "${KNOWN_HOSTS:?}" "${CLIENT:?}" "${TARGET:?}" "${PORT:?}" "${COMMAND:?}" "${PROXY_COMMAND=}"
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
umask 077
cat > "$dir/key"
printf '%s\n' "$KNOWN_HOSTS" > "$dir/known_hosts"
cd "$dir"  # CLIENT and PROXY_COMMAND name the key and the pinned hosts relative to it
# shellcheck disable=SC2086  # CLIENT is plain words, split on purpose
set -- $CLIENT
if [ -n "$PROXY_COMMAND" ]; then
  set -- "$@" -o "ProxyCommand=$PROXY_COMMAND"
fi
# Not `exec`: the EXIT trap must run, so the key does not outlive the command.
ssh "$@" -p "$PORT" "$TARGET" "$COMMAND"
