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
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from components.render import htpasswd, registry as render
from offline import tls_emulation

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


class PrivateRegistry:
    def __init__(self, address: str = "127.0.0.3", port: int = 5443, *, user: str = "airgap",
                 password: str = "fill 'pa$$' \"word\"", state_dir: Path | None = None):
        self.address, self.port, self.user, self.password = address, port, user, password
        self._owns_state = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="airgap-private-"))
        self.storage = self.state_dir / "storage"
        self.log_file = self.state_dir / "registry.log"
        self.cert_dir = self.state_dir / "certs"
        self._process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    def auth_file(self) -> Path:
        path = self.state_dir / "auth.json"
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        path.write_text(json.dumps({"auths": {self.endpoint: {"auth": token}}}))
        path.chmod(0o600)
        return path

    def start(self) -> "PrivateRegistry":
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
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                ["docker-registry", "serve", str(self.state_dir / "config.yml")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        context = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))
        for _ in range(150):
            if self._process.poll() is not None:
                raise RuntimeError(f"private registry exited:\n{self.log_file.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"https://{self.endpoint}/v2/", context=context, timeout=1)
            except urllib.error.HTTPError as error:
                if error.code == 401:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"private registry on {self.endpoint} not ready:\n{self.log_file.read_text()[-2000:]}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def close(self) -> None:
        self.stop()
        if self._owns_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> "PrivateRegistry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def blob_transfers(self) -> tuple[collections.Counter, collections.Counter]:
        """(uploads per blob digest, cross-repository mounts per blob digest) from the access log."""
        text = self.log_file.read_text(errors="replace")
        clean = lambda d: d.replace("%3A", ":")  # noqa: E731
        return (collections.Counter(clean(d) for d in _UPLOAD.findall(text)),
                collections.Counter(clean(d) for d in _MOUNT.findall(text)))

    def blob_bytes_stored(self) -> int:
        blobs = self.storage / "docker/registry/v2/blobs"
        return sum(f.stat().st_size for f in blobs.rglob("data")) if blobs.exists() else 0
