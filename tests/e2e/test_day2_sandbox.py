"""Day 2 on the quick-start sandbox, through the offline engine as `make sandbox` runs it: a second
run changes nothing, an edit is previewed and applied alone (in place: the service it changes keeps
running), a component removed from the stack is deleted on its hosts and comes back when re-added."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
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


def closed(address: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=2):
        return False
    return True


def host(name: str):
    return next(h for h in Sandbox(quickstart.RUN_DIR).hosts() if h.name == name)


def fetched(url: str) -> str:
    """sha256 of what a served URL returns, over TLS with the stack's CA."""
    body = subprocess.run(["curl", "-sf", "--cacert", str(CA), url], capture_output=True, timeout=30, check=True).stdout
    return hashlib.sha256(body).hexdigest()


def without(config, **changes):
    return config.with_values(**changes)


# Each component: what removing it leaves out of the stack, its unit, where it listens, what stays
# on disk, what it serves (to show the same content comes back) and what a client had of it.
REMOVALS = [
    pytest.param(
        lambda c: without(c, registry={}, images=[], registryClients=[], trivyDb={}),
        ("registry", "airgap-registry"), ("127.0.0.11", 5443), "/var/lib/airgap/registry/docker/registry/v2/blobs",
        lambda c: json.loads((PROJECT_DIR / "out/sandbox/image-lock.json").read_text()),
        f"/etc/docker/certs.d/{ENDPOINT}", id="registry"),
    pytest.param(
        lambda c: without(c, aptMirror={}, mirrorClients=[{"host": "client", "rpm": True}]),
        None, ("127.0.0.12", 8443), "/var/lib/airgap/apt-mirror",
        lambda c: fetched("https://127.0.0.12:8443/upstream-debian/dists/bookworm/InRelease"),
        "/etc/apt/sources.list.d/airgap-upstream-debian.sources", id="apt-mirror"),
    pytest.param(
        lambda c: without(c, rpmMirror={}, mirrorClients=[{"host": "client", "apt": True}]),
        None, ("127.0.0.12", 8444), "/var/lib/airgap/rpm-mirror",
        lambda c: fetched("https://127.0.0.12:8444/upstream-rpm/repodata/repomd.xml"),
        "/etc/yum.repos.d/airgap-upstream-rpm.repo", id="rpm-mirror"),
    pytest.param(
        lambda c: without(c, fileServer={}, ck8s={}),
        None, ("127.0.0.12", 8445), "/var/lib/airgap/files",
        lambda c: fetched("https://127.0.0.12:8445/SHA256SUMS"),
        None, id="file-server"),
]


@pytest.mark.parametrize("removed,unit,listen,kept,served,on_client", REMOVALS)
def test_removing_a_component_stops_it_keeps_its_data_and_re_adding_serves_the_same(
        sandbox, capsys, removed, unit, listen, kept, served, on_client):
    config = quickstart.sandbox_stack()
    assert quickstart.up(config) == 0
    before = served(config)
    capsys.readouterr()
    assert quickstart.up(removed(config)) == 0
    out = capsys.readouterr().out
    # Clients of a removed mirror are updated (they stop using it); nothing else changes.
    assert re.search(r"^0 created, [01] updated, 0 replaced, [1-9]\d* deleted", out, re.M), out
    assert closed(*listen), f"{listen} still answers after the removal"
    if unit is not None:
        machine, name = unit
        assert host(machine).ssh(f"systemctl is-active {name}", check=False).stdout.strip() != "active"
    on = host("registry" if listen[0] == "127.0.0.11" else "mirror")
    assert on.ssh(f"test -d {kept} && ls -A {kept} | head -1", check=False).stdout.strip(), f"{kept} was not kept"
    if on_client is not None:
        assert host("client").ssh(f"test -e {on_client}", check=False).returncode != 0, \
            f"the client still points at the removed component ({on_client})"
    assert quickstart.up(config) == 0
    out = capsys.readouterr().out
    assert re.search(r"^[1-9]\d* created, [01] updated, 0 replaced, 0 deleted", out, re.M), out
    assert not closed(*listen)
    assert served(config) == before, "re-added, it serves what it served before"


def test_removing_the_mirror_clients_puts_the_hosts_own_sources_back(sandbox, capsys):
    config = quickstart.sandbox_stack()
    assert quickstart.up(config) == 0
    machine = host("client")
    airgap_sources = "ls /etc/apt/sources.list.d/ /etc/yum.repos.d/ 2>/dev/null"
    with_mirrors = machine.ssh(airgap_sources).stdout
    assert "airgap" in with_mirrors
    capsys.readouterr()
    assert quickstart.up(without(config, mirrorClients=[])) == 0
    removed = machine.ssh(airgap_sources).stdout
    assert "airgap-upstream" not in removed, removed
    assert machine.ssh("ls /etc/apt/sources.list.d/airgap-moved 2>/dev/null | wc -l").stdout.strip() in ("", "0")
    assert quickstart.up(config) == 0
    assert machine.ssh(airgap_sources).stdout == with_mirrors


