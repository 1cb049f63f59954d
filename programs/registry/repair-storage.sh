#!/bin/sh
# Repairs what a registry killed mid-write leaves: empty manifests and links (airgap-infra).
set -eu
cd /  # find returns to where it started; the caller's directory may be closed to this user
storage=$1
v2="$storage/docker/registry/v2"
nothing=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  # sha256 of no bytes
if [ -d "$v2/blobs" ]; then
  find "$v2/blobs" -type f -name data -empty | while IFS= read -r data; do
    hex=${data%/data}
    hex=${hex##*/}
    if [ "$hex" != "$nothing" ]; then
      rm -f "$data"
      echo "repair-storage: $data: empty, removed"
    fi
  done
fi
[ -d "$v2/repositories" ] || exit 0
find "$v2/repositories" -type f -name link -empty | while IFS= read -r link; do
  dir=${link%/link}
  hex=${dir##*/}
  restore=no
  case "${dir%/*}:$hex" in
    */sha256:*[!0-9a-f]*) ;;
    */sha256:*)
      if [ "${#hex}" -eq 64 ] && [ -f "$v2/blobs/sha256/$(printf '%.2s' "$hex")/$hex/data" ]; then
        restore=yes
      fi ;;
  esac
  if [ "$restore" = yes ]; then
    printf 'sha256:%s' "$hex" > "$dir/.link.repair"
    mv -f "$dir/.link.repair" "$link"
    echo "repair-storage: $link: written again (sha256:$hex)"
  else
    rm -f "$link"
    echo "repair-storage: $link: empty, removed"
  fi
done
