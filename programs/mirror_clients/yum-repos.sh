# shellcheck shell=bash
# A client's dnf/yum repositories (airgap-infra), after shell/prelude.sh: the host's own `.repo`
# files moved into a folder dnf does not read, and back.

airgap_yum_repos_aside() {  # MOVED: every .repo file but ours moved into MOVED (again: nothing moves)
  local file
  install -d -m 0755 "$1"
  for file in /etc/yum.repos.d/*.repo; do
    [ -e "$file" ] || continue
    case "$(basename "$file")" in airgap-*) continue ;; esac
    mv "$file" "$1/"
  done
}

airgap_yum_repos_back() {  # MOVED: what airgap_yum_repos_aside moved, back in place
  local file
  for file in "$1"/*; do
    if [ -e "$file" ]; then mv "$file" /etc/yum.repos.d/; fi
  done
  rmdir "$1" 2>/dev/null || true
}

airgap_yum_prune() {  # KEY_DIR ID...: our .repo files and keys removed, but those of the repositories ID
  local file id key_dir=$1
  shift
  for file in /etc/yum.repos.d/airgap-*.repo "$key_dir"/RPM-GPG-KEY-airgap-*; do
    [ -e "$file" ] || continue
    id=$(basename "$file"); id=${id#RPM-GPG-KEY-}; id=${id#airgap-}; id=${id%.repo}
    if airgap_among "$id" "$@"; then continue; fi
    rm -f "$file"
  done
}
