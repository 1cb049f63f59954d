"""Day 2 on the quick-start sandbox, through the offline engine as `make sandbox` runs it: a second
run changes nothing, an edit is previewed and applied alone (in place: the service it changes keeps
running), a component removed from the stack is deleted on its hosts and comes back when re-added."""

from __future__ import annotations

import re
import subprocess

import pytest

from offline import quickstart
from offline.stackfile import PROJECT_DIR
from sandbox.hosts import Sandbox

pytestmark = pytest.mark.e2e

ENDPOINT = "127.0.0.11:5443"
CA = PROJECT_DIR / "out" / "sandbox" / "ca.crt"


@pytest.fixture(scope="module")
def sandbox():
    if quickstart.running():
        pytest.skip("a quick-start sandbox is running (make sandbox); `make sandbox-down` frees its addresses")
    try:
        yield
    finally:
        quickstart.down()


def client():
    return next(host for host in Sandbox(quickstart.RUN_DIR).hosts() if host.name == "client")


def registry_status(user: str, password: str) -> str:
    return subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(CA),
                           "-u", f"{user}:{password}", f"https://{ENDPOINT}/v2/"],
                          capture_output=True, text=True, timeout=30).stdout


def test_make_sandbox_twice_changes_nothing_the_second_time(sandbox, capsys):
    assert quickstart.up() == 0
    first = capsys.readouterr().out
    assert re.search(r"^\d+ created, 0 updated, 0 replaced, 0 deleted, 0 unchanged", first, re.M), first
    assert quickstart.up() == 0
    second = capsys.readouterr().out
    assert re.search(r"Resources: 0 to create, 0 to update, 0 to replace, 0 to delete, \d+ unchanged", second)
    assert "nothing to change" in second and "Updating" not in second, "the second run applies nothing"


def test_an_edit_is_previewed_and_applied_alone_in_place(sandbox, capsys):
    config = quickstart.sandbox_stack()
    password = config.values["airgap-infra:secrets"]["registryReaderPassword"]
    assert registry_status("ci", password) == "401"
    registry = dict(config.values["airgap-infra:registry"])
    registry["users"] = [*registry["users"], {"name": "ci", "passwordSecret": "registryReaderPassword"}]
    edited = config.with_values(registry=registry)
    assert quickstart.up(edited) == 0
    out = capsys.readouterr().out
    preview, _, applying = out.partition("Updating sandbox")
    assert " ~ update   command:remote:Command  registry-install  [stdin]" in preview
    assert "Resources: 0 to create, 1 to update, 0 to replace, 0 to delete" in preview
    assert "[secret]" in preview and password not in out
    assert re.search(r"^0 created, 1 updated, 0 replaced, 0 deleted, \d+ unchanged", applying, re.M), applying
    # Updated in place: the registry still runs, now with the new user (a replacement would have
    # run the old step's delete after the new create, and left it uninstalled).
    assert registry_status("ci", password) == "200"
    assert quickstart.up(edited) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_a_removed_component_is_deleted_and_comes_back_when_re_added(sandbox, capsys):
    config = quickstart.sandbox_stack()
    assert quickstart.up(config) == 0  # back to the stack as the file has it
    capsys.readouterr()
    host = client()
    managed = [f"/etc/docker/certs.d/{ENDPOINT}/ca.crt", "/etc/containerd/certs.d/docker.io/hosts.toml"]
    for path in managed:
        assert host.ssh(f"test -f {path}", check=False).returncode == 0, path
    assert quickstart.up(config.with_values(registryClients=[])) == 0
    out = capsys.readouterr().out
    assert " - delete   command:remote:Command  registry-clients-client" in out
    assert re.search(r"^0 created, 0 updated, 0 replaced, 1 deleted", out, re.M), out
    for path in managed:
        assert host.ssh(f"test -e {path}", check=False).returncode != 0, f"{path} is left behind"
    assert registry_status("airgap", config.values["airgap-infra:secrets"]["registryPassword"]) == "200", \
        "removing the clients leaves the registry alone"
    assert quickstart.up(config) == 0
    out = capsys.readouterr().out
    assert re.search(r"^1 created, 0 updated, 0 replaced, 0 deleted", out, re.M), out
    for path in managed:
        assert host.ssh(f"test -f {path}", check=False).returncode == 0, path
