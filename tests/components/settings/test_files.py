"""`fileServer`, `registryClients`, `trivyDb` and `ck8s`: artifacts, digests, clients and the
Compliant Kubernetes references, each refused with the key named."""

import pytest

from .stack_edits import DELETE, assert_refused, edits, set_path, with_changes

FALCO_RULES = "sandbox/data/artifacts/falco_rules.yaml"

CASES = [
    pytest.param(set_path("fileServer.host", "ghost"), "fileServer.host", "no host named 'ghost'", id="host"),
    pytest.param(set_path("fileServer.port", 8444), "fileServer.port", "is also rpmMirror.port on host 'mirror'",
                 id="port-taken"),
    pytest.param(set_path("fileServer.artifacts.0.path", "../etc/passwd"), "fileServer.artifacts[0].path",
                 "not an artifact path", id="artifact-dotdot"),
    pytest.param(set_path("fileServer.artifacts.0.path", "/etc/passwd"), "fileServer.artifacts[0].path",
                 "not an artifact path", id="artifact-absolute"),
    pytest.param(set_path("fileServer.artifacts.0.path", "a;rm -rf x"), "fileServer.artifacts[0].path",
                 "not an artifact path", id="artifact-injection"),
    pytest.param(set_path("fileServer.artifacts.0.path", "SHA256SUMS"), "fileServer.artifacts[0].path",
                 "not an artifact path", id="artifact-index-name"),
    pytest.param(set_path("fileServer.artifacts.0.path", "airgap-state"), "fileServer.artifacts[0].path",
                 "not an artifact path", id="artifact-own-name"),
    pytest.param(set_path("fileServer.artifacts.1.path", "falco/falco_rules.yaml"), "fileServer.artifacts[1].path",
                 "'falco/falco_rules.yaml' is the same as fileServer.artifacts[0].path", id="artifact-path-twice"),
    pytest.param(set_path("fileServer.artifacts.0.sha256", "abc"), "fileServer.artifacts[0].sha256",
                 "64 lowercase hex", id="artifact-sha"),
    pytest.param(set_path("fileServer.artifacts.0.sha256", "0" * 64), "fileServer.artifacts[0].sha256", "has sha256",
                 id="artifact-sha-wrong"),
    pytest.param(set_path("fileServer.artifacts.3.file", FALCO_RULES), "fileServer.artifacts[3]",
                 "give exactly one of url and file", id="artifact-both"),
    pytest.param(set_path("fileServer.artifacts.3.url", DELETE), "fileServer.artifacts[3]",
                 "give exactly one of url and file", id="artifact-neither"),
    pytest.param(set_path("fileServer.artifacts.3.url", "http://x/`id`"), "fileServer.artifacts[3].url",
                 "characters", id="artifact-url"),
    pytest.param(set_path("fileServer.tls", {"mode": "files", "certFile": "Pulumi.yaml",
                                             "keySecret": "registryPassword"}),
                 "fileServer.tls.certFile", "no PEM certificate", id="tls-cert-not-pem"),
    pytest.param(set_path("registryClients.0.host", "ghost"), "registryClients[0].host", "no host named 'ghost'",
                 id="client-host"),
    pytest.param(set_path("registryClients.1", {"host": "client", "docker": True}), "registryClients[1].host",
                 "'client' is the same as registryClients[0].host", id="client-twice"),
    pytest.param(edits(set_path("registry", {}), set_path("images", []), set_path("trivyDb", {})), "registryClients[0]",
                 "no registry is configured", id="client-without-registry"),
    pytest.param(set_path("registryClients.0", {"host": "client"}), "registryClients[0]", "docker: true",
                 id="client-none"),
    pytest.param(set_path("registryClients.0.upstreams", ["localhost"]), "registryClients[0].upstreams[0]",
                 "not a registry host", id="client-upstream"),
    pytest.param(set_path("trivyDb.ociLayout", "/nonexistent"), "trivyDb.ociLayout", "not an OCI image layout",
                 id="trivy-layout"),
    pytest.param(set_path("trivyDb.db", "ghcr.io/aquasecurity/trivy-db"), "trivyDb.db", "no tag or digest",
                 id="trivy-db-unpinned"),
    pytest.param(set_path("registry.fill.ociLayout", "sandbox/data/trivy-layout"), "trivyDb.ociLayout",
                 "its directory name is registry.fill.ociLayout's", id="trivy-layout-beside-fill"),
    pytest.param(edits(set_path("registry", {}), set_path("images", []), set_path("registryClients", [])), "trivyDb",
                 "no registry is configured; it holds the databases", id="trivy-without-registry"),
    pytest.param(set_path("ck8s.opensearchPlugins", ["opensearch/absent.zip"]), "ck8s.opensearchPlugins[0]",
                 "no fileServer artifact at 'opensearch/absent.zip'; known:", id="ck8s-plugin-unknown"),
    pytest.param(set_path("ck8s.falcoIndexes", ["falco/absent.yaml"]), "ck8s.falcoIndexes[0]",
                 "no fileServer artifact at 'falco/absent.yaml'", id="ck8s-index-unknown"),
    pytest.param(edits(set_path("fileServer", {}), set_path("ck8s.opensearchPlugins", [])), "ck8s.falcoIndexes",
                 "no fileServer is configured", id="ck8s-indexes-without-file-server"),
    pytest.param(edits(set_path("fileServer", {}), set_path("ck8s.falcoIndexes", [])), "ck8s.opensearchPlugins",
                 "no fileServer is configured", id="ck8s-plugins-without-file-server"),
    pytest.param(edits(set_path("fileServer", {}), set_path("ck8s", {"falcoDriver": "kmod"})), "ck8s.falcoDriver",
                 "no fileServer is configured; it serves the driver modules", id="ck8s-kmod-without-file-server"),
    pytest.param(set_path("ck8s.dnsServers", []), "ck8s.dnsServers", "give dnsZone and dnsServers together",
                 id="ck8s-zone-without-servers"),
    pytest.param(set_path("ck8s.dnsServers", ["dns;1"]), "ck8s.dnsServers[0]", "neither an IP address",
                 id="ck8s-dns-server"),
    pytest.param(set_path("ck8s.smtpSmarthost", DELETE), "ck8s.smtpSmarthost", "required with alertEmail",
                 id="ck8s-email-without-relay"),
    pytest.param(set_path("ck8s.alertEmail", "ops; reboot"), "ck8s.alertEmail", "not an e-mail address",
                 id="ck8s-email"),
    pytest.param(set_path("ck8s.outputDir", "../x"), "ck8s.outputDir", "inside the project directory",
                 id="ck8s-output"),
]


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_file_settings_are_refused(edit, path, message):
    assert_refused(with_changes(edit), path, message)
