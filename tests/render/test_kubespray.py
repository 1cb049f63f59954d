"""Kubespray's offline variables: every name is Kubespray's own (checked against its sample
inventory and containerd template kept in tests/data/kubespray, SOURCES.txt), and the mirrors say
what registryClients' hosts.toml says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from components.render import kubespray, registry_clients

DATA = Path(__file__).resolve().parents[1] / "data" / "kubespray"
INPUTS = kubespray.KubesprayInputs(
    registry_endpoint="registry.airgap.internal:5443",
    mirror_prefixes=(("docker.io", "docker.io"), ("quay.io", "quay.io"), ("registry.k8s.io", "registry.k8s.io")),
    file_server_url="https://files.airgap.internal:8445/", apt_base_url="https://mirror.airgap.internal:8443",
    rpm_base_url="https://mirror.airgap.internal:8444")


def sample_names() -> set[str]:
    """Variables Kubespray's sample inventory names (commented out, as it ships them)."""
    names = set()
    for file in ("offline.yml", "containerd.yml"):
        names |= set(re.findall(r"^#?\s*([a-z][a-z0-9_]*):", (DATA / file).read_text(), re.MULTILINE))
    return names


def test_every_variable_is_one_kubespray_names():
    rendered = kubespray.offline_vars(INPUTS)
    assert set(rendered) <= sample_names(), set(rendered) - sample_names()
    template = (DATA / "hosts.toml.j2").read_text()
    entry_fields = set(re.findall(r"item\.(\w+)", template))
    mirror_fields = set(re.findall(r"mirror\.(\w+)", template))
    for entry in rendered["containerd_registries_mirrors"]:
        assert set(entry) <= entry_fields | {"mirrors"}, entry
        for mirror in entry["mirrors"]:
            assert set(mirror) <= mirror_fields, mirror


def test_the_variables_as_a_table():
    rendered = yaml.safe_load(kubespray.to_yaml(kubespray.offline_vars(INPUTS)))
    endpoint = "registry.airgap.internal:5443"
    assert {key: value for key, value in rendered.items() if key != "containerd_registries_mirrors"} == {
        "registry_host": endpoint,
        "kube_image_repo": f"{endpoint}/registry.k8s.io",
        "gcr_image_repo": f"{endpoint}/gcr.io",
        "github_image_repo": f"{endpoint}/ghcr.io",
        "docker_image_repo": f"{endpoint}/docker.io",
        "quay_image_repo": f"{endpoint}/quay.io",
        "files_repo": "https://files.airgap.internal:8445",
        "github_url": "https://files.airgap.internal:8445/github.com",
        "dl_k8s_io_url": "https://files.airgap.internal:8445/dl.k8s.io",
        "storage_googleapis_url": "https://files.airgap.internal:8445/storage.googleapis.com",
        "get_helm_url": "https://files.airgap.internal:8445/get.helm.sh",
        "debian_repo": "https://mirror.airgap.internal:8443",
        "yum_repo": "https://mirror.airgap.internal:8444",
    }
    assert rendered["containerd_registries_mirrors"][0] == {
        "prefix": "docker.io", "server": f"https://{endpoint}",
        "mirrors": [{"host": f"https://{endpoint}/v2/docker.io", "capabilities": ["pull", "resolve"],
                     "skip_verify": False, "override_path": True,
                     "ca": f"/etc/containerd/certs.d/{endpoint}/ca.crt"}]}


def test_the_mirrors_match_registry_clients_hosts_toml():
    """Kubespray writes hosts.toml from these fields (hosts.toml.j2); they must mean what ours does."""
    endpoint = "registry.airgap.internal:5443"
    ca = f"{registry_clients.CONTAINERD_CERTS}/{endpoint}/ca.crt"
    for entry in kubespray.offline_vars(INPUTS)["containerd_registries_mirrors"]:
        ours = registry_clients.hosts_toml(entry["prefix"], endpoint, ca, entry["prefix"])
        mirror = entry["mirrors"][0]
        assert f'server = "{entry["server"]}"' in ours
        assert f'[host."{mirror["host"]}"]' in ours
        assert f'ca = "{mirror["ca"]}"' in ours and "override_path = true" in ours


def test_nothing_is_emitted_for_what_the_stack_lacks():
    assert kubespray.offline_vars(kubespray.KubesprayInputs()) == {}
    only_files = kubespray.offline_vars(kubespray.KubesprayInputs(file_server_url="https://f:8445"))
    assert set(only_files) == {"files_repo", *kubespray.DOWNLOAD_BASES}
