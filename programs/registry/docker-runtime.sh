# shellcheck shell=bash
# The registry as a Docker container from an image archive carried across the gap (runtime
# docker), in its install step (airgap-infra), after shell/prelude.sh.

airgap_registry_image() {  # IMAGE ARCHIVE: IMAGE loaded from ARCHIVE unless Docker has it; REGISTRY_IMAGE_ID=its id
  if ! command -v docker >/dev/null 2>&1; then
    echo 'registry: runtime docker needs Docker on the host' >&2; exit 1
  fi
  if ! docker image inspect "$1" >/dev/null 2>&1; then
    docker load -i "$2"
  fi
  REGISTRY_IMAGE_ID=$(docker image inspect -f '{{.Id}}' "$1")
}

# NAME IMAGE PUBLISH STOP_TIMEOUT STORAGE_VOLUME CONFIG_VOLUME REPAIR...: the container NAME runs
# IMAGE (as airgap_registry_image loaded it), its port 5000 published at PUBLISH (address:port).
# It is created again when its image or published address changed, stopped and started when a
# file it reads changed (change tags config, tls, auth), started when it is not running. Before
# every start the command REPAIR... mends what a registry killed mid-write left in the storage;
# a stop lets the registry drain for up to STOP_TIMEOUT seconds (a restart would skip the repair).
airgap_registry_container() {
  local name=$1 image=$2 publish=$3 stop_timeout=$4 storage=$5 config=$6 current published
  shift 6
  current=$(docker inspect -f '{{index .Config.Labels "airgap.image-id"}}' "$name" 2>/dev/null || true)
  published=$(docker port "$name" 5000/tcp 2>/dev/null | head -n1 || true)
  if [ "$current" != "$REGISTRY_IMAGE_ID" ] || [ "$published" != "$publish" ]; then
    docker stop "$name" >/dev/null 2>&1 || true
    docker rm -f "$name" >/dev/null 2>&1 || true
    "$@" >&2
    docker run -d --name "$name" --restart=always --stop-timeout "$stop_timeout" -p "$publish:5000" \
      -v "$storage" -v "$config" --label airgap.image-id="$REGISTRY_IMAGE_ID" "$image"
  elif airgap_changed config tls auth; then
    docker stop "$name" >/dev/null
    "$@" >&2
    docker start "$name" >/dev/null
  elif [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
    "$@" >&2
    docker start "$name"
  fi
}
