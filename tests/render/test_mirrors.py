"""Mirror renderers: tables, then the text through real tools (bash -n, nginx -t,
systemd-analyze verify), and hostile values shown to arrive as data, never as code."""

import dataclasses
import json
import os
import subprocess

import pytest

from components.apt_mirror import deb822
from components.render import apt_mirror, mirror_clients, nginx, rpm_mirror, systemd
from components.render.shell import step_script
from components.rpm_mirror import repo_file
from offline import tls_emulation

from . import stub_commands

HOSTILE_FILTER = "Name (% $(touch /tmp/pwned)*) | `id` ; rm -rf x"
APT_REPO = apt_mirror.AptRepo(
    name="debian", url="http://deb.example.org/debian", distribution="bookworm-updates",
    components=("main", "contrib"), architectures=("amd64", "arm64"), keys=("KEY\n",),
    filter=HOSTILE_FILTER, filter_with_deps=True)
APT = apt_mirror.AptMirrorSpec(root="/srv/apt mirror", method="aptly", keep=3, schedule="Mon *-*-* 03:00:00",
                               repos=(APT_REPO,))
RPM_REPO = rpm_mirror.RpmRepo(id="rocky9-baseos", baseurl="https://dl.example.org/rocky/9/BaseOS/x86_64/os",
                              key="KEY\n", releasever="9", arches=("x86_64", "noarch"), metadata_signed=True)
RPM = rpm_mirror.RpmMirrorSpec(root="/srv/rpm", keep=2, schedule="daily", repos=(RPM_REPO,))


def bash_parses(text: str) -> None:
    subprocess.run(["bash", "-n", "-c", text], check=True)


def test_aptly_config_table():
    config = json.loads(apt_mirror.aptly_config(APT))
    assert config["rootDir"] == "/srv/apt mirror/aptly"
    assert config["gpgDisableVerify"] is False and config["gpgDisableSign"] is False
    assert config["dependencyFollowRecommends"] is False


def test_update_programs_parse():
    bash_parses(apt_mirror.update_program(APT))
    bash_parses(apt_mirror.update_program(apt_mirror.AptMirrorSpec(**{**APT.__dict__, "method": "debmirror"})))
    bash_parses(rpm_mirror.update_program(RPM))


def test_hostile_values_reach_the_functions_as_data(tmp_path):
    """The per-repository call line, run with a stand-in function, hands over each value intact."""
    program = apt_mirror.update_program(APT)
    call = next(line for line in program.splitlines() if line.startswith("aptly_repo "))
    stub = 'aptly_repo() { printf "%s\\n" "$@"; }\n' + call
    result = subprocess.run(["bash", "-c", stub], capture_output=True, text=True, check=True)
    args = result.stdout.splitlines()
    assert args == ["debian", "http://deb.example.org/debian", "bookworm-updates", "amd64,arm64", HOSTILE_FILTER,
                    "yes", "no", "/srv/apt mirror/keyrings/debian.gpg", "debian", "main", "contrib"]
    assert not (tmp_path / "pwned").exists()


TREE_REPO = apt_mirror.AptRepo(**{**APT_REPO.__dict__, "url": "", "tree": "/srv/air gap/apt/$(touch pwned)"})


def _function(program: str, name: str) -> str:
    start = program.index(f"\n{name}() {{") + 1
    return program[start:program.index("\n}\n", start) + 3]


