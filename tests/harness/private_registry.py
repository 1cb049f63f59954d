"""A private registry on this machine, configured exactly as the `Registry` component renders it
(config.yml, htpasswd, a certificate from the emulated stack CA), for tests and benchmarks of the
fill that need no sandbox host.

It also reads the registry's access log to tell how often each blob was uploaded (a `PUT
…/blobs/uploads/…?digest=…` request) or mounted from another repository, which is how a test
proves that shared layers crossed the wire once.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import ssl
from pathlib import Path

from components.render import htpasswd, registry as render
from offline import tls_emulation
from sandbox.process import ManagedProcess, http_status

READY_TIMEOUT_S = 15.0

_UPLOAD = re.compile(r'"PUT /v2/[^ ]*/blobs/uploads/[^ ?]*\?[^ ]*digest=(sha256(?:%3A|:)[0-9a-f]{64})')
_MOUNT = re.compile(r'"POST /v2/[^ ]*/blobs/uploads/\?[^ ]*mount=(sha256(?:%3A|:)[0-9a-f]{64})[^ ]* HTTP/1\.1" 201')


def issue_certificate(seed: str, address: str) -> tuple[str, str, str]:
    """(CA PEM, server certificate PEM, server key PEM) for `address`, deterministic per seed."""
    emulate = tls_emulation.outputs
    ca_key = emulate("tls:index/privateKey:PrivateKey", f"{seed}/ca", {})["privateKeyPem"]
    ca = emulate("tls:index/selfSignedCert:SelfSignedCert", f"{seed}/ca", {
        "privateKeyPem": ca_key, "isCaCertificate": True, "validityPeriodHours": 24 * 3650,
        "allowedUses": ["cert_signing", "crl_signing"], "subject": {"commonName": f"{seed} CA"}})["certPem"]
    key = emulate("tls:index/privateKey:PrivateKey", f"{seed}/server", {})["privateKeyPem"]
    csr = emulate("tls:index/certRequest:CertRequest", f"{seed}/server", {
        "privateKeyPem": key, "subject": {"commonName": address}, "ipAddresses": [address]})["certRequestPem"]
    cert = emulate("tls:index/locallySignedCert:LocallySignedCert", f"{seed}/server", {
        "certRequestPem": csr, "caPrivateKeyPem": ca_key, "caCertPem": ca, "validityPeriodHours": 24 * 825,
        "allowedUses": ["digital_signature", "key_encipherment", "server_auth"]})["certPem"]
    return ca, cert, key


class PrivateRegistry(ManagedProcess):
    """Docker Distribution on `address:port` with htpasswd auth and TLS, as a registry host runs it."""

    def __init__(self, address: str = "127.0.0.3", port: int = 5443, *, user: str = "airgap",
                 password: str = "fill 'pa$$' \"word\"", state_dir: Path | None = None) -> None:
        super().__init__()
        self.address, self.port, self.user, self.password = address, port, user, password
        self.state_dir = self._use_state_dir(state_dir, "airgap-private-")
        self.storage = self.state_dir / "storage"
        self.log_file = self.state_dir / "registry.log"
        self.cert_dir = self.state_dir / "certs"

    def __str__(self) -> str:
        return f"private registry on {self.endpoint}"

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    def auth_file(self) -> Path:
        path = self.state_dir / "auth.json"
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.endpoint: {"auth": token}}}))
        path.chmod(0o600)
        return path

    def _start(self) -> None:
        ca, cert, key = issue_certificate(f"private-{self.endpoint}", self.address)
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        (self.cert_dir / "ca.crt").write_text(ca)
        (self.state_dir / "server.crt").write_text(cert)
        (self.state_dir / "server.key").write_text(key)
        (self.state_dir / "htpasswd").write_text(
            htpasswd.htpasswd_file([(self.user, self.password)], seed="private-registry"))
        (self.state_dir / "config.yml").write_text(render.registry_config(
            listen=self.endpoint, storage=str(self.storage), cert=str(self.state_dir / "server.crt"),
            key=str(self.state_dir / "server.key"), htpasswd=str(self.state_dir / "htpasswd")))
        # A minimal environment: REGISTRY_* variables would override the config file.
        self._launch(["docker-registry", "serve", str(self.state_dir / "config.yml")], output=self.log_file,
                     env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        context = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))
        # Ready once it asks for credentials, over TLS it verifies: it serves nobody anonymously.
        self._wait_ready(lambda: http_status(self.address, self.port, "/v2/", context=context) == 401,
                         READY_TIMEOUT_S)

    def blob_transfers(self) -> tuple[collections.Counter, collections.Counter]:
        """(uploads per blob digest, cross-repository mounts per blob digest) from the access log."""
        text = self.log_file.read_text(errors="replace")
        clean = lambda d: d.replace("%3A", ":")  # noqa: E731
        return (collections.Counter(clean(d) for d in _UPLOAD.findall(text)),
                collections.Counter(clean(d) for d in _MOUNT.findall(text)))

    def blob_bytes_stored(self) -> int:
        blobs = self.storage / "docker/registry/v2/blobs"
        return sum(f.stat().st_size for f in blobs.rglob("data")) if blobs.exists() else 0
