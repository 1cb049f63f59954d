"""Reading the stack: top-level keys, the secrets map, `images`, and every problem of every
section reported together in one SettingsError."""

import copy

import pytest

from components.settings import key_material
from offline.program import run_program
from offline.stackfile import PROJECT_DIR, load_stack

from .stack_edits import SANDBOX, assert_refused, edits, problems, set_path, with_changes

CASES = [
    pytest.param(set_path("registy", {"host": "registry"}), "registy", "unknown key; known keys are", id="misspelt"),
    pytest.param(set_path("secrets", ["a", "list"]), "secrets", "must map names to strings", id="secrets-not-a-map"),
    pytest.param(set_path("images", ["nginx"]), "images[0]", "no tag or digest", id="image-unpinned"),
    pytest.param(set_path("images", ["Nginx:1"]), "images[0]", "not valid", id="image-uppercase"),
    pytest.param(set_path("images", ["x/$(id):1"]), "images[0]", "not valid", id="image-injection"),
    pytest.param(set_path("images", {"nginx": "1"}), "images", "valid tuple", id="images-not-a-list"),
    pytest.param(set_path("images", ["nginx:1", "docker.io/library/nginx:1"]), "images[1]",
                 "'docker.io/library/nginx:1' is the same as images[0]; each must be unique", id="image-duplicate"),
    pytest.param(edits(set_path("registry", {}), set_path("registryClients", []), set_path("trivyDb", {})), "images",
                 "no registry is configured; it holds the images", id="images-without-registry"),
    # a secret placed inside another value would be planned in plain text (or masked mid-string)
    pytest.param(edits(set_path("secrets.registryReaderPassword", "reader-pass-123"),
                       set_path("aptMirror.repos.0.filter", "Name (reader-pass-123)")),
                 "aptMirror.repos[0].filter", "holds the value of secret 'registryReaderPassword'",
                 id="secret-inside-a-value"),
    pytest.param(set_path("adminFileRoots", "/srv/airgap"), "adminFileRoots", "must be a list", id="roots-not-a-list"),
    pytest.param(set_path("images", "nginx:1.25"), "images", "must be a list", id="images-a-string"),
]


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_top_level_settings_are_refused(edit, path, message):
    assert_refused(with_changes(edit), path, message)


@pytest.mark.parametrize("stack", ["dev", "prod", "sandbox"])
def test_every_shipped_stack_is_accepted(stack):
    run = run_program(load_stack(stack))
    assert run.error is None, run.error


def test_plain_text_secrets_are_refused():
    config = copy.deepcopy(SANDBOX)
    config.secret_keys = set()
    assert any(p.startswith("secrets: holds plain-text values") for p in problems(config))


def test_a_plain_entry_beside_encrypted_ones_is_refused(monkeypatch, tmp_path):
    """Pulumi marks `secrets` secret as a whole when any entry is; the stack file says which are not."""
    text = (PROJECT_DIR / "Pulumi.sandbox.yaml").read_text().replace(
        "  airgap-infra:secrets:\n", "  airgap-infra:secrets:\n    plainPassword: visible-in-the-file\n")
    (tmp_path / "Pulumi.sandbox.yaml").write_text(text)
    monkeypatch.setattr(key_material, "stack_file", lambda stack: tmp_path / f"Pulumi.{stack}.yaml")
    config = load_stack("sandbox", text=text)
    assert "airgap-infra:secrets" in config.secret_keys, "the CLI calls the whole object secret"
    reported = problems(config)
    assert reported == ["secrets.plainPassword: stored in plain text in Pulumi.sandbox.yaml; set it with "
                        "`pulumi config set --secret --path secrets.plainPassword …`"]


@pytest.mark.parametrize("stack", ["dev", "prod", "sandbox"])
def test_every_shipped_secret_is_encrypted_entry_by_entry(stack):
    assert key_material.plain_secret_entries(stack, "airgap-infra") == []


def test_errors_never_quote_secret_values():
    reported = problems(with_changes(edits(set_path("secrets.sshPrivateKey", "hunter2-not-a-key"),
                                           set_path("secrets.mirrorSigningKey", "hunter3-not-a-key"))))
    assert len(reported) == 5  # four hosts and the mirror name the bad secrets ...
    assert not any("hunter" in p for p in reported)  # ... without saying what they hold


def test_field_problems_of_every_section_come_out_together():
    reported = problems(with_changes(edits(
        set_path("registry.port", 0),
        set_path("images", ["nginx"]),
        set_path("hosts.registry.user", "Root"),
        set_path("aptMirror.schedule", "daily; reboot"),
        set_path("ck8s.alertEmail", "ops"),
    )))
    assert [p.split(":")[0] for p in reported] == [
        "hosts.registry.user", "registry.port", "images[0]", "aptMirror.schedule", "ck8s.alertEmail"]


def test_rule_problems_of_every_section_come_out_together():
    reported = problems(with_changes(edits(
        set_path("hosts.registry.bastion", "registry"),
        set_path("secrets.registryPassword", ""),
        set_path("rpmMirror.port", 8443),
        set_path("mirrorClients.0.host", "ghost"),
        set_path("fileServer.artifacts.0.sha256", "0" * 64),
        set_path("ck8s.dnsServers", []),
    )))
    assert [p.split(":")[0] for p in reported] == [
        "rpmMirror.port", "hosts.registry.bastion", "registry.users[0].passwordSecret", "mirrorClients[0].host",
        "fileServer.artifacts[0].sha256", "ck8s.dnsServers"]
