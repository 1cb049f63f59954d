"""A client of the Distribution API (manifests and blobs) over HTTPS, standard library only.

Anonymous pulls get bearer tokens from the registry's token service, as Docker Hub hands them
out; a private registry gets basic auth. Each thread keeps its own connection alive.
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import re
import ssl
import threading
import time
import urllib.parse

from .media import MANIFEST_TYPES, sha256

HTTP_TIMEOUT = 60


class RegistryError(RuntimeError):
    """A registry answered, but not with what was asked for."""


def tls_context(host: str, extra_ca_dir: str | None) -> ssl.SSLContext:
    """The system store, plus certs.d directories as skopeo reads them, plus `extra_ca_dir`."""
    context = ssl.create_default_context()
    for directory in (extra_ca_dir, f"/etc/containers/certs.d/{host}", f"/etc/docker/certs.d/{host}"):
        for path in sorted(glob.glob(os.path.join(directory, "*.crt"))) if directory else ():
            context.load_verify_locations(cafile=path)
    return context


class RegistryClient:
    """Manifests and blobs of one registry: basic auth or anonymous bearer tokens, keep-alive."""

    def __init__(self, host: str, context: ssl.SSLContext, basic: str | None = None):
        self.host = host
        # skopeo and docker talk to Docker Hub's API at registry-1.docker.io
        self.api_host = "registry-1.docker.io" if host == "docker.io" else host
        self.context = context
        self.basic = basic
        self.tokens: dict[str, str] = {}
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPSConnection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            host, _, port = self.api_host.partition(":")
            connection = http.client.HTTPSConnection(host, int(port or 443), context=self.context,
                                                     timeout=HTTP_TIMEOUT)
            self.local.connection = connection
        return connection

    def _send(self, method: str, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        for attempt in range(3):
            connection = self._connection()
            try:
                connection.request(method, url, headers=headers)
                response = connection.getresponse()
                body = response.read()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, body
            except (OSError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")

    def request(self, method: str, repository: str, path: str,
                accept: tuple[str, ...] = ()) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lowercase names, body) of `/v2/<repository>/<path>`."""
        headers = {"Accept": ", ".join(accept)} if accept else {}
        if repository in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[repository]}"
        elif self.basic:
            headers["Authorization"] = f"Basic {self.basic}"
        url = f"/v2/{repository}/{path}"
        status, response_headers, body = self._send(method, url, headers)
        challenge = response_headers.get("www-authenticate", "")
        if status == 401 and challenge.lower().startswith("bearer ") and repository not in self.tokens:
            self.tokens[repository] = self._token(challenge, repository)
            headers["Authorization"] = f"Bearer {self.tokens[repository]}"
            status, response_headers, body = self._send(method, url, headers)
        return status, response_headers, body

    def _token(self, challenge: str, repository: str) -> str:
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = urllib.parse.urlsplit(fields.get("realm", ""))
        if realm.scheme != "https" or not realm.hostname:
            raise RegistryError(f"{self.host}: token service {fields.get('realm')!r} is not https")
        query = {"scope": f"repository:{repository}:pull"}
        if fields.get("service"):
            query["service"] = fields["service"]
        headers = {"Authorization": f"Basic {self.basic}"} if self.basic else {}
        connection = http.client.HTTPSConnection(realm.hostname, realm.port or 443, context=self.context,
                                                 timeout=HTTP_TIMEOUT)
        try:
            connection.request("GET", f"{realm.path}?{urllib.parse.urlencode(query)}", headers=headers)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RegistryError(f"{self.host}: token service answered {response.status}")
        document = json.loads(body)
        return document.get("token") or document["access_token"]

    def digest(self, repository: str, reference: str) -> str | None:
        """The manifest digest under `reference`, or None when there is none."""
        status, headers, _ = self.request("HEAD", repository, f"manifests/{reference}", MANIFEST_TYPES)
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"{self.host}/{repository}:{reference}: HEAD answered {status}")
        if headers.get("docker-content-digest", "").startswith("sha256:"):
            return headers["docker-content-digest"]
        raw = self.manifest(repository, reference)
        return None if raw is None else sha256(raw)

    def manifest(self, repository: str, reference: str) -> bytes | None:
        """The manifest (or index) under `reference`, as stored; None when there is none."""
        status, _, body = self.request("GET", repository, f"manifests/{reference}", MANIFEST_TYPES)
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"{self.host}/{repository}:{reference}: GET answered {status}")
        return body

    def blob(self, repository: str, digest: str) -> bytes:
        status, _, body = self.request("GET", repository, f"blobs/{digest}")
        if status != 200:
            raise RegistryError(f"{self.host}/{repository}: blob {digest} answered {status}")
        return body
