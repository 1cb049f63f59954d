# shellcheck shell=bash
# The file server's artifacts in its install step (airgap-infra), after shell/prelude.sh: one
# airgap_artifact call per artifact, then airgap_artifacts_arrived, then airgap_artifacts_prune
# before the new index is written.

ARTIFACT_FAILED=no

airgap_artifact() {  # ROOT PATH SHA256 URL STAGED
  local target="$1/$2" want=$3 url=$4 staged=$5 tmp got
  airgap_manage "$target"
  if [ -f "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$want" ]; then
    if [ -n "$staged" ]; then rm -f "$staged"; fi   # a copy sent again is not needed
    return 0
  fi
  install -d -m 0755 "$(dirname "$target")"
  tmp=$(mktemp "$(dirname "$target")/.airgap-incoming.XXXXXX")
  if [ -n "$url" ]; then
    if ! curl -fsSL --retry 3 --max-time 900 -o "$tmp" "$url"; then
      rm -f "$tmp"; echo "file server: cannot fetch $url for $2" >&2; ARTIFACT_FAILED=yes; return 0
    fi
  elif [ -f "$staged" ]; then
    mv -f "$staged" "$tmp"   # same file system: no second copy; a served file is never written in place
  else
    rm -f "$tmp"
    echo "file server: $2 is not on the host and was not copied again ($staged missing); re-run with the copy replaced" >&2
    ARTIFACT_FAILED=yes; return 0
  fi
  got=$(sha256sum "$tmp" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    rm -f "$tmp"
    echo "file server: $2 arrived with sha256 $got, expected $want; the previous file stays served" >&2
    ARTIFACT_FAILED=yes; return 0
  fi
  chmod 0644 "$tmp"; mv -f "$tmp" "$target"; CHANGED="$CHANGED artifacts"
}

airgap_artifacts_arrived() {  # fail the step if an artifact did not arrive (each one said why)
  if [ "$ARTIFACT_FAILED" = yes ]; then exit 1; fi
}

# ROOT PATH...: what the index of the last run (ROOT/SHA256SUMS) served and PATH... no longer names is
# removed, with the folders it leaves empty; files the index never listed are not ours and stay.
airgap_artifacts_prune() {
  local root=$1 listed dir
  shift
  [ -f "$root/SHA256SUMS" ] || return 0
  while read -r _ listed; do   # `<sha256>  <path>` lines
    if [ -z "$listed" ] || [ "${listed#/}" != "$listed" ]; then continue; fi
    case "/$listed/" in */../*) continue ;; esac   # only paths below the root
    if airgap_among "$listed" "$@"; then continue; fi
    rm -f "$root/$listed"
    dir=$(dirname "$listed")
    while [ "$dir" != . ] && rmdir "$root/$dir" 2>/dev/null; do dir=$(dirname "$dir"); done
    CHANGED="$CHANGED artifacts"
  done < "$root/SHA256SUMS"
}
