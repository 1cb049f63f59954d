"""Settings: every bad value is refused before a single resource exists, with the key named."""

import copy

import pytest

from components.settings import SettingsError
from offline.program import run_program
from offline.stackfile import load_stack

SANDBOX = load_stack("sandbox")


def with_changes(edit):
    values = copy.deepcopy(SANDBOX.values)
    project = {k.split(":", 1)[1]: v for k, v in values.items()}
    edit(project)
    config = copy.deepcopy(SANDBOX)
    config.values = {f"airgap-infra:{k}": v for k, v in project.items()}
    return config


def set_path(path, value):
    def edit(config):
        keys = path.split(".")
        node = config
        for key in keys[:-1]:
            node = node.setdefault(key, {}) if not key.isdigit() else node[int(key)]
        last = keys[-1]
        if value is DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def edits(*steps):
    def edit(config):
        for step in steps:
            step(config)
    return edit


DELETE = object()
ED25519 = SANDBOX.values["airgap-infra:hosts"]["registry"]["hostKey"]

CASES = [
    # (id, edit, key path in the message, what the message says)
    ("address-injection", set_path("hosts.registry.address", "127.0.0.11; rm -rf /"), "hosts.registry.address", "neither an IP"),
    ("address-subshell", set_path("hosts.registry.address", "$(reboot)"), "hosts.registry.address", "neither an IP"),
    ("port-zero", set_path("hosts.registry.port", 0), "hosts.registry.port", "greater than or equal to 1"),
    ("port-high", set_path("hosts.registry.port", 70000), "hosts.registry.port", "less than or equal to 65535"),
    ("port-string", set_path("hosts.registry.port", "22"), "hosts.registry.port", "valid integer"),
    ("user-injection", set_path("hosts.registry.user", "root;id"), "hosts.registry.user", "not a login name"),
    ("hostkey-missing", set_path("hosts.registry.hostKey", DELETE), "hosts.registry.hostKey", "required"),
    ("hostkey-garbage", set_path("hosts.registry.hostKey", "ssh-ed25519 not$base64"), "hosts.registry.hostKey", "not base64"),
    ("hostkey-wrong-type", set_path("hosts.registry.hostKey", "ssh-rsa " + ED25519.split()[1]), "hosts.registry.hostKey", "does not hold a ssh-rsa key"),
    ("hostkey-unknown-type", set_path("hosts.registry.hostKey", "ssh-dss AAAA"), "hosts.registry.hostKey", "types:"),
    ("bastion-unknown", set_path("hosts.registry.bastion", "nope"), "hosts.registry.bastion", "no host named 'nope'"),
    ("bastion-self", set_path("hosts.registry.bastion", "registry"), "hosts.registry.bastion", "its own bastion"),
    ("sudo-string", set_path("hosts.registry.sudo", "yes"), "hosts.registry.sudo", "valid boolean"),
    ("host-name", set_path("hosts.Bad_Name", {"address": "127.0.0.9", "hostKey": ED25519}), "hosts.Bad_Name", "not a host name"),
    ("host-misspelt-key", set_path("hosts.registry.adress", "x"), "hosts.registry.adress", "unknown key"),
    ("top-level-misspelt", set_path("registy", {"host": "registry"}), "registy", "unknown key"),
    ("registry-host-unknown", set_path("registry.host", "missing"), "registry.host", "no host named 'missing'"),
    ("registry-port", set_path("registry.port", -1), "registry.port", "greater than or equal to 1"),
    ("runtime", set_path("registry.runtime", "podman"), "registry.runtime", "'package' or 'docker'"),
    ("storage-dotdot", set_path("registry.storagePath", "/var/lib/../etc"), "registry.storagePath", "normalised"),
    ("storage-etc", set_path("registry.storagePath", "/etc/registry"), "registry.storagePath", "outside the data roots"),
    ("storage-relative", set_path("registry.storagePath", "var/lib/x"), "registry.storagePath", "absolute"),
    ("storage-injection", set_path("registry.storagePath", "/var/lib/reg;rm -rf x"), "registry.storagePath", "may hold only"),
    ("storage-root", set_path("registry.storagePath", "/var/lib"), "registry.storagePath", "outside the data roots"),
    ("users-empty", set_path("registry.users", []), "registry.users", "at least 1"),
    ("user-colon", set_path("registry.users.0.name", "a:b"), "registry.users[0].name", "not a registry user name"),
    ("user-secret-missing", set_path("registry.users.0.passwordSecret", "noSuchSecret"), "registry.users[0].passwordSecret", "pulumi config set --secret --path secrets.noSuchSecret"),
    ("users-duplicate", set_path("registry.users.1.name", "airgap"), "registry.users[1].name", "unique"),
    ("tls-files-no-cert", set_path("registry.tls", {"mode": "files", "keySecret": "registryPassword"}), "registry.tls.certFile", "required"),
    ("tls-cert-not-pem", set_path("registry.tls", {"mode": "files", "certFile": "/etc/passwd", "keySecret": "registryPassword"}), "registry.tls.certFile", "no PEM certificate"),
    ("tls-cert-missing", set_path("registry.tls", {"mode": "files", "certFile": "../../nope.pem", "keySecret": "x"}), "registry.tls.certFile", "not found"),
    ("tls-mode", set_path("registry.tls.mode", "acme"), "registry.tls.mode", "'generate' or 'files'"),
    ("parallel-zero", set_path("registry.fill.parallel", 0), "registry.fill.parallel", "greater than or equal to 1"),
    ("parallel-huge", set_path("registry.fill.parallel", 100), "registry.fill.parallel", "less than or equal to 16"),
    ("lockfile-escape", set_path("registry.fill.lockFile", "../outside.json"), "registry.fill.lockFile", "inside the project"),
    ("lockfile-absolute", set_path("registry.fill.lockFile", "/etc/passwd"), "registry.fill.lockFile", "inside the project"),
    ("upstream-mirror", set_path("registry.fill.upstreams", {"docker.io": "evil host/x"}), 'registry.fill.upstreams["docker.io"]', "host[:port][/path]"),
    ("upstream-source", set_path("registry.fill.upstreams", {"notaregistry": "mirror.io"}), "registry.fill.upstreams", "not a registry host"),
    ("oci-layout-missing", set_path("registry.fill.ociLayout", "/nonexistent/layout"), "registry.fill.ociLayout", "not an OCI image layout"),
    ("runner", set_path("registry.fill.runner", "laptop"), "registry.fill.runner", "'host' or 'admin'"),
    ("docker-archive-missing", set_path("registry.runtime", "docker"), "registry.docker.imageArchive", "required with runtime: docker"),
    ("image-unpinned", set_path("images", ["nginx"]), "images[0]", "no tag or digest"),
    ("image-uppercase", set_path("images", ["Nginx:1"]), "images[0]", "not valid"),
    ("image-injection", set_path("images", ["x/$(id):1"]), "images[0]", "not valid"),
    ("image-duplicate", set_path("images", ["nginx:1", "docker.io/library/nginx:1"]), "images[1]", "same as images[0]"),
    ("images-without-registry", set_path("registry", {}), "images", "no registry is configured"),
    ("secret-missing", set_path("secrets.sshPrivateKey", DELETE), "hosts.registry.privateKeySecret", "secrets.sshPrivateKey"),
    ("secret-not-a-key", set_path("secrets.sshPrivateKey", "hunter2-not-a-key"), "hosts.registry.privateKeySecret", "not a PEM/OpenSSH private key"),
    ("secret-empty", set_path("secrets.registryPassword", ""), "registry.users[0].passwordSecret", "is empty"),
    ("mirror-name-injection", set_path("aptMirror.repos.0.name", "deb;rm -rf x"), "aptMirror.repos[0].name", "not a mirror name"),
    ("mirror-name-dotdot", set_path("aptMirror.repos.0.name", "../etc"), "aptMirror.repos[0].name", "not a mirror name"),
    ("mirror-url-scheme", set_path("aptMirror.repos.0.url", "ftp://deb.debian.org/debian"), "aptMirror.repos[0].url", "http:// or https://"),
    ("mirror-url-subshell", set_path("aptMirror.repos.0.url", "http://x/$(reboot)"), "aptMirror.repos[0].url", "characters"),
    ("mirror-url-quote", set_path("aptMirror.repos.0.url", "http://x/a'b"), "aptMirror.repos[0].url", "characters"),
    ("mirror-url-dotdot", set_path("aptMirror.repos.0.url", "http://x/a/../b"), "aptMirror.repos[0].url", "characters"),
    ("mirror-dist", set_path("aptMirror.repos.0.distribution", "bookworm; id"), "aptMirror.repos[0].distribution", "not a distribution"),
    ("mirror-dist-dotdot", set_path("aptMirror.repos.0.distribution", "../../x"), "aptMirror.repos[0].distribution", "not a distribution"),
    ("mirror-component", set_path("aptMirror.repos.0.components", ["Main"]), "aptMirror.repos[0].components[0]", "not a component"),
    ("mirror-arch", set_path("aptMirror.repos.0.architectures", ["x86"]), "aptMirror.repos[0].architectures[0]", "not a Debian architecture"),
    ("mirror-filter-newline", set_path("aptMirror.repos.0.filter", "a\nb"), "aptMirror.repos[0].filter", "aptly filter"),
    ("mirror-no-keys", set_path("aptMirror.repos.0.keys", []), "aptMirror.repos[0].keys", "signing key"),
    ("mirror-key-not-a-key", set_path("aptMirror.repos.0.keys", ["Pulumi.yaml"]), "aptMirror.repos[0].keys[0]", "not an armored OpenPGP public key"),
    ("mirror-storage", set_path("aptMirror.storagePath", "/home/mirror"), "aptMirror.storagePath", "outside the data roots"),
    ("mirror-schedule", set_path("aptMirror.schedule", "daily; reboot"), "aptMirror.schedule", "OnCalendar"),
    ("mirror-signing-key", set_path("secrets.mirrorSigningKey", "not a key"), "aptMirror.signingKeySecret", "armored GPG private key"),
    ("mirror-same-port", set_path("rpmMirror.port", 8443), "rpmMirror.port", "is also aptMirror.port on host"),
    ("rpm-id", set_path("rpmMirror.repos.0.id", "a b"), "rpmMirror.repos[0].id", "not a repository id"),
    ("rpm-no-key", set_path("rpmMirror.repos.0.gpgKey", DELETE), "rpmMirror.repos[0].gpgKey", "unsigned"),
    ("rpm-server", set_path("rpmMirror.server", "lighttpd"), "rpmMirror.server", "'nginx' or 'httpd'"),
    ("mirror-url-and-tree", set_path("aptMirror.repos.0.tree", "/srv/airgap/apt/debian"), "aptMirror.repos[0]", "exactly one"),
    ("mirror-neither-url-nor-tree", set_path("aptMirror.repos.0.url", DELETE), "aptMirror.repos[0]", "exactly one"),
    ("mirror-tree-relative", set_path("aptMirror.repos.0.tree", "srv/airgap"), "aptMirror.repos[0].tree", "absolute"),
    ("mirror-tree-injection", set_path("aptMirror.repos.0.tree", "/srv/a;reboot"), "aptMirror.repos[0].tree", "may hold only"),
    ("mirror-tree-debmirror", edits(set_path("aptMirror.repos.0.url", DELETE), set_path("aptMirror.repos.0.tree", "/srv/airgap/apt/debian"),
                                    set_path("aptMirror.method", "debmirror")), "aptMirror.repos[0].tree", "method: aptly"),
    ("rpm-baseurl-and-tree", set_path("rpmMirror.repos.0.tree", "/srv/airgap/rpm/baseos"), "rpmMirror.repos[0]", "not both"),
    ("client-unknown", set_path("mirrorClients.0.host", "ghost"), "mirrorClients[0].host", "no host named"),
    ("artifact-dotdot", set_path("fileServer.artifacts.0.path", "../etc/passwd"), "fileServer.artifacts[0].path", "not an artifact path"),
    ("artifact-absolute", set_path("fileServer.artifacts.0.path", "/etc/passwd"), "fileServer.artifacts[0].path", "not an artifact path"),
    ("artifact-injection", set_path("fileServer.artifacts.0.path", "a;rm -rf x"), "fileServer.artifacts[0].path", "not an artifact path"),
    ("artifact-index-name", set_path("fileServer.artifacts.0.path", "SHA256SUMS"), "fileServer.artifacts[0].path", "not an artifact path"),
    ("artifact-sha", set_path("fileServer.artifacts.0.sha256", "abc"), "fileServer.artifacts[0].sha256", "64 lowercase hex"),
    ("artifact-sha-wrong", set_path("fileServer.artifacts.0.sha256", "0" * 64), "fileServer.artifacts[0].sha256", "has sha256"),
    ("artifact-both", set_path("fileServer.artifacts.3.file", "sandbox/data/artifacts/falco_rules.yaml"), "fileServer.artifacts[3]", "exactly one of url and file"),
    ("artifact-url", set_path("fileServer.artifacts.3.url", "http://x/`id`"), "fileServer.artifacts[3].url", "characters"),
    ("registry-client-none", set_path("registryClients.0", {"host": "client"}), "registryClients[0]", "docker: true"),
    ("registry-client-upstream", set_path("registryClients.0.upstreams", ["localhost"]), "registryClients[0].upstreams[0]", "not a registry host"),
    ("trivy-layout", set_path("trivyDb.ociLayout", "/nonexistent"), "trivyDb.ociLayout", "not an OCI image layout"),
    ("ck8s-plugin-unknown", set_path("ck8s.opensearchPlugins", ["opensearch/absent.zip"]), "ck8s.opensearchPlugins[0]", "no fileServer artifact at"),
    ("ck8s-email", set_path("ck8s.alertEmail", "ops; reboot"), "ck8s.alertEmail", "not an e-mail address"),
]