def test_a_bundle_tree_is_served_on_loopback_for_the_update_only(tmp_path):
    """The tree call lines hand the path over intact, aptly reads the served URL, the tree's path
    (not the port) identifies it; the real serve_tree serves the directory and stop_trees ends it."""
    program = apt_mirror.update_program(apt_mirror.AptMirrorSpec(**{**APT.__dict__, "repos": (TREE_REPO,)}))
    bash_parses(program)
    start = program.index("\nserve_tree ") + 1
    calls = program[start:program.index("stop_trees\n", start) + len("stop_trees\n")]
    stub = ('serve_tree() { printf "serve %s\\n" "$1"; TREE_URL=http://127.0.0.1:1; }\n'
            'aptly_repo() { printf "source %s\\n" "$AIRGAP_SOURCE"; printf "%s\\n" "$@"; }\n'
            'stop_trees() { echo stopped; }\n' + calls)
    lines = subprocess.run(["bash", "-c", stub], capture_output=True, text=True, check=True,
                           cwd=tmp_path).stdout.splitlines()
    assert lines[:4] == ["serve /srv/air gap/apt/$(touch pwned)", "source tree:/srv/air gap/apt/$(touch pwned)",
                         "debian", "http://127.0.0.1:1"]
    assert lines[-1] == "stopped" and not (tmp_path / "pwned").exists()

    tree = tmp_path / "tree"
    (tree / "dists/bookworm").mkdir(parents=True)
    (tree / "dists/bookworm/InRelease").write_text("signed\n")
    script = ("set -euo pipefail\nTREE_PIDS=()\n" + _function(program, "stop_trees") + _function(program, "serve_tree")
              + 'serve_tree "$1"\npython3 -c \'import sys, urllib.request; '
              + 'print(urllib.request.urlopen(sys.argv[1]).read().decode(), end="")\' '
              + '"$TREE_URL/dists/bookworm/InRelease"\npid=${TREE_PIDS[0]}\nstop_trees\n'
              + 'if kill -0 "$pid" 2>/dev/null; then echo still-running; fi\necho "$TREE_URL"\n')
    out = subprocess.run(["bash", "-c", script, "bash", str(tree)], capture_output=True, text=True, check=True,
                         timeout=60).stdout.splitlines()
    assert out[0] == "signed" and "still-running" not in out
    assert out[-1].startswith("http://127.0.0.1:")
    serve_only = "set -e\nTREE_PIDS=()\n" + _function(program, "serve_tree") + 'serve_tree "$1"'
    missing = subprocess.run(["bash", "-c", serve_only, "bash", str(tmp_path)], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode != 0 and "not a Debian archive tree" in missing.stderr


def test_aptly_never_skips_signatures_unless_asked():
    program = apt_mirror.update_program(APT)
    call = next(line for line in program.splitlines() if line.startswith("aptly_repo "))
    assert " no " in call.replace("'", " ")
    unsigned_repo = apt_mirror.AptRepo(**{**APT_REPO.__dict__, "ignore_signatures": True})
    unsigned = apt_mirror.AptMirrorSpec(**{**APT.__dict__, "repos": (unsigned_repo,)})
    assert "-ignore-signatures" in apt_mirror.update_program(unsigned)


def test_rpm_program_keeps_signed_metadata():
    program = rpm_mirror.update_program(RPM)
    assert "--gpgcheck --download-metadata" in program
    assert "createrepo" not in program.split("sync_repo() {", 1)[1], "upstream metadata is never regenerated"
    assert "repomd.xml.asc is missing; refusing to publish unsigned metadata" in program


def test_units_pass_systemd_analyze(tmp_path):
    (tmp_path / "airgap-test.service").write_text(systemd.oneshot_service("test", "/bin/true"))
    (tmp_path / "airgap-test.timer").write_text(systemd.timer("test", "Mon *-*-* 03:00:00"))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "airgap-test.timer"),
                             str(tmp_path / "airgap-test.service")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_schedule_is_a_real_calendar_expression():
    for schedule in ("daily", "Mon *-*-* 03:00:00", "*-*-01 00:00:00"):
        subprocess.run(["systemd-analyze", "calendar", schedule], check=True, capture_output=True)


