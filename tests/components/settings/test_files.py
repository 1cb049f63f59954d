"""`fileServer`, `registryClients`, `trivyDb` and `ck8s`: artifacts, digests, clients and the
Compliant Kubernetes references, each refused with the key named."""

import pytest

from .hostile_files import directory, with_file
from .stack_edits import DELETE, Edit, assert_refused, edits, set_path, with_changes

FALCO_RULES = "sandbox/data/artifacts/falco_rules.yaml"


def on_the_network(config: dict) -> None:
    """The sandbox's hosts on network addresses instead of this machine's loopback."""
    for number, host in enumerate(config["hosts"].values(), 10):
        host["address"] = f"10.9.0.{number}"


def with_roots(*roots: str) -> Edit:
    return set_path("adminFileRoots", list(roots))

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
    # files read on the admin machine: inside the project or an adminFileRoots entry, nothing hidden
    pytest.param(edits(set_path("fileServer.artifacts.0.file", "/etc/passwd"),
                       set_path("fileServer.artifacts.0.sha256", "0" * 64)),
                 "fileServer.artifacts[0].file", "outside the project directory", id="artifact-etc-passwd"),
    pytest.param(set_path("fileServer.artifacts.0.file", "sandbox/../../../../etc/hostname"),
                 "fileServer.artifacts[0].file", "outside the project directory", id="artifact-dotdot-out"),
    pytest.param(set_path("fileServer.artifacts.0.file", ".gitignore"), "fileServer.artifacts[0].file",
                 "lies in the hidden '.gitignore'", id="artifact-hidden-file"),
    pytest.param(with_file("fileServer.artifacts.0.file", ".hidden/falco_rules.yaml"), "fileServer.artifacts[0].file",
                 "lies in the hidden '.hidden'", id="artifact-hidden-below-root"),
    pytest.param(with_roots("/"), "adminFileRoots[0]", "too near '/'", id="roots-slash"),
    pytest.param(with_roots("/etc/ssl"), "adminFileRoots[0]", "a system directory", id="roots-system"),
    pytest.param(with_roots("relative/dir"), "adminFileRoots[0]", "not an absolute path", id="roots-relative"),
    pytest.param(with_roots("/nonexistent/airgap"), "adminFileRoots[0]", "not a directory", id="roots-missing"),
    pytest.param(lambda config: with_roots(str(directory() / ".hidden"))(config), "adminFileRoots[0]",
                 "lies in a hidden directory", id="roots-hidden"),
    pytest.param(set_path("ck8s.outputDir", ".git/hooks"), "ck8s.outputDir", "starts with '.' or '-'",
                 id="ck8s-output-git-hooks"),
    pytest.param(set_path("ck8s.outputDir", "programs/registry"), "ck8s.outputDir", "the project's own 'programs'",
                 id="ck8s-output-over-programs"),
    # storage shared between services: the file server would serve the registry's blobs unauthenticated
    pytest.param(edits(set_path("registry.host", "mirror"), set_path("fileServer.storagePath",
                                                                     "/var/lib/airgap/registry")),
                 "fileServer.storagePath", "is the same directory as registry.storagePath", id="storage-shared"),
    pytest.param(edits(set_path("hosts.client.address", "127.0.0.11"), set_path("hosts.client.bastion", "bastion"),
                       set_path("fileServer.host", "client"),
                       set_path("fileServer.storagePath", "/var/lib/airgap/registry/docker")),
                 "fileServer.storagePath", "is inside registry.storagePath (/var/lib/airgap/registry) on host 'client' "
                 "(host 'registry' is the same machine)", id="storage-nested-same-address"),
    # registry names read as image references read them
    pytest.param(set_path("registryClients.0.upstreams", ["docker.io", "index.docker.io"]),
                 "registryClients[0].upstreams[1]", "'docker.io' is the same as registryClients[0].upstreams[0]",
                 id="client-upstream-alias"),
    pytest.param(set_path("registryClients.0.upstreams", ["docker.io", "DOCKER.IO"]), "registryClients[0].upstreams[1]",
                 "each registry gets one hosts.toml", id="client-upstream-case"),
    pytest.param(set_path("registryClients.0.upstreams", ["quay.io/../../etc"]), "registryClients[0].upstreams[0]",
                 "not a DNS name", id="client-upstream-path"),
    # the relay and DNS servers: host:port parsed before the overrides are built
    pytest.param(set_path("ck8s.smtpSmarthost", "127.0.0.25:abc"), "ck8s.smtpSmarthost", "is not host:port",
                 id="ck8s-relay-port-text"),
    pytest.param(set_path("ck8s.smtpSmarthost", "127.0.0.25:２５"), "ck8s.smtpSmarthost", "is not host:port",
                 id="ck8s-relay-port-full-width"),
    pytest.param(set_path("ck8s.smtpSmarthost", "2001:db8::25:25"), "ck8s.smtpSmarthost", "is not host:port",
                 id="ck8s-relay-ipv6-unbracketed"),
    pytest.param(set_path("ck8s.smtpSmarthost", "0.0.0.0:25"), "ck8s.smtpSmarthost", "unspecified",
                 id="ck8s-relay-unspecified"),
    pytest.param(set_path("ck8s.smtpFrom", "alerts@airgap.test\nBcc: x@evil.example"), "ck8s.smtpFrom",
                 "not an e-mail address", id="ck8s-from-header"),
    pytest.param(set_path("ck8s.dnsServers", ["127.0.0.53%lo"]), "ck8s.dnsServers[0]", "zone id",
                 id="ck8s-dns-zone-id"),
    pytest.param(set_path("ck8s.dnsZone", "airgap.test:53 {\n}\n. {"), "ck8s.dnsZone", "not a DNS name",
                 id="ck8s-zone-block"),
    # loopback where it makes no sense: the stack is on the network
    pytest.param(edits(on_the_network), "ck8s.dnsServers[0]", "node-local-dns would forward to the node itself",
                 id="ck8s-dns-loopback"),
    pytest.param(edits(on_the_network, set_path("ck8s.dnsServers", ["10.9.0.53"])), "ck8s.smtpSmarthost",
                 "Alertmanager would send to its own pod", id="ck8s-relay-loopback"),
    pytest.param(edits(on_the_network, set_path("fileServer.hostname", "localhost")), "fileServer.hostname",
                 "is a loopback name", id="hostname-loopback"),
]


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_file_settings_are_refused(edit, path, message):
    assert_refused(with_changes(edit), path, message)
