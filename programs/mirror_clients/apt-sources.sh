# shellcheck shell=bash
# A client's apt sources (airgap-infra), after shell/prelude.sh: the host's own sources moved into
# a folder apt does not read, and back.

airgap_apt_sources_aside() {  # MOVED: every source but ours moved into MOVED (again: nothing moves)
  local file
  install -d -m 0755 "$1"
  if [ -f /etc/apt/sources.list ] && [ -s /etc/apt/sources.list ]; then mv /etc/apt/sources.list "$1/sources.list"; fi
  for file in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -e "$file" ] || continue
    case "$(basename "$file")" in airgap-*) continue ;; esac
    mv "$file" "$1/"
  done
}

airgap_apt_sources_back() {  # MOVED: what airgap_apt_sources_aside moved, back in place
  local file
  if [ -f "$1/sources.list" ]; then mv "$1/sources.list" /etc/apt/sources.list; fi
  for file in "$1"/*; do
    if [ -e "$file" ]; then mv "$file" /etc/apt/sources.list.d/; fi
  done
  rmdir "$1" 2>/dev/null || true
}

airgap_apt_prune() {  # NAME...: our sources and keys removed, but those of the repositories NAME
  local file name
  for file in /etc/apt/sources.list.d/airgap-*.sources /etc/apt/keyrings/airgap-*.asc; do
    [ -e "$file" ] || continue
    name=$(basename "$file"); name=${name#airgap-}; name=${name%.*}
    if airgap_among "$name" "$@"; then continue; fi
    rm -f "$file"
    CHANGED="$CHANGED apt"
  done
}
