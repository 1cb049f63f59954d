"""`registry`: host, port, runtime, storage, users, TLS and the fill, each refused with the key
named. The TLS cases hold for every service: they all declare the same TLS rules."""

import pytest

from .stack_edits import assert_refused, edits, set_path, with_changes

FILES_TLS = {"mode": "files", "certFile": "examples/prod/registry.crt", "keySecret": "registryPassword"}

CASES = [
    pytest.param(set_path("registry.host", "missing"), "registry.host", "no host named 'missing'",
                 id="host-unknown"),
    pytest.param(set_path("registry.hostname", "registry_1.example"), "registry.hostname", "not a DNS name",
                 id="hostname"),
    pytest.param(set_path("registry.port", -1), "registry.port", "greater than or equal to 1", id="port"),
    pytest.param(set_path("registry.runtime", "podman"), "registry.runtime", "'package' or 'docker'", id="runtime"),
    pytest.param(set_path("registry.storagePath", "/var/lib/../etc"), "registry.storagePath", "normalised",
                 id="storage-dotdot"),
    pytest.param(set_path("registry.storagePath", "/etc/registry"), "registry.storagePath", "outside the data roots",
                 id="storage-etc"),
    pytest.param(set_path("registry.storagePath", "var/lib/x"), "registry.storagePath", "absolute",
                 id="storage-relative"),
    pytest.param(set_path("registry.storagePath", "/var/lib/reg;rm -rf x"), "registry.storagePath", "may hold only",
                 id="storage-injection"),
    pytest.param(set_path("registry.storagePath", "/var/lib"), "registry.storagePath", "outside the data roots",
                 id="storage-root"),
    pytest.param(set_path("registry.users", []), "registry.users", "at least 1", id="users-empty"),
    pytest.param(set_path("registry.users.0.name", "a:b"), "registry.users[0].name", "not a registry user name",
                 id="user-colon"),
    pytest.param(set_path("registry.users.0.passwordSecret", "noSuchSecret"), "registry.users[0].passwordSecret",
                 "pulumi config set --secret --path secrets.noSuchSecret", id="user-secret-missing"),
    pytest.param(set_path("secrets.registryPassword", ""), "registry.users[0].passwordSecret", "is empty",
                 id="user-secret-empty"),
    pytest.param(set_path("registry.users.1.name", "airgap"), "registry.users[1].name",
                 "'airgap' is the same as registry.users[0].name; each must be unique", id="users-duplicate"),
    pytest.param(set_path("registry.tls", {"mode": "files", "keySecret": "registryPassword"}), "registry.tls.certFile",
                 "required with mode: files; give a PEM path", id="tls-files-no-cert"),
    pytest.param(set_path("registry.tls", {"mode": "files", "certFile": "examples/prod/registry.crt"}),
                 "registry.tls.keySecret", "required with mode: files", id="tls-files-no-key"),
    pytest.param(set_path("registry.tls", {**FILES_TLS, "keySecret": "noSuchKey"}), "registry.tls.keySecret",
                 "secret 'noSuchKey' is not set", id="tls-key-secret-missing"),
    pytest.param(set_path("registry.tls", {"mode": "generate", "caFile": "examples/prod/ca.crt"}),
                 "registry.tls.caFile", "applies only with mode: files", id="tls-files-without-mode"),
    pytest.param(set_path("registry.tls", {**FILES_TLS, "certFile": "/etc/passwd"}), "registry.tls.certFile",
                 "no PEM certificate", id="tls-cert-not-pem"),
    pytest.param(set_path("registry.tls", {**FILES_TLS, "caFile": "Pulumi.yaml"}), "registry.tls.caFile",
                 "no PEM certificate", id="tls-ca-not-pem"),
    pytest.param(set_path("registry.tls", {**FILES_TLS, "certFile": "../../nope.pem"}), "registry.tls.certFile",
                 "not found", id="tls-cert-missing"),
    pytest.param(set_path("registry.tls.mode", "acme"), "registry.tls.mode", "'generate' or 'files'", id="tls-mode"),
    pytest.param(set_path("registry.fill.parallel", 0), "registry.fill.parallel", "greater than or equal to 1",
                 id="parallel-zero"),
    pytest.param(set_path("registry.fill.parallel", 100), "registry.fill.parallel", "less than or equal to 16",
                 id="parallel-huge"),
    pytest.param(set_path("registry.fill.lockFile", "../outside.json"), "registry.fill.lockFile",
                 "inside the project", id="lockfile-escape"),
    pytest.param(set_path("registry.fill.lockFile", "/etc/passwd"), "registry.fill.lockFile", "inside the project",
                 id="lockfile-absolute"),
    pytest.param(set_path("registry.fill.lockFile", "out/$(id).json"), "registry.fill.lockFile",
                 "may hold only letters, digits and . _ / -", id="lockfile-injection"),
    pytest.param(set_path("registry.fill.upstreams", {"docker.io": "evil host/x"}),
                 'registry.fill.upstreams["docker.io"]', "host[:port][/path]", id="upstream-mirror"),
    pytest.param(set_path("registry.fill.upstreams", {"notaregistry": "mirror.io"}),
                 "registry.fill.upstreams.notaregistry", "not a registry host", id="upstream-source"),
    pytest.param(set_path("registry.fill.upstreams", {"quay.io:99999": "mirror.io"}),
                 'registry.fill.upstreams["quay.io:99999"]', "not a registry host", id="upstream-source-port"),
    pytest.param(set_path("registry.fill.ociLayout", "/nonexistent/layout"), "registry.fill.ociLayout",
                 "not an OCI image layout", id="oci-layout-missing"),
    pytest.param(set_path("registry.fill.runner", "laptop"), "registry.fill.runner", "'host' or 'admin'",
                 id="runner"),
    pytest.param(set_path("registry.runtime", "docker"), "registry.docker.imageArchive",
                 "required with runtime: docker", id="docker-archive-missing"),
    pytest.param(edits(set_path("registry.port", 8443), set_path("registry.host", "mirror")), "aptMirror.port",
                 "8443 is also registry.port on host 'mirror'; give each service its own port", id="port-taken"),
]


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_registry_settings_are_refused(edit, path, message):
    assert_refused(with_changes(edit), path, message)
