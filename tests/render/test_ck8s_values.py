"""The CK8s fragments as values: validated against the project's JSON Schema (types, enums,
patterns, formats and conditionals), and every `set-me` of the air-gapped flavor the stack can know
filled. The schema, the default config and the flavor are kept in tests/data/ck8s (SOURCES.txt).

The schema describes a whole merged config; fragments are partial, so its `required` keywords are
set aside (each fragment is merged over the project's defaults by the operator, which supplies
them). One known defect of the schema at that commit is corrected before use: the `contst` typo
at #/properties/falco/properties/driver (then: module.repoURL oneOf) makes every URI match both
branches of a oneOf, so no repoURL could ever validate; it is read as the `const` it means."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import jsonschema
import pytest
import yaml

from bundle.discover_charts import merge
from components.render import ck8s

DATA = Path(__file__).resolve().parents[1] / "data" / "ck8s"
FULL = ck8s.Ck8sInputs(
    registry_endpoint="10.0.0.5:5443", registry_address="10.0.0.5",
    mirror_prefixes={u: f"10.0.0.5:5443/{u}" for u in ("docker.io", "gcr.io", "ghcr.io", "quay.io", "registry.k8s.io")},
    trivy_db_repository="ghcr.io/aquasecurity/trivy-db", trivy_java_db_repository="ghcr.io/aquasecurity/trivy-java-db",
    file_server_url="https://files.internal:8445", file_server_address="10.0.0.6", file_server_port=8445,
    falco_driver="kmod", falco_driver_path="falco/driver", falco_indexes=("falco/index.yaml",),
    opensearch_plugins=("opensearch/repository-s3-2.15.0.zip",), dns_zone="corp.internal", dns_servers=("10.0.0.53",),
    alert_email="ops@corp.internal", smtp_smarthost="10.0.0.25:587", smtp_from="alerts@corp.internal",
    ca_issuer="airgap-infra-ca")
VARIANTS = {
    "full": FULL,
    "modern-bpf, nothing else": ck8s.Ck8sInputs(falco_driver="modern-bpf"),
    "registry by name, no file server": ck8s.Ck8sInputs(
        registry_endpoint="registry.corp.internal:5443", registry_address="registry.corp.internal",
        mirror_prefixes={"docker.io": "registry.corp.internal:5443/docker.io"},
        trivy_db_repository="ghcr.io/aquasecurity/trivy-db"),
}


def _without_required(node):
    if isinstance(node, dict):
        return {key: _without_required(value) for key, value in node.items() if key != "required"}
    if isinstance(node, list):
        return [_without_required(item) for item in node]
    return node


def _corrected(node):
    if isinstance(node, dict):
        return {("const" if key == "contst" else key): _corrected(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_corrected(item) for item in node]
    return node


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = yaml.safe_load((DATA / "config.schema.yaml").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    checker = jsonschema.FormatChecker()

    @checker.checks("uri")
    def absolute_uri(value: object) -> bool:  # RFC 3986 absolute URI; the stdlib has no rfc3987
        return not isinstance(value, str) or bool(urllib.parse.urlsplit(value).scheme)

    return jsonschema.Draft202012Validator(_corrected(_without_required(schema)), format_checker=checker)


def problems(validator, document) -> list[str]:
    return sorted(f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
                  for error in validator.iter_errors(document))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fragments_validate_as_values(validator, name):
    common, sc = ck8s.overrides(VARIANTS[name])
    common, sc = yaml.safe_load(ck8s.to_yaml(common)), yaml.safe_load(ck8s.to_yaml(sc))
    assert problems(validator, common) == []
    assert problems(validator, merge(common, sc)) == [], "the service cluster sees common + sc"


def test_the_schema_catches_what_it_should(validator):
    """The check is live: wrong types, enums, patterns and formats are reported."""
    common, _ = ck8s.overrides(FULL)
    broken = merge(common, {"falco": {"driver": {"kind": "module"}}, "networkPolicies": {"falco": {"plugins": {
        "ips": ["10.0.0.6"], "ports": ["8445"]}}}, "trivy": {"scanner": {"dbRepositoryInsecure": "no"}},
        "global": {"ck8sFlavor": "airgapped"}})
    found = problems(validator, broken)
    for path in ("falco.driver.kind", "networkPolicies.falco.plugins.ips.0", "networkPolicies.falco.plugins.ports.0",
                 "trivy.scanner.dbRepositoryInsecure", "global.ck8sFlavor"):
        assert any(problem.startswith(f"{path}: ") for problem in found), (path, found)
    bad_url = merge(common, {"falco": {"customIndexes": [{"name": "x", "url": "files.internal/index.yaml"}]}})
    assert any(p.startswith("falco.customIndexes.0.url: ") for p in problems(validator, bad_url))


def set_me(node, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [found for key, value in node.items() for found in set_me(value, f"{path}.{key}" if path else key)]
    if isinstance(node, list):
        return [found for index, value in enumerate(node) for found in set_me(value, f"{path}[{index}]")]
    return [path] if node == "set-me" else []


def test_every_flavor_set_me_the_stack_knows_is_filled():
    flavor = {name: yaml.safe_load((DATA / "air-gapped" / f"{name}-config.yaml").read_text())
              for name in ("common", "sc", "wc")}
    assert set_me(flavor["common"]) and set_me(flavor["sc"]), "the flavor still has set-me's to fill"
    common, sc = ck8s.overrides(FULL)
    remaining = set_me(merge(merge(flavor["common"], flavor["sc"]), merge(common, sc)))
    remaining += set_me(merge(merge(flavor["common"], flavor["wc"]), common))
    # Only what no stack setting says: the workload cluster's user namespaces.
    assert remaining == ["user.namespaces[0]"]


def test_the_stack_ca_becomes_the_cert_manager_issuer():
    common, _ = ck8s.overrides(FULL)
    assert common["global"]["issuer"] == "airgap-infra-ca"
    assert common["issuers"] == {"letsencrypt": {"enabled": False}, "extraIssuers": [{
        "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "airgap-infra-ca"},
        "spec": {"ca": {"secretName": "airgap-infra-ca"}}}]}
    assert common["trivy"]["scanner"]["registry"]["mirror"]["index.docker.io"] == "10.0.0.5:5443/docker.io"
    without, _ = ck8s.overrides(ck8s.Ck8sInputs())
    assert "issuer" not in without["global"] and "issuers" not in without
