"""discover --kubeconfig against an API server played on loopback over TLS, answering with
recorded Kubernetes bodies (tests/data/discover/cluster, SOURCES.txt) in the envelopes the API
uses: a paged `PodList` whose items carry no kind, `APIGroup` discovery, custom resource lists.

What this does not prove: that a real kube-apiserver's authentication, aggregation, or paging
behave the same way (only the documented shapes are served here), nor how exec credential plugins
behave (they are refused)."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import ssl
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bundle import discover
from bundle.manifest import BundleError
from sandbox.upstream_tls import write_tls_material
from tests.bundle.conftest import ROOT, bundle_cli

ADDRESS = "127.0.0.35"
TOKEN = "discover-test-token"
DATA = ROOT / "tests" / "data" / "discover"
NODE_EXPORTER_DIGEST = "sha256:" + "4c" * 32


def pods() -> list[dict]:
    """Recorded pods (Docker's imageID forms) and one as containerd reports it, kinds stripped as
    the API strips them from a PodList's items."""
    recorded = json.loads((DATA / "cluster" / "kuard-pods-list.json").read_text())["items"]
    listed = json.loads((DATA / "cluster" / "nginx-deployment-pods-list.json").read_text())["items"]
    recorded += [item for item in listed if item["kind"] == "Pod"]
    containerd = {
        "metadata": {"name": "node-exporter-7xk2p", "namespace": "monitoring",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "node-exporter",
                                          "uid": "0b4c", "controller": True}]},
        "spec": {"initContainers": [{"name": "init", "image": "busybox:1.36"}],
                 "containers": [{"name": "node-exporter", "image": "quay.io/prometheus/node-exporter:v1.8.2"},
                                {"name": "kube-rbac-proxy", "image": "quay.io/brancz/kube-rbac-proxy:v0.18.0"}]},
        "status": {"initContainerStatuses": [{"name": "init", "image": "docker.io/library/busybox:1.36",
                                              "imageID": "sha256:" + "ab" * 32}],
                   "containerStatuses": [
                       {"name": "node-exporter", "image": "quay.io/prometheus/node-exporter:v1.8.2",
                        "imageID": f"quay.io/prometheus/node-exporter@{NODE_EXPORTER_DIGEST}",
                        "containerID": "containerd://5ef66bb9"},
                       {"name": "kube-rbac-proxy", "image": "quay.io/brancz/kube-rbac-proxy:v0.18.0",
                        "imageID": "docker://sha256:" + "cd" * 32}]},
    }
    return [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in recorded] + [containerd]


def routes() -> dict[str, dict]:
    manifests = DATA / "manifests"
    mattermost = next(d for d in yaml.safe_load_all((manifests / "mattermost-operator" / "mattermost_full.yaml")
                                                     .read_text()) if d and d["kind"] == "Mattermost")
    mattermost["metadata"]["namespace"] = "chat"
    prometheus = yaml.safe_load((manifests / "kube-prometheus" / "prometheus-prometheus.yaml").read_text())
    everything = pods()

    def group(name: str, version: str) -> dict:
        gv = {"groupVersion": f"{name}/{version}", "version": version}
        return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": [gv], "preferredVersion": gv}

    return {
        "/api/v1/pods?limit=500": {"kind": "PodList", "apiVersion": "v1",
                                   "metadata": {"resourceVersion": "550088", "continue": "page-2"},
                                   "items": everything[:3]},
        "/api/v1/pods?limit=500&continue=page-2": {"kind": "PodList", "apiVersion": "v1",
                                                   "metadata": {"resourceVersion": "550088"}, "items": everything[3:]},
        "/apis/installation.mattermost.com": group("installation.mattermost.com", "v1beta1"),
        "/apis/installation.mattermost.com/v1beta1/mattermosts?limit=500": {
            "kind": "MattermostList", "apiVersion": "installation.mattermost.com/v1beta1", "metadata": {},
            "items": [mattermost]},
        "/apis/monitoring.coreos.com": group("monitoring.coreos.com", "v1"),
        "/apis/monitoring.coreos.com/v1/prometheuses?limit=500": {
            "kind": "PrometheusList", "apiVersion": "monitoring.coreos.com/v1", "metadata": {}, "items": [prometheus]},
        "/apis/monitoring.coreos.com/v1/alertmanagers?limit=500": {
            "kind": "AlertmanagerList", "apiVersion": "monitoring.coreos.com/v1", "metadata": {}, "items": []},
    }


def client_pair(directory: Path, ca_cert: Path, ca_key: ec.EllipticCurvePrivateKey | None = None) -> tuple[Path, Path]:
    """A client certificate (CN=discover) signed by a CA of its own; returns (its CA, cert+key PEM)."""
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    authority_key = ec.generate_private_key(ec.SECP256R1())
    authority_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes client CA")])
    authority = (x509.CertificateBuilder().subject_name(authority_name).issuer_name(authority_name)
                 .public_key(authority_key.public_key()).serial_number(1).not_valid_before(now)
                 .not_valid_after(now + datetime.timedelta(days=1))
                 .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                 .sign(authority_key, hashes.SHA256()))
    certificate = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "discover")]))
                   .issuer_name(authority_name).public_key(key.public_key()).serial_number(2)
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .sign(authority_key, hashes.SHA256()))
    (directory / "client-ca.crt").write_bytes(authority.public_bytes(serialization.Encoding.PEM))
    (directory / "client.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "client.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    return directory / "client-ca.crt", directory / "client.crt"


class ApiServer:
    """HTTPS on ADDRESS: a bearer token or a client certificate, then the recorded routes."""

    def __init__(self, directory: Path):
        self.ca, cert, key = write_tls_material(directory / "server", ADDRESS)
        client_ca, _ = client_pair(directory, self.ca)
        answers, seen = routes(), list[str]()
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                peer = self.connection.getpeercert()  # type: ignore[attr-defined]  # an SSLSocket
                if self.headers.get("Authorization") != f"Bearer {TOKEN}" and not peer:
                    return self._send(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "Unauthorized", "code": 401})
                body = answers.get(self.path)
                if body is None:
                    return self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                            "reason": "NotFound", "code": 404})
                return self._send(200, body)

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
        self.httpd = http.server.ThreadingHTTPServer((ADDRESS, 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://{ADDRESS}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def api(tmp_path):
    server = ApiServer(tmp_path)
    try:
        yield server
    finally:
        server.close()


def kubeconfig(path: Path, server: str, *, cluster: dict, user: dict) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": server, **cluster}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "reader"}},
                     {"name": "other", "context": {"cluster": "lab", "user": "nobody"}}],
        "users": [{"name": "reader", "user": user}, {"name": "nobody", "user": {}}]}))
    return path


