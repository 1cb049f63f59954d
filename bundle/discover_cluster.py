"""Images of a running cluster, read through the Kubernetes API with a kubeconfig.

Every pod's containers (init and ephemeral ones included) with the owner that made the pod and,
where the kubelet reports one, the digest it runs (`status.*containerStatuses[].imageID`: containerd
and CRI-O write `name@sha256:…`, Docker `docker-pullable://name@sha256:…`; a bare `sha256:…` or
`docker://sha256:…` is a local image ID, not a registry digest, and is not used). Then the custom
resources the rules know (a `Mattermost`, a `Prometheus`, …), whose images an operator may start
only later.

The connection is verified against the kubeconfig's CA; a kubeconfig without one, or one that
skips verification, is refused. Client certificates and bearer tokens (inline or from a file) are
supported; `exec` and `auth-provider` plugins are not (give a token).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import yaml

from components.images import ImageRefError, parse_image_ref

from .discover_manifests import LOADER, objects, read_text
from .discover_rules import CONTAINER_LISTS, Hit, ResourceRule, container_hits, object_hits
from .manifest import BundleError

TIMEOUT = 30.0
PAGE = 500
MAX_PAGES = 1000
STATUS_LISTS = {"initContainers": "initContainerStatuses", "containers": "containerStatuses",
                "ephemeralContainers": "ephemeralContainerStatuses"}


class Cluster:
    """One API server from a kubeconfig context: verified TLS, credentials, JSON GETs."""

    def __init__(self, kubeconfig: Path, context_name: str | None):
        self.kubeconfig = kubeconfig
        config = yaml.load(read_text(kubeconfig), Loader=LOADER)
        if not isinstance(config, dict):
            raise BundleError(f"{kubeconfig}: not a kubeconfig")
        self.context = context_name or config.get("current-context")
        if not self.context:
            raise BundleError(f"{kubeconfig}: no current-context; give --context")
        context = self._named(config, "contexts", self.context, "context")
        cluster = self._named(config, "clusters", context.get("cluster"), "cluster")
        user = self._named(config, "users", context.get("user"), "user") if context.get("user") else {}
        server = urllib.parse.urlsplit(str(cluster.get("server", "")))
        if server.scheme != "https" or not server.hostname:
            raise BundleError(f"{kubeconfig}: cluster {context.get('cluster')}: server {cluster.get('server')!r} "
                              "is not an https:// URL")
        if cluster.get("insecure-skip-tls-verify"):
            raise BundleError(f"{kubeconfig}: cluster {context.get('cluster')} skips TLS verification; "
                              "give its certificate-authority instead")
        self.server, self.base_path = server, server.path.rstrip("/")
        self.tls = ssl.create_default_context(cadata=self._pem(cluster, "certificate-authority",
                                                                f"cluster {context.get('cluster')}"))
        self.token = self._token(user)
        self._client_certificate(user)

    def _named(self, config: dict, section: str, name: Any, what: str) -> dict:
        for entry in config.get(section) or []:
            if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get(what), dict):
                return entry[what]
        raise BundleError(f"{self.kubeconfig}: no {what} named {name!r}")

    def _pem(self, section: dict, key: str, where: str, *, required: bool = True) -> str:
        """`<key>-data` (base64) or `<key>` (a file, relative to the kubeconfig)."""
        if section.get(f"{key}-data"):
            try:
                return base64.b64decode(section[f"{key}-data"], validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                raise BundleError(f"{self.kubeconfig}: {where}: {key}-data is not base64 PEM") from None
        if section.get(key):
            path = Path(os.path.expanduser(str(section[key])))
            return read_text(path if path.is_absolute() else self.kubeconfig.parent / path)
        if required:
            raise BundleError(f"{self.kubeconfig}: {where} has no {key}(-data): discover does not talk to an "
                              "API server it cannot verify")
        return ""

    def _token(self, user: dict) -> str | None:
        if user.get("exec") or user.get("auth-provider"):
            raise BundleError(f"{self.kubeconfig}: user credentials from exec/auth-provider plugins are not "
                              "supported; give a token (or tokenFile) or a client certificate")
        if user.get("token"):
            return str(user["token"])
        if user.get("tokenFile"):
            return read_text(Path(str(user["tokenFile"]))).strip()
        return None

    def _client_certificate(self, user: dict) -> None:
        certificate = self._pem(user, "client-certificate", "user", required=False)
        key = self._pem(user, "client-key", "user", required=False)
        if not certificate:
            return
        if not key:
            raise BundleError(f"{self.kubeconfig}: user has a client certificate but no client-key")
        # ssl loads a certificate chain only from files: written 0600 in a private folder, removed at once.
        with tempfile.TemporaryDirectory(prefix="discover-kube-") as scratch:
            pair = Path(scratch) / "client.pem"
            pair.touch(mode=0o600)
            pair.write_text(certificate.rstrip() + "\n" + key)
            try:
                self.tls.load_cert_chain(str(pair))
            except ssl.SSLError as error:
                raise BundleError(f"{self.kubeconfig}: the client certificate and key do not load ({error})") from None

    def get(self, path: str, query: dict | None = None) -> dict | None:
        """The JSON body of a GET, None on 404."""
        target = self.base_path + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        connection = http.client.HTTPSConnection(self.server.hostname or "", self.server.port or 443,
                                                 context=self.tls, timeout=TIMEOUT)
        headers = {"Accept": "application/json", "User-Agent": "airgap-infra-discover"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        where = f"{self.kubeconfig}: {self.server.geturl()}"
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except ssl.SSLCertVerificationError as error:
            raise BundleError(f"{where}: the API server's certificate does not verify against the kubeconfig's CA "
                              f"({error.verify_message}); check certificate-authority") from None
        except (OSError, http.client.HTTPException) as error:
            raise BundleError(f"{where}: {error}") from None
        finally:
            connection.close()
        if response.status == 404:
            return None
        if response.status in (401, 403):
            raise BundleError(f"{where}{path}: {response.status} {response.reason}: the credentials may not list it")
        if response.status != 200:
            raise BundleError(f"{where}{path}: {response.status} {response.reason}")
        try:
            document = json.loads(body)
        except ValueError:
            raise BundleError(f"{where}{path}: the answer is not JSON") from None
        return document if isinstance(document, dict) else None

    def items(self, path: str) -> list[dict]:
        """Every item of a list, page by page (`limit` / `continue`)."""
        found: list[dict] = []
        token = None
        for _ in range(MAX_PAGES):
            page = self.get(path, {"limit": PAGE, **({"continue": token} if token else {})})
            if page is None:
                return found
            found += list(objects(page))
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return found
        raise BundleError(f"{self.kubeconfig}: {path}: more than {MAX_PAGES} pages")


def registry_digest(image_id: str, image: str) -> tuple[str | None, str]:
    """(digest of `image` in its registry, the runtime's form) from a container status's imageID."""
    if image_id.startswith("docker-pullable://"):
        value, runtime = image_id[len("docker-pullable://"):], "docker"
    elif image_id.startswith("docker://"):
        return None, "docker image ID"
    else:
        value, runtime = image_id, "containerd/CRI-O"
    if "@" not in value:
        return None, f"{runtime} image ID"
    try:
        reported, running = parse_image_ref(value), parse_image_ref(image, require_pin=False)
    except ImageRefError:
        return None, runtime
    return (reported.digest if reported.name == running.name else None), runtime


def pod_hits(pod: dict, context: str) -> list[Hit]:
    metadata = pod.get("metadata") or {}
    owners = ", ".join(f"{owner.get('kind')}/{owner.get('name')}" for owner in metadata.get("ownerReferences") or [])
    where = f"cluster {context}:Pod/{metadata.get('namespace', '-')}/{metadata.get('name', '?')}"
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    hits: list[Hit] = []
    for key in CONTAINER_LISTS:
        statuses = {entry.get("name"): entry for entry in status.get(STATUS_LISTS[key]) or []}
        for hit in container_hits(spec.get(key), where):
            name = hit.where.rsplit(":", 1)[1]
            if owners:
                hit.note = f"owned by {owners}"
            entry = statuses.get(name)
            if hit.rule == "container.image" and entry and entry.get("imageID"):
                digest, runtime = registry_digest(str(entry["imageID"]), hit.ref)
                if digest and "@" not in hit.ref:
                    hit.ref, hit.rule = f"{hit.ref}@{digest}", f"{hit.rule} + imageID ({runtime})"
                elif not digest:
                    hit.note = (hit.note + "; " if hit.note else "") + f"imageID is a {runtime}, not a registry digest"
            hits.append(hit)
    return hits


def discover(kubeconfig: Path, context: str | None, rules: list[ResourceRule], *,
             namespace: str | None = None) -> tuple[list[Hit], list[str]]:
    cluster = Cluster(kubeconfig, context)
    scope = f"/namespaces/{urllib.parse.quote(namespace)}" if namespace else ""
    hits: list[Hit] = []
    for pod in cluster.items(f"/api/v1{scope}/pods"):
        hits += pod_hits(pod, str(cluster.context))
    notes = []
    for rule in rules:
        if not rule.plural or not rule.group:
            continue
        group = cluster.get(f"/apis/{rule.group}")
        preferred = ((group or {}).get("preferredVersion") or {}).get("groupVersion")
        if not preferred:
            continue
        for item in cluster.items(f"/apis/{preferred}{scope}/{rule.plural}"):
            metadata = item.get("metadata") or {}
            where = f"cluster {cluster.context}:{rule.kind}/{metadata.get('namespace', '-')}/{metadata.get('name')}"
            item = {"kind": rule.kind, "apiVersion": preferred, **item}
            hits += object_hits(item, where, [rule])
        notes.append(f"cluster {cluster.context}: read {rule.plural}.{rule.group}")
    return hits, notes
