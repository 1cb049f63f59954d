"""Kubespray's offline inventory variables (`group_vars/all/offline.yml`) from the stack's own
outputs: the private registry as every image repository and as containerd's mirror for each public
registry (the same path layout and `override_path` as registryClients' hosts.toml, the server set to
the private registry so a failed pull never falls back to the internet), the file server as
`files_repo` with the download bases below it, and the package mirrors.

Variable names are Kubespray's own (`inventory/sample/group_vars/all/offline.yml` and
`containerd.yml`, and the fields `roles/container-engine/containerd/templates/hosts.toml.j2`
reads); tests check each against the copies kept in tests/data/kubespray.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from .registry_clients import CONTAINERD_CERTS

# Kubespray's image repository variables → the public registry each one stands for.
IMAGE_REPOS = {
    "kube_image_repo": "registry.k8s.io",
    "gcr_image_repo": "gcr.io",
    "github_image_repo": "ghcr.io",
    "docker_image_repo": "docker.io",
    "quay_image_repo": "quay.io",
}
# Download bases below `files_repo`: the sample's "override entire binary repository" option.
DOWNLOAD_BASES = {
    "github_url": "github.com",
    "dl_k8s_io_url": "dl.k8s.io",
    "storage_googleapis_url": "storage.googleapis.com",
    "get_helm_url": "get.helm.sh",
}


@dataclass(frozen=True)
class KubesprayInputs:
    registry_endpoint: str | None = None
    mirror_prefixes: tuple[tuple[str, str], ...] = ()
    """(public registry, the path element the private registry keeps for it)."""
    file_server_url: str | None = None
    apt_base_url: str | None = None
    rpm_base_url: str | None = None


def offline_vars(inputs: KubesprayInputs) -> dict:
    variables: dict = {}
    endpoint = inputs.registry_endpoint
    if endpoint:
        prefixes = dict(inputs.mirror_prefixes)
        variables["registry_host"] = endpoint
        for variable, registry in IMAGE_REPOS.items():
            variables[variable] = f"{endpoint}/{prefixes.get(registry, registry)}"
        ca = f"{CONTAINERD_CERTS}/{endpoint}/ca.crt"
        variables["containerd_registries_mirrors"] = [
            {"prefix": registry, "server": f"https://{endpoint}",
             "mirrors": [{"host": f"https://{endpoint}/v2/{prefix}", "capabilities": ["pull", "resolve"],
                          "skip_verify": False, "override_path": True, "ca": ca}]}
            for registry, prefix in inputs.mirror_prefixes]
    if inputs.file_server_url:
        base = inputs.file_server_url.rstrip("/")
        variables["files_repo"] = base
        for variable, host in DOWNLOAD_BASES.items():
            variables[variable] = f"{base}/{host}"
    if inputs.apt_base_url:
        variables["debian_repo"] = inputs.apt_base_url.rstrip("/")
    if inputs.rpm_base_url:
        variables["yum_repo"] = inputs.rpm_base_url.rstrip("/")
    return variables


def to_yaml(variables: dict) -> str:
    header = "# Kubespray offline variables (group_vars/all/offline.yml), from the airgap-infra stack\n"
    return header + (yaml.safe_dump(variables, sort_keys=False, default_flow_style=False) if variables else "{}\n")
