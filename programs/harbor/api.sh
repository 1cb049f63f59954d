# shellcheck shell=bash
# Harbor's projects and the robot account clients pull with (airgap-infra), after shell/prelude.sh
# and harbor/api-json.sh: airgap_harbor_api_login, then the projects, then the robot.

HARBOR_API=()

airgap_harbor_api_login() {  # CA: calls as the admin, whose curl config is the next stdin secret
  local admin
  airgap_secret_tmp admin
  HARBOR_API=(curl -fsS --max-time 30 --cacert "$1" -K "$admin" -H 'Content-Type: application/json')
}

airgap_harbor_project() {  # QUERY CREATE BODY: a project created (POST BODY to CREATE) unless QUERY finds it
  if ! "${HARBOR_API[@]}" -o /dev/null "$1" -I; then
    "${HARBOR_API[@]}" -X POST -d "$3" "$2"
  fi
}

# ROBOTS QUERY NAME BODY: the system robot NAME (found with QUERY) created from BODY, or its
# secret set again; the secret is the next stdin secret.
airgap_harbor_robot() {
  local robots=$1 secret id
  airgap_secret_tmp secret
  id=$("${HARBOR_API[@]}" "$2" | airgap_harbor_json robot-id "$3")
  if [ -z "$id" ]; then
    airgap_harbor_json robot-create "$4" "$secret" | "${HARBOR_API[@]}" -X POST -d @- "$robots" >/dev/null
  else
    airgap_harbor_json robot-secret "$secret" | "${HARBOR_API[@]}" -X PATCH -d @- "$robots/$id" >/dev/null
  fi
}
