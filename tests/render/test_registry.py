"""Registry renderers: tables of inputs → text, then the text checked by the real tools
(bash -n, systemd-analyze verify, and Docker Distribution itself loading the config)."""

import base64
import dataclasses
import os
import shlex
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import bcrypt
import pytest
import yaml

from components.render import htpasswd, registry as render
from components.render.shell import step_script
from tests.render import stub_commands

CA = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
CERT = "-----BEGIN CERTIFICATE-----\nSERVER\n-----END CERTIFICATE-----\n"


def spec(**changes) -> render.RegistrySpec:
    base = render.RegistrySpec(address="10.0.0.5", hostname="registry.example.internal", port=5443,
                               storage_path="/var/lib/airgap/registry", cert_pem=CERT, ca_pem=CA)
    return dataclasses.replace(base, **changes)


def test_config_table():
    config = yaml.safe_load(render.registry_config(
        listen="10.0.0.5:5443", storage="/srv/reg", cert="/c.crt", key="/c.key", htpasswd="/h"))
    assert config["storage"]["filesystem"] == {"rootdirectory": "/srv/reg"}
    assert config["storage"]["delete"] == {"enabled": False}, "blobs are never deleted"
    assert config["http"]["addr"] == "10.0.0.5:5443"
    assert config["http"]["tls"] == {"certificate": "/c.crt", "key": "/c.key", "minimumtls": "tls1.2"}
    assert config["auth"] == {"htpasswd": {"realm": "airgap-registry", "path": "/h"}}
    assert "proxy" not in config, "never a pull-through cache to a public registry"
    assert config["http"]["draintimeout"] == "30s", "requests started before a stop are finished"
    assert "notifications" not in config


def test_config_is_stable_text():
    args = dict(listen="a:1", storage="/s", cert="/c", key="/k", htpasswd="/h")
    assert render.registry_config(**args) == render.registry_config(**args)