def ca_data(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_every_pod_owner_digest_and_custom_resource(api, tmp_path):
    config = kubeconfig(tmp_path / "kubeconfig", api.url, cluster={"certificate-authority-data": ca_data(api.ca)},
                        user={"token": TOKEN})
    result = discover.discover(discover.Sources(kubeconfig=config))
    images = {entry.text: entry for entry in result.images}
    assert set(images) == {
        "gcr.io/kuar-demo/kuard-amd64:1@sha256:bd17153e9a3319f401acc7a27759243f37d422c06cbbf01cb3e1f54bbbfe14f4",
        "docker.io/library/nginx:1.14.2@sha256:f7988fb6c02e0ce69257d9bd9cf37ae20a60f1df7563c3a2a6abe24160306b8d",
        f"quay.io/prometheus/node-exporter:v1.8.2@{NODE_EXPORTER_DIGEST}",
        "quay.io/brancz/kube-rbac-proxy:v0.18.0",   # docker://sha256:… is a local ID, not a digest
        "docker.io/library/busybox:1.36",            # so is containerd's bare sha256:…
        "docker.io/mattermost/mattermost-enterprise-edition:5.28.0", "docker.io/library/postgres:13",
        "docker.io/appropriate/curl:latest", "quay.io/prometheus/prometheus:v3.13.2",
    }
    kuard = images["gcr.io/kuar-demo/kuard-amd64:1"
                   "@sha256:bd17153e9a3319f401acc7a27759243f37d422c06cbbf01cb3e1f54bbbfe14f4"]
    assert [(o.where, o.rule, o.note) for o in kuard.origins] == [
        ("cluster lab:Pod/default/queue-l4dv8:queue", "container.image + imageID (docker)",
         "owned by ReplicaSet/queue")]
    exporter = images[f"quay.io/prometheus/node-exporter:v1.8.2@{NODE_EXPORTER_DIGEST}"].origins[0]
    assert exporter.rule == "container.image + imageID (containerd/CRI-O)"
    proxy = images["quay.io/brancz/kube-rbac-proxy:v0.18.0"].origins[0]
    assert "docker image ID, not a registry digest" in proxy.note
    assert images["docker.io/library/postgres:13"].origins[0].where == "cluster lab:Mattermost/chat/mm-example-full"
    assert "/api/v1/pods?limit=500&continue=page-2" in api.seen, "every page is read"


def test_client_certificates_from_files(api, tmp_path):
    config = kubeconfig(tmp_path / "kubeconfig", api.url, cluster={"certificate-authority": str(api.ca)},
                        user={"client-certificate": "client.crt", "client-key": "client.key"})
    result = bundle_cli("discover", "--kubeconfig", config, "--images-file", tmp_path / "images.txt")
    assert result.returncode == 0, result.stderr
    assert "quay.io/prometheus/prometheus:v3.13.2\n" in (tmp_path / "images.txt").read_text()
    refused = bundle_cli("discover", "--kubeconfig", config, "--context", "other")
    assert refused.returncode == 1 and "401 Unauthorized" in refused.stderr


def test_a_wrong_or_missing_ca_is_refused_and_nothing_written(api, tmp_path):
    other_ca, _, _ = write_tls_material(tmp_path / "other", ADDRESS)
    cases: list[tuple[dict, str]] = [
             ({"certificate-authority-data": ca_data(other_ca)}, "does not verify against the kubeconfig's CA"),
             ({}, "has no certificate-authority(-data)"),
             ({"insecure-skip-tls-verify": True}, "skips TLS verification")]
    for cluster, says in cases:
        config = kubeconfig(tmp_path / "kubeconfig", api.url, cluster=cluster, user={"token": TOKEN})
        result = bundle_cli("discover", "--kubeconfig", config, "--images-file", tmp_path / "images.txt")
        assert result.returncode == 1, result.stdout
        assert str(config) in result.stderr and says in result.stderr, result.stderr
        assert not (tmp_path / "images.txt").exists()
    with pytest.raises(BundleError, match="exec/auth-provider plugins are not supported"):
        discover.discover(discover.Sources(kubeconfig=kubeconfig(
            tmp_path / "kubeconfig", api.url, cluster={"certificate-authority": str(api.ca)},
            user={"exec": {"command": "aws"}})))


def test_the_query_carries_the_namespace(api, tmp_path):
    config = kubeconfig(tmp_path / "kubeconfig", api.url, cluster={"certificate-authority": str(api.ca)},
                        user={"token": TOKEN})
    result = discover.discover(discover.Sources(kubeconfig=config, namespace="chat"))
    assert not result.images  # nothing recorded for that path: 404s are skipped, not errors
    assert "/api/v1/namespaces/chat/pods?limit=500" in {urllib.parse.unquote(path) for path in api.seen}