def _nginx_check(tmp_path, site: nginx.Site) -> subprocess.CompletedProcess:
    key = tls_emulation.outputs("tls:index/privateKey:PrivateKey", "nginx-test/key", {})["privateKeyPem"]
    cert = tls_emulation.outputs("tls:index/selfSignedCert:SelfSignedCert", "nginx-test/cert", {
        "privateKeyPem": key, "validityPeriodHours": 24, "subject": {"commonName": "mirror"},
        "allowedUses": ["server_auth"]})["certPem"]
    (tmp_path / "s.crt").write_text(cert)
    (tmp_path / "s.key").write_text(key)
    text = nginx.site_config(site).replace(site.cert_path, str(tmp_path / "s.crt")).replace(
        site.key_path, str(tmp_path / "s.key")).replace("/var/log/nginx/", f"{tmp_path}/")
    (tmp_path / "site.conf").write_text(text)
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log off; include {tmp_path}/site.conf; }}\n")
    return subprocess.run(["nginx", "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("tls", [True, False])
def test_nginx_accepts_the_rendered_site(tmp_path, tls):
    site = nginx.Site(name="airgap-apt-mirror", address="127.0.0.12", port=8443, hostname="mirror.example.internal",
                      root="/var/lib/airgap/apt-mirror/aptly/public", tls=tls)
    result = _nginx_check(tmp_path, site)
    assert result.returncode == 0, result.stderr
    text = nginx.site_config(site)
    assert "listen 127.0.0.12:8443" in text, "only the host's own address"
    assert ("ssl_protocols TLSv1.2 TLSv1.3" in text) is tls
    assert site.url == ("https" if tls else "http") + "://mirror.example.internal:8443"


def test_nginx_install_checks_before_reloading():
    site = nginx.Site(name="x", address="10.0.0.1", port=443, hostname="h", root="/srv/x", tls=True)
    lines = nginx.install_lines(site, "CERT")
    assert lines.index("nginx -t -q") < lines.index("systemctl reload nginx")
    bash_parses(step_script(lines, sudo=False))
    assert site.url == "https://h"


def test_httpd_site_table():
    text = rpm_mirror.httpd_site(name="airgap-rpm", address="10.0.0.2", port=8444, hostname="mirror",
                                 root="/srv/rpm/public", tls=True, cert_path="/c.crt", key_path="/c.key")
    assert text.startswith("Listen 10.0.0.2:8444\n")
    assert "SSLEngine on" in text and "+Indexes" in text
    bash_parses(step_script(rpm_mirror.httpd_install_lines(text, "airgap-rpm", True)))


def test_client_files_table():
    assert deb822("https://mirror:8443", APT_REPO) == (
        "Types: deb\nURIs: https://mirror:8443/debian\nSuites: bookworm-updates\nComponents: main contrib\n"
        "Architectures: amd64 arm64\nSigned-By: /etc/apt/keyrings/airgap-debian.asc\n")
    text = repo_file("https://mirror:8444", RPM_REPO, True)
    assert "gpgcheck=1\nrepo_gpgcheck=1\n" in text and "sslcacert=/etc/pki/airgap/mirror-ca.crt" in text
    unsigned = repo_file("http://mirror", rpm_mirror.RpmRepo(**{**RPM_REPO.__dict__, "metadata_signed": False}), False)
    assert "gpgcheck=1\nrepo_gpgcheck=0\n" in unsigned and "sslcacert" not in unsigned


def test_client_lines_never_trust_blindly():
    apt = mirror_clients.apt_lines(sources={"debian": deb822("https://m", APT_REPO)}, keys={"debian": "KEY"},
                                   ca_pem="CA", hostname="m", move_aside=True)
    assert "trusted=yes" not in apt and "[trusted" not in apt
    assert 'Acquire::https::m::CaInfo' in apt
    bash_parses(step_script(apt))
    bash_parses(step_script(mirror_clients.apt_restore_lines()))
    yum = mirror_clients.yum_lines(repo_files={"r": "x"}, keys={"r": "K"}, ca_pem=None, move_aside=True,
                                   key_dir="/etc/pki/rpm-gpg", ca_path="/etc/pki/airgap/ca.crt")
    bash_parses(step_script(yum))
    bash_parses(step_script(mirror_clients.yum_restore_lines("/etc/pki/rpm-gpg", "/etc/pki/airgap/ca.crt")))


def _apt_client(etc, **arguments) -> str:
    """A client's apt lines, run for real against a scratch /etc/apt tree (apt-get left out)."""
    lines = "\n".join(line for line in mirror_clients.apt_lines(hostname="m", **arguments).splitlines()
                      if "apt-get" not in line)
    return step_script(lines.replace("/etc/apt", str(etc)))


def test_move_aside_is_reversible_and_idempotent(tmp_path):
    etc = tmp_path / "etc/apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text("deb http://deb.debian.org/debian bookworm main\n")
    (etc / "sources.list.d/other.sources").write_text("Types: deb\n")
    script = _apt_client(etc, sources={"debian": "ours\n"}, keys={"debian": "KEY\n"}, ca_pem=None, move_aside=True)
    for _ in range(2):
        subprocess.run(["sh", "-c", script], check=True)
        assert sorted(p.name for p in (etc / "sources.list.d").iterdir()) == ["airgap-debian.sources", "airgap-moved"]
    restore = step_script(mirror_clients.apt_restore_lines().replace("/etc/apt", str(etc)))
    for _ in range(2):
        subprocess.run(["sh", "-c", restore], check=True)
    assert (etc / "sources.list").read_text().startswith("deb http://deb.debian.org")
    assert sorted(p.name for p in (etc / "sources.list.d").iterdir()) == ["other.sources"]
    assert not list((etc / "keyrings").iterdir()), "our keys are gone with our sources"


def test_every_apply_converges_the_client_to_the_stack(tmp_path):
    """An update alone (no delete runs for it) takes away a repository no longer mirrored, the CA
    of a mirror that lost TLS, and the moving aside when it is turned off."""
    etc = tmp_path / "etc/apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d/other.sources").write_text("Types: deb\n")
    two = {"a": "A\n", "b": "B\n"}
    subprocess.run(["sh", "-c", _apt_client(etc, sources=two, keys=two, ca_pem="CA\n", move_aside=True)], check=True)
    assert {p.name for p in (etc / "keyrings").iterdir()} == {"airgap-a.asc", "airgap-b.asc", "airgap-mirror-ca.crt"}
    one = {"a": "A\n"}
    subprocess.run(["sh", "-c", _apt_client(etc, sources=one, keys=one, ca_pem=None, move_aside=False)], check=True)
    assert sorted(p.name for p in (etc / "sources.list.d").iterdir()) == ["airgap-a.sources", "other.sources"]
    assert {p.name for p in (etc / "keyrings").iterdir()} == {"airgap-a.asc"}
    assert not (etc / "apt.conf.d/60airgap-mirror").exists()


def test_the_rpm_side_converges_too(tmp_path):
    repos, keys = tmp_path / "yum.repos.d", tmp_path / "rpm-gpg"
    repos.mkdir()
    keys.mkdir()
    (repos / "rocky.repo").write_text("[rocky]\n")
    (keys / "RPM-GPG-KEY-rocky").write_text("K\n")

    def apply(lines: str) -> None:
        subprocess.run(["sh", "-c", step_script(lines.replace("/etc/yum.repos.d", str(repos)))], check=True)

    two = {"a": "[a]\n", "b": "[b]\n"}
    apply(mirror_clients.yum_lines(repo_files=two, keys=two, ca_pem="CA\n", move_aside=True, key_dir=str(keys),
                                   ca_path=str(tmp_path / "ca.crt")))
    assert sorted(p.name for p in repos.iterdir()) == ["airgap-a.repo", "airgap-b.repo", "airgap-moved"]
    one = {"a": "[a]\n"}
    apply(mirror_clients.yum_lines(repo_files=one, keys=one, ca_pem=None, move_aside=True, key_dir=str(keys),
                                   ca_path=str(tmp_path / "ca.crt")))
    assert sorted(p.name for p in repos.iterdir()) == ["airgap-a.repo", "airgap-moved"]
    assert sorted(p.name for p in keys.iterdir()) == ["RPM-GPG-KEY-airgap-a", "RPM-GPG-KEY-rocky"]
    assert not (tmp_path / "ca.crt").exists()
    apply(mirror_clients.yum_restore_lines(str(keys), str(tmp_path / "ca.crt")))
    assert sorted(p.name for p in repos.iterdir()) == ["rocky.repo"]
    assert sorted(p.name for p in keys.iterdir()) == ["RPM-GPG-KEY-rocky"]


def test_a_site_that_drops_tls_takes_its_certificate_and_key_away(tmp_path):
    """Switched to plain HTTP, a site leaves no certificate or key behind, and removes them only
    after nginx reloaded without them."""
    site = nginx.Site(name="airgap-files", address="10.0.0.1", port=8445, hostname="h", root="/srv/x", tls=False)
    tls_dir, sites = tmp_path / "tls", tmp_path / "sites-enabled"
    tls_dir.mkdir()
    sites.mkdir()
    for path in (site.cert_path, site.key_path):
        (tls_dir / path.rsplit("/", 1)[1]).write_text("left by the TLS site\n")
    lines = nginx.install_lines(site, None)
    assert lines.index("airgap_nginx_apply") < lines.index(nginx.drop_tls_lines(site))
    body = lines.replace("/etc/airgap/tls", str(tls_dir)).replace(nginx.SITES, str(sites))
    result, calls = stub_commands.run(tmp_path, body, {"nginx": "exit 0", "systemctl": "exit 0"})
    assert result.returncode == 0, result.stderr
    assert ["systemctl", "reload", "nginx"] in calls
    assert not list(tls_dir.iterdir()), "the certificate and key of the TLS site are gone"
    assert (sites / "airgap-files.conf").is_file()
    assert nginx.drop_tls_lines(site) not in nginx.install_lines(dataclasses.replace(site, tls=True), "CERT")


def test_an_apt_repository_taken_out_of_the_stack_is_unpublished_and_forgotten(tmp_path):
    """aptly drops the publish of what the stack no longer names (its snapshots stay) and forgets
    its state, so that put back it is published again; a debmirror tree's link goes; the rest stays."""
    program = apt_mirror.update_program(APT)
    root = tmp_path / "root"
    for name in ("debian", "gone"):
        (root / "state").mkdir(parents=True, exist_ok=True)
        (root / f"state/{name}.published").write_text(f"{name}-main-20260101T000000Z\n")
        (root / f"state/{name}.upstream").write_text("seen\n")
        (root / f"aptly/public/{name}/dists/bookworm").mkdir(parents=True)
    (root / "debmirror/old/current").mkdir(parents=True)
    (root / "aptly/public/old").symlink_to(root / "debmirror/old/current")
    (root / "aptly/public/elsewhere").symlink_to(tmp_path)
    script = (f"set -euo pipefail\nROOT={root}\n"
              'apq() { printf "debian bookworm\\ngone bookworm\\n"; }\n'
              'ap() { printf "%s\\n" "$*"; rm -rf "$ROOT/aptly/public/$3/dists/$2"; }\n'
              + _function(program, "unpublish_others") + "unpublish_others debian")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["publish drop bookworm gone"]
    assert sorted(p.name for p in (root / "state").iterdir()) == ["debian.published", "debian.upstream"]
    assert sorted(p.name for p in (root / "aptly/public").iterdir()) == ["debian", "elsewhere"]
    assert "gone is no longer mirrored" in result.stderr


def test_an_rpm_repository_taken_out_of_the_stack_stops_being_served(tmp_path):
    program = rpm_mirror.update_program(RPM)
    root = tmp_path / "root"
    (root / "public/airgap-reports").mkdir(parents=True)
    for repo_id in ("rocky9-baseos", "gone"):
        (root / f"snapshots/{repo_id}/20260101T000000Z").mkdir(parents=True)
        (root / f"public/{repo_id}").symlink_to(root / f"snapshots/{repo_id}/20260101T000000Z")
        (root / f"public/airgap-reports/{repo_id}.json").write_text(f'{{"repo": "{repo_id}"}}\n')
    (root / "public/by-hand").symlink_to(tmp_path)
    script = (f"set -euo pipefail\nROOT={root}\nREPORTS=$ROOT/public/airgap-reports\n"
              + _function(program, "finish") + "finish rocky9-baseos")
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == '{"repo": "rocky9-baseos"}\n'
    assert sorted(p.name for p in (root / "public").iterdir()) == ["airgap-reports", "by-hand", "rocky9-baseos"]
    assert (root / "snapshots/gone/20260101T000000Z").is_dir(), "its snapshots stay"


@pytest.mark.parametrize("mirror", ["apt", "rpm"])
def test_the_keys_of_repositories_no_longer_mirrored_go(tmp_path, mirror):
    keys, keyrings = tmp_path / "keys", tmp_path / "keyrings"
    keys.mkdir()
    keyrings.mkdir()
    for name in ("kept", "gone"):
        (keys / f"{name}.asc").write_text("KEY\n")
        (keyrings / f"{name}.gpg").write_text("KEYRING\n")
    if mirror == "apt":
        spec = apt_mirror.AptMirrorSpec(root=str(tmp_path), method="aptly", keep=1, schedule="daily",
                                        repos=(apt_mirror.AptRepo(**{**APT_REPO.__dict__, "name": "kept"}),))
        lines = apt_mirror.keyring_lines(spec).replace(apt_mirror.CONFIG_DIR + "/keys", str(keys))
        body = apt_mirror.INSTALL + "\n" + "\n".join(line for line in lines.splitlines()
                                                     if line.startswith("airgap_apt_mirror_prune_keys "))
    else:
        spec_rpm = rpm_mirror.RpmMirrorSpec(root=str(tmp_path), keep=1, schedule="daily",
                                            repos=(rpm_mirror.RpmRepo(**{**RPM_REPO.__dict__, "id": "kept"}),))
        call = next(line for line in rpm_mirror.install_body(spec_rpm).splitlines()
                    if line.startswith("airgap_rpm_mirror_prune_keys "))
        body = rpm_mirror.INSTALL + "\n" + call.replace(rpm_mirror.CONFIG_DIR + "/keys", str(keys))
    subprocess.run(["bash", "-c", step_script(body)], check=True, timeout=60)
    assert sorted(p.name for p in keys.iterdir()) == ["kept.asc"]
    assert sorted(p.name for p in keyrings.iterdir()) == (["kept.gpg"] if mirror == "apt" else ["gone.gpg", "kept.gpg"])


SYSTEMCTL = """state=$STUB_STATE
case "$1" in
  is-active) [ -f "$state/active" ] ;;
  is-enabled) [ -f "$state/enabled" ] ;;
  start) touch "$state/active" ;;
  stop) rm -f "$state/active" ;;
  enable) touch "$state/enabled" ;;
  disable) rm -f "$state/enabled" ;;
esac"""


@pytest.mark.parametrize("running_before", [False, True])
def test_the_last_site_removed_puts_nginx_back_as_it_was(tmp_path, running_before):
    """nginx serves the stack's sites while it has any; the last one removed, Debian's default
    site is back and nginx is stopped and disabled again, unless it ran before the first."""
    etc, state = tmp_path / "nginx", tmp_path / "state"
    (etc / "sites-available").mkdir(parents=True)
    (etc / "sites-enabled").mkdir()
    state.mkdir()
    (etc / "sites-available/default").write_text("server { listen 80 default_server; }\n")
    (etc / "sites-enabled/default").symlink_to(etc / "sites-available/default")
    if running_before:
        (state / "active").touch()
        (state / "enabled").touch()
    sites = [nginx.Site(name=f"airgap-{n}", address="10.0.0.1", port=p, hostname="h", root="/srv", tls=False)
             for n, p in (("apt-mirror", 8443), ("file-server", 8445))]

    def run(lines: str) -> None:
        body = lines.replace("/etc/nginx", str(etc)).replace(nginx.BEFORE, str(tmp_path / "before"))
        result, _ = stub_commands.run(tmp_path, body, {"nginx": "exit 0", "systemctl": SYSTEMCTL},
                                      env={"STUB_STATE": str(state)})
        assert result.returncode == 0, result.stderr

    for site in sites:
        run(nginx.install_lines(site, None))
    assert sorted(p.name for p in (etc / "sites-enabled").iterdir()) == ["airgap-apt-mirror.conf",
                                                                         "airgap-file-server.conf"]
    assert (state / "active").exists() and (state / "enabled").exists()
    run(nginx.remove_lines(sites[0]))
    assert (state / "active").exists(), "another site of the stack is still served"
    run(nginx.remove_lines(sites[1]))
    assert sorted(p.name for p in (etc / "sites-enabled").iterdir()) == ["default"]
    assert os.readlink(etc / "sites-enabled/default") == str(etc / "sites-available/default")
    assert (state / "active").exists() is running_before and (state / "enabled").exists() is running_before
    assert not (tmp_path / "before").exists()
