"""Container image references: parsed and normalised once, mapped into the private registry.

The grammar is Docker Distribution's (`distribution/reference`): an optional registry host (with
port), a lowercase path, then a tag, a digest, or both. Normalisation applies Docker's defaults
(`docker.io`, `library/` for single-component Docker Hub names) so that `nginx:1.25` and
`docker.io/library/nginx:1.25` are the same image.

Inside the private registry every image keeps its source registry as the first path element
(`<private>/docker.io/library/nginx:1.25`, `<private>/quay.io/prometheus/node-exporter:v1.8.0`), so
images of the same name from two registries can never collide, and a containerd mirror can map
`docker.io` to `<private>/v2/docker.io` with a single `override_path`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
DOMAIN = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]{{1,5}})?\Z")
TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
DIGEST = re.compile(r"sha256:[a-f0-9]{64}\Z")
MAX_NAME_LENGTH = 255


class ImageRefError(ValueError):
    """A reference that Docker Distribution would not accept."""


@dataclass(frozen=True, order=True)
class ImageRef:
    """A normalised image reference: `registry/path[:tag][@digest]`."""

    registry: str
    """Source registry host, lowercased, with `:port` when one was given (`docker.io`, `quay.io`)."""
    path: str
    """Repository path inside that registry (`library/nginx`, `prometheus/node-exporter`)."""
    tag: str | None = None
    """Tag, if any. A reference has a tag, a digest, or both."""
    digest: str | None = None
    """`sha256:<64 hex>` when the reference is pinned by digest."""

    @property
    def name(self) -> str:
        """`registry/path`, without tag or digest."""
        return f"{self.registry}/{self.path}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    @property
    def private_path(self) -> str:
        """Repository path inside the private registry: the source registry becomes a path prefix.

        A port cannot appear in a repository path, so `host:5000` becomes `host_5000`.
        """
        return f"{registry_prefix(self.registry)}/{self.path}"

    @property
    def private_tag(self) -> str:
        """The tag written in the private registry. Digest-only images get `sha256-<hex>`
        (a registry cannot be pushed to by digest alone; the digest stays the manifest's own)."""
        if self.tag:
            return self.tag
        assert self.digest is not None
        return self.digest.replace(":", "-")

    @property
    def layout_name(self) -> str:
        """Its `org.opencontainers.image.ref.name` in an OCI layout carried across the gap."""
        return f"{self.name}:{self.private_tag}"

    def private_ref(self, endpoint: str) -> str:
        """`<endpoint>/<private_path>:<private_tag>`."""
        return f"{endpoint}/{self.private_path}:{self.private_tag}"


def registry_prefix(registry: str) -> str:
    """The path element that stands for a source registry inside the private one."""
    return registry.lower().replace(":", "_")


def parse_image_ref(text: str, *, require_pin: bool = True) -> ImageRef:
    """Parse and normalise `text`; raise ImageRefError saying what is wrong.

    With `require_pin`, a reference must carry a tag or a digest: an implicit `latest` is a
    moving target, and an air-gapped copy must be reproducible.
    """
    if not isinstance(text, str) or not text:
        raise ImageRefError("empty image reference")
    if text != text.strip() or any(c.isspace() for c in text):
        raise ImageRefError(f"{text!r}: white space is not allowed in an image reference")

    remainder, digest = text, None
    if "@" in remainder:
        remainder, digest = remainder.split("@", 1)
        if not DIGEST.match(digest):
            raise ImageRefError(f"{text!r}: digest must be sha256: followed by 64 lowercase hex digits")

    tag = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1 :]
        if not TAG.match(tag):
            raise ImageRefError(
                f"{text!r}: tag {tag!r} is not valid (letters, digits, '_', '.', '-'; at most 128)"
            )

    parts = remainder.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        registry, path_parts = first, parts[1:]
        if not DOMAIN.match(registry):
            raise ImageRefError(f"{text!r}: registry host {registry!r} is not a valid host[:port]")
        port = registry.rpartition(":")[2] if ":" in registry else None
        if port is not None and not 1 <= int(port) <= 65535:
            raise ImageRefError(f"{text!r}: registry port {port} is outside 1-65535")
        registry = registry.lower()
    else:
        registry, path_parts = DOCKER_HUB, parts
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and len(path_parts) == 1:
        path_parts = ["library", *path_parts]

    for part in path_parts:
        if not PATH_COMPONENT.match(part):
            raise ImageRefError(
                f"{text!r}: repository path element {part!r} is not valid "
                "(lowercase letters and digits, separated by '.', '_', '__' or '-')"
            )
    path = "/".join(path_parts)
    if len(f"{registry}/{path}") > MAX_NAME_LENGTH:
        raise ImageRefError(f"{text!r}: name longer than {MAX_NAME_LENGTH} characters")
    if require_pin and tag is None and digest is None:
        raise ImageRefError(
            f"{text!r}: no tag or digest; pin it (e.g. {text}:1.2.3 or {text}@sha256:…)"
        )
    return ImageRef(registry=registry, path=path, tag=tag, digest=digest)
