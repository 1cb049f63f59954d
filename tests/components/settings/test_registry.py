"""`registry`: host, port, runtime, storage, users, TLS and the fill, each refused with the key
named. The TLS cases hold for every service: they all declare the same TLS rules."""

import json

import pytest

from offline.program import run_program

from .hostile_files import other_key, with_file
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
    # destructive or surprising paths (purge: true deletes the storage)
    pytest.param(set_path("registry.storagePath", "/var/lib/dpkg"), "registry.storagePath", "outside the data roots",
                 id="storage-dpkg"),
    pytest.param(set_path("registry.storagePath", "/opt/containerd"), "registry.storagePath",
                 "outside the data roots", id="storage-opt-vendor"),
    pytest.param(set_path("registry.storagePath", "/var/lib/airgap/transfer"), "registry.storagePath",
                 "overlaps /var/lib/airgap/transfer, which receives OCI layouts", id="storage-transfer-dir"),
    pytest.param(set_path("registry.storagePath", "/var/lib/airgap/images/registry"), "registry.storagePath",
                 "overlaps /var/lib/airgap/images, which holds image archives", id="storage-in-program-dir"),
    pytest.param(set_path("registry.fill.lockFile", "__main__.py"), "registry.fill.lockFile",
                 "on or inside the project's own '__main__.py'", id="lockfile-over-program"),
    pytest.param(set_path("registry.fill.lockFile", "components/settings/__init__.py"), "registry.fill.lockFile",
                 "the project's own 'components'", id="lockfile-over-source"),
    pytest.param(set_path("registry.fill.lockFile", "Pulumi.prod.yaml"), "registry.fill.lockFile",
                 "the project's own 'Pulumi.prod.yaml'", id="lockfile-over-stack"),
    pytest.param(set_path("registry.fill.lockFile", "-n"), "registry.fill.lockFile", "starts with '.' or '-'",
                 id="lockfile-option"),
    pytest.param(set_path("registry.fill.lockFile", ".git/hooks/pre-commit"), "registry.fill.lockFile",
                 "starts with '.' or '-'", id="lockfile-git-hook"),
    # image-registry keys read as image references read them
    pytest.param(set_path("registry.fill.upstreams", {"docker.io": "127.0.0.2:5000/docker.io",
                                                      "DOCKER.IO": "127.0.0.2:5000/other"}),
                 "registry.fill.upstreams", "'docker.io' and 'DOCKER.IO' both name the registry docker.io",
                 id="upstream-case-twice"),
    pytest.param(set_path("registry.fill.upstreams", {"docker.io": "127.0.0.2:5000/docker.io",
                                                      "index.docker.io": "127.0.0.2:5000/other"}),
                 "registry.fill.upstreams", "both name the registry docker.io", id="upstream-alias-twice"),
    pytest.param(set_path(r"registry.fill.upstreams.quay\.io", "docker.io/quay"), 'registry.fill.upstreams["quay.io"]',
                 "would be fetched from docker.io, which this stack maps to 127.0.0.2:5000/docker.io",
                 id="upstream-via-mapped-registry"),
    pytest.param(set_path(r"registry.fill.upstreams.quay\.io", "INDEX.DOCKER.IO/quay"),
                 'registry.fill.upstreams["quay.io"]', "would be fetched from docker.io",
                 id="upstream-via-alias-uppercase"),
    pytest.param(set_path(r"registry.fill.upstreams.quay\.io", "index.docker.io/quay"),
                 'registry.fill.upstreams["quay.io"]', "would be fetched from docker.io", id="upstream-via-alias"),
    pytest.param(set_path(r"registry.fill.upstreams.docker\.io", "transfer-mirror/dockerhub"),
                 'registry.fill.upstreams["docker.io"]', "skopeo would fetch it from Docker Hub",
                 id="upstream-mirror-on-docker-hub"),
    # private material in public places
    pytest.param(set_path("registry.tls", {**FILES_TLS, "caFile": "examples/prod/registry.crt"}),
                 "registry.tls.caFile", "CN=registry.prod.example.internal is not a CA certificate", id="tls-ca-leaf"),
    pytest.param(edits(set_path("registry.tls", {**FILES_TLS, "keySecret": "tlsKey"}), set_path("secrets.tlsKey",
                                                                                              other_key()),
                       with_file("registry.tls.certFile", "cert-with-key.pem")),
                 "registry.tls.certFile", "holds a PRIVATE KEY block", id="tls-cert-with-key"),
    pytest.param(edits(set_path("registry.tls", {**FILES_TLS, "keySecret": "tlsKey"}),
                       set_path("secrets.tlsKey", other_key()), with_file("registry.tls.caFile", "other-ca.pem")),
                 "registry.tls.caFile", "no certificate in it issued certFile's chain", id="tls-ca-other-issuer"),
    pytest.param(edits(set_path("registry.tls", {**FILES_TLS, "keySecret": "tlsKey"}), set_path("secrets.tlsKey",
                                                                                              other_key())),
                 "registry.tls.keySecret", "is not the private key of certFile's certificate", id="tls-key-mismatch"),
    pytest.param(set_path("registry.tls", FILES_TLS), "registry.tls.keySecret",
                 "secret 'registryPassword' is not a PEM private key", id="tls-key-not-a-key"),
]


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_registry_settings_are_refused(edit, path, message):
    assert_refused(with_changes(edit), path, message)


@pytest.mark.parametrize("key", ["DOCKER.IO", "index.docker.io", "Index.Docker.IO"])
def test_an_upstream_key_is_normalised_as_image_references_are(key):
    """`DOCKER.IO` used to be kept as written, never matched, and the fill then went to Docker Hub."""
    upstreams = {"gcr.io": "127.0.0.2:5000/gcr.io", "ghcr.io": "127.0.0.2:5000/ghcr.io",
                 "quay.io": "127.0.0.2:5000/quay.io", "registry.k8s.io": "127.0.0.2:5000/registry.k8s.io",
                 key: "127.0.0.2:5000/docker.io"}
    run = run_program(with_changes(set_path("registry.fill.upstreams", upstreams))).raise_error()
    script = run.named("registry-fill").inputs["create"]
    plan = json.loads(script.split('"$work/plan.json" <<')[1].split("\n", 1)[1].split("\nAIRGAP_EOF", 1)[0])
    sources = {image["source"]: image["from"] for image in plan["images"]}
    assert sources["docker.io/library/nginx:1.25"] == "docker://127.0.0.2:5000/docker.io/library/nginx:1.25"
    fetched = [location for location in sources.values() if location.startswith("docker://")]
    assert len(fetched) == 28 and all(location.startswith("docker://127.0.0.2:5000/") for location in fetched)