# Drift: something changed by hand on a host, the step that keeps it, and what proves the repair.
DRIFTS = [
    pytest.param("mirror", "echo '# edited by hand' >> /etc/nginx/sites-enabled/airgap-apt-mirror.conf",
                 "apt-mirror-install", "/etc/nginx/sites-enabled/airgap-apt-mirror.conf: content changed",
                 "! grep -q 'edited by hand' /etc/nginx/sites-enabled/airgap-apt-mirror.conf", id="nginx-site-edited"),
    pytest.param("client", "rm /etc/apt/sources.list.d/airgap-upstream-debian.sources",
                 "mirror-clients-client", "/etc/apt/sources.list.d/airgap-upstream-debian.sources: missing",
                 "test -s /etc/apt/sources.list.d/airgap-upstream-debian.sources", id="apt-source-deleted"),
    pytest.param("client", f"""echo '{{"insecure-registries": ["{ENDPOINT}"]}}' > /etc/docker/daemon.json""",
                 "registry-clients-client", "/etc/docker/daemon.json: content changed",
                 f"! grep -q '{ENDPOINT}' /etc/docker/daemon.json", id="daemon-json-changed"),
    pytest.param("registry", "systemctl stop airgap-registry",
                 "registry-install", "airgap-registry.service: inactive",
                 "systemctl is-active airgap-registry", id="registry-stopped"),
    pytest.param("client", f"echo not-our-ca > /etc/docker/certs.d/{ENDPOINT}/ca.crt",
                 "registry-clients-client", f"/etc/docker/certs.d/{ENDPOINT}/ca.crt: content changed",
                 f"grep -q 'BEGIN CERTIFICATE' /etc/docker/certs.d/{ENDPOINT}/ca.crt", id="ca-file-replaced"),
    pytest.param("mirror", "echo altered > /var/lib/airgap/files/falco/falco_rules.yaml",
                 "file-server-install", "/var/lib/airgap/files/falco/falco_rules.yaml: content changed",
                 "cd /var/lib/airgap/files && sha256sum --quiet -c SHA256SUMS", id="served-file-altered"),
]


@pytest.mark.parametrize("machine,change,step,named,repaired", DRIFTS)
def test_drift_is_named_by_preview_repaired_by_up_and_gone(sandbox, capsys, machine, change, step, named, repaired):
    config = quickstart.sandbox_stack()
    assert quickstart.up(config) == 0
    capsys.readouterr()
    host(machine).ssh(change)
    assert quickstart.preview() == 0
    preview = capsys.readouterr().out
    assert f" ~ update   command:remote:Command  {step}  [drift]" in preview, preview
    assert f"drifted: {named}" in preview, preview
    assert re.search(r"Resources: 0 to create, [1-9]\d* to update, 0 to replace, 0 to delete", preview), preview
    assert quickstart.up(config) == 0
    applied = capsys.readouterr().out
    assert re.search(rf"~ update +command:remote:Command  {step}  \[drift\]  \(update", applied), applied
    assert host(machine).ssh(repaired, check=False).returncode == 0, f"not repaired: {repaired}"
    assert quickstart.preview() == 0
    assert re.search(r"Resources: 0 to create, 0 to update, 0 to replace, 0 to delete", capsys.readouterr().out)


def test_a_preview_without_drift_costs_one_round_trip_per_host(sandbox, capsys, monkeypatch):
    from offline.executor import Executor

    assert quickstart.up() == 0
    capsys.readouterr()
    reads: list[str] = []
    original = Executor.read

    def counted(self, connection, command):
        reads.append(connection["host"])
        return original(self, connection, command)

    monkeypatch.setattr(Executor, "read", counted)
    assert quickstart.preview() == 0
    assert "0 to update" in capsys.readouterr().out
    assert sorted(reads) == sorted(set(reads)), f"one check per host, not {reads}"
    assert set(reads) == {"127.0.0.11", "127.0.0.12", "127.0.0.13"}, "every host that runs steps is checked"


def test_drift_is_reported_from_the_program_alone_beside_the_pulumi_cli(sandbox, capsys):
    import io

    from offline import cli

    config = quickstart.sandbox_stack()
    assert quickstart.up(config) == 0
    clean = io.StringIO()
    assert cli.drift(config, out=clean) == 0, clean.getvalue()
    host("client").ssh("chmod 0600 /etc/apt/sources.list.d/airgap-upstream-debian.sources")
    report = io.StringIO()
    assert cli.drift(config, out=report) == 3
    assert "mirror-clients-client: /etc/apt/sources.list.d/airgap-upstream-debian.sources: mode 600, not 644" \
        in report.getvalue(), report.getvalue()
    assert quickstart.up(config) == 0
    assert cli.drift(config, out=io.StringIO()) == 0


def test_destroy_removes_everything_the_stack_made_and_keeps_the_data(sandbox, capsys):
    """Last in this module: the sandbox's hosts stay up, with nothing of the stack running."""
    from offline import cli

    config = quickstart.sandbox_stack()
    assert quickstart.up(config) == 0
    capsys.readouterr()
    assert cli.command("destroy", config, quickstart.ENGINE_STATE) == 0
    out = capsys.readouterr().out
    summary = re.search(r"^0 created, 0 updated, 0 replaced, (\d+) deleted, 0 unchanged", out, re.M)
    assert summary and int(summary.group(1)) >= 20, out
    for address, port in (("127.0.0.11", 5443), ("127.0.0.12", 8443), ("127.0.0.12", 8444), ("127.0.0.12", 8445)):
        assert closed(address, port), f"{address}:{port} still answers"
    assert host("registry").ssh("systemctl is-active airgap-registry", check=False).stdout.strip() != "active"
    client_files = host("client").ssh("ls /etc/apt/sources.list.d /etc/yum.repos.d /etc/docker/certs.d").stdout
    assert "airgap-upstream" not in client_files and ENDPOINT not in client_files, client_files
    for machine, kept in (("registry", "/var/lib/airgap/registry/docker/registry/v2/blobs"),
                          ("mirror", "/var/lib/airgap/apt-mirror"), ("mirror", "/var/lib/airgap/files/falco")):
        assert host(machine).ssh(f"ls -A {kept} | head -1").stdout.strip(), f"{kept} was not kept"
    assert not json.loads(quickstart.ENGINE_STATE.read_text())["resources"], "the state is empty"
    assert host("registry").ssh("ls /var/lib/airgap/manifests 2>/dev/null | wc -l").stdout.strip() == "0"
