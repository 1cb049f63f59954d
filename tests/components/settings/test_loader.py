"""Reading the stack: top-level keys, the secrets map, `images`, and every problem of every
section reported together in one SettingsError."""

import copy

import pytest

from offline.program import run_program
from offline.stackfile import load_stack

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