def test_unit_passes_systemd_analyze(tmp_path):
    unit = tmp_path / render.UNIT_NAME
    unit.write_text(render.registry_unit("/var/lib/airgap/registry"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = unit.read_text()
    assert "User=docker-registry" in text
    assert ("ExecStartPre=/bin/sh /etc/airgap/registry/repair-storage.sh /var/lib/airgap/registry\n"
            in text), "every start repairs what a kill left"
    assert "TimeoutStopSec=45\n" in text, "longer than the registry's drain"


@pytest.mark.parametrize("storage", ["relative/path", "/var/lib/a b", "/var/lib/$x", "/var/lib/a\nExecStart=/bin/sh"])
def test_unit_refuses_storage_it_cannot_write_safely(storage):
    with pytest.raises(ValueError, match="registry storage"):
        render.registry_unit(storage)


def test_repair_script_parses():
    subprocess.run(["sh", "-n", "-c", render.REPAIR_STORAGE], check=True)
    subprocess.run(["bash", "-n", "-c", render.REPAIR_STORAGE], check=True)


@pytest.mark.parametrize("runtime", ["package", "docker"])
def test_install_scripts_parse(runtime):
    body = (render.install_package_runtime if runtime == "package" else render.install_docker_runtime)(
        spec(runtime=runtime))
    subprocess.run(["bash", "-n", "-c", step_script(body)], check=True)


def test_package_install_table(tmp_path):
    body = render.install_package_runtime(spec())
    assert "/etc/systemd/system/airgap-registry.service" in body
    assert "airgap_secret_file /etc/airgap/registry/server.key 0640 root:docker-registry tls" in body
    assert "airgap_secret_file /etc/airgap/registry/htpasswd 0640 root:docker-registry auth" in body
    assert body.index("server.key") < body.index("htpasswd 0640"), "stdin order: key, then htpasswd"
    assert "if airgap_changed config tls auth unit" in body
    assert "https://registry.example.internal:5443/v2/" in body

    # The package's calls, run against stubs: its own :5000 unit goes, and the health check asks
    # the host's own address under the registry's name.
    calls = "\n".join(stub_commands.call_line(body, f) for f in ("airgap_registry_package", "airgap_registry_health"))
    result, log = stub_commands.run(tmp_path, render.PACKAGE_RUNTIME + render.HEALTH + calls, {
        "docker-registry": "", "systemctl": "",
        "curl": 'case " $* " in *" -K "*) ;; *) printf 401 ;; esac'},
        stdin=stub_commands.secret_line('user = "airgap:pw"\n'))
    assert result.returncode == 0, result.stderr
    assert ["systemctl", "disable", "--now", "docker-registry.service"] in log
    probe, login = (call for call in log if call[0] == "curl")
    for call in (probe, login):
        assert call[1:7] == ["-sS", "--max-time", "5", "--cacert", "/etc/airgap/registry/ca.crt", "--resolve"]
        assert call[7] == "registry.example.internal:5443:10.0.0.5"
        assert call[-1] == "https://registry.example.internal:5443/v2/"
    assert "-K" not in probe and "-K" in login


# Docker as the stubs see it: the image present or not, the container's image label, published
# address and running state.
DOCKER_STUB = """case "$*" in
  "image inspect -f {{.Id}} "*) echo sha256:new ;;
  "image inspect "*) [ "$IMAGE_PRESENT" = yes ] ;;
  "inspect -f {{index .Config.Labels \\"airgap.image-id\\"}} "*) [ -n "$LABEL" ] && echo "$LABEL" ;;
  "port "*) echo "$PUBLISHED" ;;
  "inspect -f {{.State.Running}} "*) echo "$RUNNING" ;;
esac"""
FRESH = {"IMAGE_PRESENT": "no", "LABEL": "", "PUBLISHED": "", "RUNNING": "false"}
RUNNING = {"IMAGE_PRESENT": "yes", "LABEL": "sha256:new", "PUBLISHED": "10.0.0.5:5443", "RUNNING": "true"}


def _container_calls(tmp_path, body: str, state: dict[str, str], changed: str = "") -> list[list[str]]:
    """The Docker and repair commands the install step's container calls run, Docker in `state`."""
    words = shlex.split(stub_commands.call_line(body, "airgap_registry_container"))
    assert words[-3:-1] == ["/bin/sh", render.REPAIR_SCRIPT], "the repair, as the unit runs it"
    calls = "\n".join([stub_commands.call_line(body, "airgap_registry_image"), f"CHANGED={shlex.quote(changed)}",
                       shlex.join([*words[:-3], "repair", words[-1]])])
    result, log = stub_commands.run(tmp_path, render.DOCKER_RUNTIME + calls, {"docker": DOCKER_STUB, "repair": ""},
                                    env=state)
    assert result.returncode == 0, result.stderr
    queries = ("image inspect", "inspect -f", "port")
    return [call for call in log if not " ".join(call[1:]).startswith(queries)]


def test_docker_install_table(tmp_path):
    body = render.install_docker_runtime(spec(runtime="docker", docker_image="registry:2.8.3",
                                              docker_archive="/var/lib/airgap/images/registry.tar"))
    assert "docker restart" not in body, "stop, repair, start: never a restart without the repair"
    assert "airgap_install_file /etc/airgap/registry/repair-storage.sh 0755 root:root repair" in body
    config = body.split("config.yml")[1]
    assert "0.0.0.0:5000" in config and "/var/lib/registry" in config

    run = ["docker", "run", "-d", "--name", "airgap-registry", "--restart=always", "--stop-timeout", "45",
           "-p", "10.0.0.5:5443:5000",  # published on the host's own address only
           "-v", "/var/lib/airgap/registry:/var/lib/registry", "-v", "/etc/airgap/registry:/etc/docker/registry:ro",
           "--label", "airgap.image-id=sha256:new", "registry:2.8.3"]
    repair = ["repair", "/var/lib/airgap/registry"]
    stop, remove = ["docker", "stop", "airgap-registry"], ["docker", "rm", "-f", "airgap-registry"]
    start = ["docker", "start", "airgap-registry"]
    assert _container_calls(tmp_path, body, FRESH) == [
        ["docker", "load", "-i", "/var/lib/airgap/images/registry.tar"], stop, remove, repair, run]  # drained first
    assert _container_calls(tmp_path, body, {**RUNNING, "PUBLISHED": "0.0.0.0:5443"}) == [stop, remove, repair, run]
    assert _container_calls(tmp_path, body, RUNNING, changed=" config") == [stop, repair, start]
    assert _container_calls(tmp_path, body, {**RUNNING, "RUNNING": "false"}) == [repair, start]
    assert _container_calls(tmp_path, body, RUNNING, changed=" ca") == [], "nothing it reads changed"


def test_hostile_values_are_quoted_or_refused(tmp_path):
    body = render.install_docker_runtime(spec(runtime="docker", storage_path="/var/lib/a b;rm -rf x"))
    calls = _container_calls(tmp_path, body, FRESH)
    assert ["repair", "/var/lib/a b;rm -rf x"] in calls
    assert "/var/lib/a b;rm -rf x:/var/lib/registry" in calls[-1]
    assert "install -d -m 0750 '/var/lib/a b;rm -rf x'" in body
    with pytest.raises(ValueError, match="registry storage"):  # a unit file has no shell quoting
        render.install_package_runtime(spec(storage_path="/var/lib/a b;rm -rf x"))


@pytest.mark.parametrize("purge", [False, True])
def test_uninstall_keeps_data_unless_purged(purge):
    body = render.uninstall("package", "/var/lib/airgap/registry", purge=purge)
    assert ("airgap_purge " in body and body.endswith(" /var/lib/airgap/registry")) is purge  # test_purge.py
    assert "systemctl disable --now airgap-registry.service" in body
    subprocess.run(["bash", "-n", "-c", step_script(body)], check=True)


def test_htpasswd_is_bcrypt_and_deterministic():
    text = htpasswd.htpasswd_file([("zed", "pw1"), ("amy", "p'w\"2 $(x)")], seed="s")
    assert text == htpasswd.htpasswd_file([("amy", "p'w\"2 $(x)"), ("zed", "pw1")], seed="s")
    lines = dict(line.split(":", 1) for line in text.splitlines())
    assert list(lines) == ["amy", "zed"]
    assert lines["amy"].startswith("$2y$05$")
    assert bcrypt.checkpw(b"p'w\"2 $(x)", lines["amy"].encode())
    assert htpasswd.htpasswd_file([("amy", "other")], seed="s") != htpasswd.htpasswd_file([("amy", "pw")], seed="s")
    assert htpasswd.htpasswd_file([("amy", "pw")], seed="s1") != htpasswd.htpasswd_file([("amy", "pw")], seed="s2")


@pytest.mark.parametrize("user", ["a:b", "a\nb"])
def test_htpasswd_rejects_bad_users(user):
    with pytest.raises(ValueError):
        htpasswd.htpasswd_line(user, "x", seed="s")


def test_curl_config_escapes():
    assert htpasswd.curl_user_config("u", 'a"b\\c') == 'user = "u:a\\"b\\\\c"\n'


def _free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def test_registry_loads_rendered_config(tmp_path):
    """Docker Distribution itself parses the config, serves TLS and enforces htpasswd."""
    from offline import tls_emulation

    ca_key = tls_emulation.outputs("tls:index/privateKey:PrivateKey", "t/ca", {})["privateKeyPem"]
    ca = tls_emulation.outputs("tls:index/selfSignedCert:SelfSignedCert", "t/ca", {
        "privateKeyPem": ca_key, "isCaCertificate": True, "validityPeriodHours": 24 * 800,
        "allowedUses": ["cert_signing"], "subject": {"commonName": "test CA"}})["certPem"]
    key = tls_emulation.outputs("tls:index/privateKey:PrivateKey", "t/srv", {})["privateKeyPem"]
    csr = tls_emulation.outputs("tls:index/certRequest:CertRequest", "t/srv", {
        "privateKeyPem": key, "subject": {"commonName": "127.0.0.3"}, "ipAddresses": ["127.0.0.3"]})["certRequestPem"]
    cert = tls_emulation.outputs("tls:index/locallySignedCert:LocallySignedCert", "t/srv", {
        "certRequestPem": csr, "caPrivateKeyPem": ca_key, "caCertPem": ca, "validityPeriodHours": 24 * 800,
        "allowedUses": ["digital_signature", "server_auth"]})["certPem"]
    (tmp_path / "ca.crt").write_text(ca)
    (tmp_path / "server.crt").write_text(cert)
    (tmp_path / "server.key").write_text(key)
    (tmp_path / "htpasswd").write_text(htpasswd.htpasswd_file([("airgap", "s3cret $(x)")], seed="t"))
    port = _free_port("127.0.0.3")
    config = tmp_path / "config.yml"
    config.write_text(render.registry_config(
        listen=f"127.0.0.3:{port}", storage=str(tmp_path / "data"), cert=str(tmp_path / "server.crt"),
        key=str(tmp_path / "server.key"), htpasswd=str(tmp_path / "htpasswd")))
    process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                               stderr=open(tmp_path / "log", "w"), env={"PATH": os.environ["PATH"]})
    try:
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
        url = f"https://127.0.0.3:{port}/v2/"
        status = None
        for _ in range(100):
            try:
                urllib.request.urlopen(url, context=context, timeout=2)
            except urllib.error.HTTPError as error:
                status = error.code
                break
            except OSError:
                time.sleep(0.1)
        assert status == 401, (tmp_path / "log").read_text()
        token = base64.b64encode(b"airgap:s3cret $(x)").decode()
        request = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        assert urllib.request.urlopen(request, context=context, timeout=5).status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