@pytest.mark.parametrize("edit,path,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_fails_before_any_resource(edit, path, message):
    run = run_program(with_changes(edit))
    assert isinstance(run.error, SettingsError), run.error
    matching = [p for p in run.error.problems if p.startswith((f"{path}:", f"{path}."))]
    assert matching, f"no problem names {path}: {run.error.problems}"
    assert any(message in p for p in matching), matching
    assert run.records == [], "a resource was created before the configuration was checked"


def test_plain_text_secrets_are_refused():
    config = copy.deepcopy(SANDBOX)
    config.secret_keys = set()
    run = run_program(config)
    assert isinstance(run.error, SettingsError)
    assert any(p.startswith("secrets: holds plain-text values") for p in run.error.problems)
    assert run.records == []


def test_errors_never_quote_secret_values():
    run = run_program(with_changes(set_path("secrets.sshPrivateKey", "hunter2-not-a-key")))
    assert "hunter2" not in str(run.error)


def test_every_problem_is_reported_at_once():
    def edit(config):
        set_path("registry.port", 0)(config)
        set_path("images", ["nginx"])(config)
        set_path("hosts.registry.user", "Root")(config)
    run = run_program(with_changes(edit))
    assert len(run.error.problems) >= 3


def test_cases_are_many_and_distinct():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)
