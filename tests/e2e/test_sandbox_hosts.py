"""The sandbox hosts behave like the small VMs the e2e tests take them for.

Two hosts at once, reached over real SSH with pinned host keys: services installed as unit files
outlive the session, filesystems and process tables are the hosts' own, `trust=` makes a private
CA trusted, and teardown leaves nothing behind on the machine. The base they share is built from
the machine's own apt mirror and named by its recipe.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paramiko
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.render.ssh_read import Hop, read_command
from sandbox import keys
from sandbox.base_chroot import (
    BASE_PACKAGES,
    AptSource,
    SandboxError,
    base_path,
    debootstrap_mirror,
    ensure_base,
    machine_debian_sources,
)
from sandbox.hosts import Sandbox, SandboxHost, leftovers, sshd_answers

ALPHA = ("alpha", "127.0.0.11")
BETA = ("beta", "127.0.0.12")
TLS_ADDRESS = "127.0.0.3"
WEB_PORT = 8080

WEB_UNIT = """\
[Unit]
Description=Static page naming the host

[Service]
ExecStart=/usr/bin/python3 -m http.server --bind {address} --directory /srv/www {port}

[Install]
WantedBy=multi-user.target
"""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
                 signer: ec.EllipticCurvePrivateKey, *, ca: bool,
                 san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signer, hashes.SHA256())


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello over tls\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class TlsServer:
    """An HTTPS server whose certificate a private CA signed."""

    endpoint: str
    """`host:port`."""
    ca_pem: str


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """An HTTPS server on TLS_ADDRESS that no host trusts unless given the CA."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(_name("sandbox test CA"), _name("sandbox test CA"), ca_key.public_key(), ca_key, ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate(_name(TLS_ADDRESS), ca.subject, leaf_key.public_key(), ca_key, ca=False,
                        san=[x509.IPAddress(ipaddress.ip_address(TLS_ADDRESS))])
    directory = tmp_path_factory.mktemp("tls")
    (directory / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (directory / "leaf.key").write_bytes(leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "leaf.pem", directory / "leaf.key")

    server = ThreadingHTTPServer((TLS_ADDRESS, 0), _Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield TlsServer(f"{TLS_ADDRESS}:{server.server_address[1]}", ca.public_bytes(serialization.Encoding.PEM).decode())
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def alpha(sandbox: Sandbox) -> SandboxHost:
    return sandbox.up(*ALPHA)


@pytest.fixture(scope="module")
def beta(sandbox: Sandbox, tls_server: TlsServer) -> SandboxHost:
    """Trusts the TLS server's CA; alpha does not."""
    return sandbox.up(*BETA, trust={tls_server.endpoint: tls_server.ca_pem})


def _paramiko_client() -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def _client_pkey() -> paramiko.Ed25519Key:
    return paramiko.Ed25519Key.from_private_key(io.StringIO(keys.openssh_private(keys.client_key())))


def _curl_until_served(url: str, seconds: float = 10) -> subprocess.CompletedProcess:
    deadline = time.monotonic() + seconds
    for _ in range(max(1, int(seconds * 10))):
        result = subprocess.run(["curl", "-fsS", "--max-time", "2", url], capture_output=True, text=True)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return result


DEBIAN_SOURCES = """\
Types: deb
# a comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: https://other.example/node
Suites: nodistro
Components: main
"""


def test_the_base_mirror_is_read_from_the_machines_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(DEBIAN_SOURCES)
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb [signed-by=/k.gpg] http://extra.example/debian bookworm-backports main contrib\n"
    )
    assert machine_debian_sources(tmp_path) == [
        AptSource("http://mirror.example/debian", ("bookworm", "bookworm-updates"), ("main",),
                  "/usr/share/keyrings/debian-archive-keyring.gpg"),
        AptSource("http://mirror.example/debian-security", ("bookworm-security",), ("main",)),
        AptSource("http://extra.example/debian", ("bookworm-backports",), ("main", "contrib"), "/k.gpg"),
    ]
    assert debootstrap_mirror(machine_debian_sources(tmp_path)) == "http://mirror.example/debian"


def test_no_mirror_is_guessed(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://mirror.example/debian trixie main\n")
    with pytest.raises(SandboxError, match="no `deb` entry for bookworm"):
        machine_debian_sources(tmp_path)


def test_the_base_is_named_by_its_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = [AptSource("http://mirror.example/debian", ("bookworm",), ("main",))]
    named = base_path(sources)
    assert base_path(list(sources)) == named
    monkeypatch.setattr("sandbox.base_chroot.BASE_PACKAGES", (*BASE_PACKAGES, "tree"))
    assert base_path(sources) != named


@pytest.mark.e2e
def test_each_host_has_its_own_name(alpha: SandboxHost, beta: SandboxHost) -> None:
    for host in (alpha, beta):
        assert host.ssh("hostname; cat /etc/hostname").stdout.split() == [host.name, host.name]


@pytest.mark.e2e
def test_known_hosts_pins_exactly_the_hosts_keys(sandbox: Sandbox, alpha: SandboxHost, beta: SandboxHost) -> None:
    lines = set(sandbox.known_hosts.read_text().splitlines())
    assert lines == {f"{alpha.address} {alpha.host_key}", f"{beta.address} {beta.host_key}"}
    assert alpha.host_key == keys.openssh_public(keys.host_key(alpha.address))


@pytest.mark.e2e
def test_a_wrong_pinned_host_key_is_refused(alpha: SandboxHost, beta: SandboxHost, tmp_path: Path) -> None:
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{alpha.address} {beta.host_key}\n")
    result = subprocess.run(alpha.ssh_argv("true", known_hosts=wrong), capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=30)
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


@pytest.mark.e2e
def test_paramiko_reaches_a_host_through_another_as_bastion(sandbox: Sandbox, alpha: SandboxHost,
                                                           beta: SandboxHost) -> None:
    with _paramiko_client() as bastion, _paramiko_client() as target:
        bastion.load_host_keys(str(sandbox.known_hosts))
        bastion.connect(alpha.address, username="root", pkey=_client_pkey(), timeout=10,
                        look_for_keys=False, allow_agent=False)
        channel = bastion.get_transport().open_channel(
            "direct-tcpip", (beta.address, 22), (alpha.address, 0), timeout=10)
        target.load_host_keys(str(sandbox.known_hosts))
        target.connect(beta.address, username="root", pkey=_client_pkey(), sock=channel, timeout=10,
                       look_for_keys=False, allow_agent=False)
        _, stdout, _ = target.exec_command("hostname", timeout=10)
        assert stdout.read().decode().strip() == beta.name


@pytest.mark.e2e
def test_the_ssh_read_jumps_through_a_bastion_with_the_same_pins(alpha: SandboxHost, beta: SandboxHost) -> None:
    """programs/ssh/read.sh with the ProxyCommand formats/ssh.py writes, run by the real OpenSSH client."""
    script = read_command(Hop(beta.address, 22, "root", beta.host_key), "hostname",
                          Hop(alpha.address, 22, "root", alpha.host_key))
    result = subprocess.run(["/bin/sh", "-c", script], input=keys.openssh_private(keys.client_key()),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == beta.name
    wrong = read_command(Hop(beta.address, 22, "root", beta.host_key), "hostname",
                         Hop(alpha.address, 22, "root", beta.host_key))  # the bastion's pin is beta's key
    refused = subprocess.run(["/bin/sh", "-c", wrong], input=keys.openssh_private(keys.client_key()),
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "Host key verification failed" in refused.stderr


@pytest.mark.e2e
def test_an_enabled_unit_keeps_serving_after_the_session(alpha: SandboxHost, beta: SandboxHost) -> None:
    for host in (alpha, beta):
        host.ssh("mkdir -p /srv/www && hostname > /srv/www/index.html")
        host.ssh("cat > /etc/systemd/system/web.service",
                 input=WEB_UNIT.format(address=host.address, port=WEB_PORT))
        host.ssh("systemctl daemon-reload && systemctl enable --now web.service")
    # Both on port 8080 at once: each listens on its own address only.
    for host in (alpha, beta):
        served = _curl_until_served(f"http://{host.address}:{WEB_PORT}/")
        assert served.stdout.strip() == host.name, served.stderr
        assert host.ssh("systemctl is-active web.service").stdout.strip() == "active"


@pytest.mark.e2e
def test_hosts_have_separate_filesystems(alpha: SandboxHost, beta: SandboxHost) -> None:
    alpha.ssh("echo only-here > /root/marker")
    assert beta.ssh("test -e /root/marker", check=False).returncode == 1
    # The machine sees each host's files under its root, and the shared base stays untouched.
    assert (alpha.root / "root/marker").read_text() == "only-here\n"
    assert not (beta.root / "root/marker").exists()
    assert not (ensure_base() / "root/marker").exists()


@pytest.mark.e2e
def test_a_host_sees_only_its_own_processes(alpha: SandboxHost) -> None:
    listing = alpha.ssh("ps -eo pid=,args=").stdout
    pids = {int(line.split(None, 1)[0]): line.split(None, 1)[1] for line in listing.splitlines()}
    assert "systemctl" in pids[1]
    assert len(pids) < 20, listing
    assert not any("pytest" in args for args in pids.values()), listing


@pytest.mark.e2e
def test_trust_makes_the_private_ca_trusted(tls_server: TlsServer, alpha: SandboxHost, beta: SandboxHost) -> None:
    endpoint, ca_pem = tls_server.endpoint, tls_server.ca_pem
    assert beta.ssh(f"curl -fsS --max-time 5 https://{endpoint}/").stdout == "hello over tls\n"
    for certs_d in ("/etc/containers/certs.d", "/etc/docker/certs.d"):
        assert beta.ssh(f"cat {certs_d}/{endpoint}/ca.crt").stdout == ca_pem
    untrusted = alpha.ssh(f"curl -fsS --max-time 5 https://{endpoint}/", check=False)
    assert untrusted.returncode == 60, untrusted.stderr  # curl: peer certificate cannot be verified


@pytest.mark.e2e
def test_teardown_leaves_nothing_behind(sandbox: Sandbox, alpha: SandboxHost, beta: SandboxHost) -> None:
    sandbox.close()
    assert sandbox.hosts() == []
    assert leftovers() == []
    for host in (alpha, beta):
        assert not sshd_answers(host.address)
        assert _curl_until_served(f"http://{host.address}:{WEB_PORT}/", seconds=0).returncode != 0
    assert not sandbox.run_dir.exists()
    sandbox.close()  # a second close is harmless
