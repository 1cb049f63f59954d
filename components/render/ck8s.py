"""Compliant Kubernetes (Welkin apps) overrides for the `air-gapped` flavor, from the stack's own
outputs: `common-config.yaml` and `sc-config.yaml` fragments to merge into an environment's
configuration. Key paths follow the project's config schema (`config/schemas/config.yaml`);
tests check every rendered path against the list kept in tests/data/ck8s_config_keys.txt, and
the values themselves (types, enums, patterns, conditionals) against the schema kept in
tests/data/ck8s. Every `set-me` of the air-gapped flavor the stack can know is filled: the
registry and mirrors (`index.docker.io` included), the Trivy databases, the alert receiver, the
OpenSearch plugins, and the stack's own CA as the cert-manager issuer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import yaml

from .formats import coredns
from .formats.hosts import split_host_port


@dataclass(frozen=True)
class Ck8sInputs:
    registry_endpoint: str | None = None
    registry_address: str | None = None
    mirror_prefixes: dict[str, str] = field(default_factory=dict)
    """Public registry → `<private endpoint>/<prefix>` (the path layout the registry uses)."""
    trivy_db_repository: str | None = None
    trivy_java_db_repository: str | None = None
    file_server_url: str | None = None
    file_server_address: str | None = None
    file_server_port: int | None = None
    falco_driver: str = "modern-bpf"
    falco_driver_path: str | None = None
    falco_indexes: tuple[str, ...] = ()
    opensearch_plugins: tuple[str, ...] = ()
    dns_zone: str | None = None
    dns_servers: tuple[str, ...] = ()
    alert_email: str | None = None
    smtp_smarthost: str | None = None
    smtp_from: str | None = None
    ca_issuer: str | None = None
    """Name of a cert-manager CA ClusterIssuer whose secret (same name, in cert-manager's namespace)
    holds the stack CA: it becomes `global.issuer`, and Let's Encrypt is turned off."""


# The stack's setting → the schema's `falco.driver.kind` enum (kmod | modern_ebpf | ebpf).
FALCO_DRIVER_KINDS = {"modern-bpf": "modern_ebpf", "kmod": "kmod"}


def _cidr(address: str | None) -> list[str]:
    """`a.b.c.d/32` for an IP address (the schema wants CIDRs); nothing for a DNS name."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return []
    return [f"{ip}/{32 if ip.version == 4 else 128}"]


def overrides(inputs: Ck8sInputs) -> tuple[dict, dict]:
    """(common-config, sc-config) fragments."""
    common: dict = {"global": {"ck8sFlavor": "air-gapped"}}
    sc: dict = {}
    files = inputs.file_server_url

    falco: dict = {"artifact": {"install": {"enabled": bool(inputs.falco_indexes)}},
                   "driver": {"kind": FALCO_DRIVER_KINDS[inputs.falco_driver]}}
    if inputs.falco_indexes:
        falco["customIndexes"] = [{"name": f"airgap-{n}", "url": f"{files}/{path}"}
                                  for n, path in enumerate(inputs.falco_indexes, 1)]
    if inputs.falco_driver == "kmod" and files:
        falco["driver"]["module"] = {"repoURL": f"{files}/{inputs.falco_driver_path}"}
    common["falco"] = falco

    if inputs.registry_endpoint:
        scanner: dict = {"offlineScanEnabled": True}
        if inputs.trivy_db_repository:
            scanner.update(dbRegistry=inputs.registry_endpoint, dbRepository=inputs.trivy_db_repository,
                           dbRepositoryInsecure=False)
        if inputs.trivy_java_db_repository:
            scanner.update(javaDbRegistry=inputs.registry_endpoint, javaDbRepository=inputs.trivy_java_db_repository)
        if inputs.mirror_prefixes:
            mirrors = dict(inputs.mirror_prefixes)
            if "docker.io" in mirrors:  # the flavor lists Docker Hub's other name too
                mirrors.setdefault("index.docker.io", mirrors["docker.io"])
            scanner["registry"] = {"mirror": dict(sorted(mirrors.items()))}
        common["trivy"] = {"scanner": scanner}

    policies: dict = {}
    if files and inputs.file_server_port and _cidr(inputs.file_server_address):
        rule = {"ips": _cidr(inputs.file_server_address), "ports": [inputs.file_server_port]}
        if inputs.falco_indexes or inputs.falco_driver == "kmod":
            policies["falco"] = {"plugins": rule}
        if inputs.opensearch_plugins:
            sc.setdefault("networkPolicies", {})["opensearch"] = {"plugins": rule}
    if inputs.registry_endpoint and _cidr(inputs.registry_address):
        policies["global"] = {"trivy": {"ips": _cidr(inputs.registry_address),
                                        "port": int(inputs.registry_endpoint.rsplit(":", 1)[1])}}

    if inputs.ca_issuer:
        common["global"]["issuer"] = inputs.ca_issuer
        common["issuers"] = {"letsencrypt": {"enabled": False}, "extraIssuers": [{
            "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": inputs.ca_issuer},
            "spec": {"ca": {"secretName": inputs.ca_issuer}}}]}

    if inputs.dns_zone:
        servers = [coredns.upstream(server) for server in inputs.dns_servers]
        common["nodeLocalDns"] = {"customConfig": coredns.server_block(
            inputs.dns_zone, 53, [("errors",), ("cache", 30), ("forward", ".", *servers)])}

    if inputs.alert_email and inputs.smtp_smarthost:
        sc["alerts"] = {
            "alertTo": "email",
            "customReceivers": [{"name": "email", "email_configs": [{
                "to": inputs.alert_email, "from": inputs.smtp_from or inputs.alert_email,
                "smarthost": inputs.smtp_smarthost, "require_tls": True, "send_resolved": True}]}],
        }
        relay_host, relay_port = split_host_port(inputs.smtp_smarthost)
        if _cidr(relay_host):
            policies["alertmanager"] = {"alertReceivers": {"ips": _cidr(relay_host), "ports": [relay_port]}}
    if policies:
        common["networkPolicies"] = policies

    if inputs.opensearch_plugins:
        sc.setdefault("opensearch", {})["plugins"] = {
            "installExternalObjectStoragePlugin": False,
            "additionalPlugins": [f"{files}/{path}" for path in inputs.opensearch_plugins],
        }
    return common, sc


def to_yaml(fragment: dict) -> str:
    return yaml.safe_dump(fragment, sort_keys=True, default_flow_style=False) if fragment else "{}\n"


def key_paths(fragment, prefix: str = "") -> set[str]:
    """Dotted key paths of a fragment's leaves; list items as `[]`."""
    paths: set[str] = set()
    if isinstance(fragment, dict):
        for key, value in fragment.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths |= key_paths(value, path) or {path}
    elif isinstance(fragment, list) and fragment and isinstance(fragment[0], dict):
        for item in fragment:
            paths |= key_paths(item, f"{prefix}[]")
    else:
        paths.add(prefix)
    return paths
