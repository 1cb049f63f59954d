# shellcheck shell=bash
# `purge: true` in a delete step (airgap-infra), after shell/prelude.sh.

# ROOTS PATH...: remove each PATH (with everything below it, on its own file system) when, with
# the symbolic links above it resolved on this host, it still lies below one of the colon-separated
# ROOTS. The settings only saw the path's text: a /srv that is a link to / would make
# /srv/etc the system's /etc. Every PATH is checked before any is removed; one outside the roots
# fails the step and nothing goes. What is removed is the resolved path, so a PATH that is itself a
# link loses the link only, even written with a trailing slash (`rm -rf link/` empties the target).
airgap_purge() {
  local roots=$1 path base real root inside
  local -a list resolved=()
  shift
  IFS=: read -ra list <<<"$roots"
  for path in "$@"; do
    base=$(basename -- "$path")
    case "$base" in
      .|..|/) real=$(realpath -m -- "$path") ;;
      *) real=$(realpath -m -- "$(dirname -- "$path")"); real=${real%/}/$base ;;
    esac
    inside=no
    for root in "${list[@]}"; do
      case "$real" in "$root"/?*) inside=yes ;; esac
    done
    if [ "$inside" = no ]; then
      echo "airgap: purge refused: $path is $real on this host, outside the data roots (${roots//:/, });" \
           "nothing was removed; remove it by hand if it is meant to go" >&2
      exit 1
    fi
    resolved+=("$real")
  done
  rm -rf --one-file-system -- "${resolved[@]}"
}
