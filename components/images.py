"""Container image references: parsed and normalised once, mapped into the private registry.

Parsing is Docker Distribution's (`github.com/distribution/reference`), case for case:
`parse_reference` is its `Parse`, `parse_normalized` its `ParseNormalizedNamed` (the Docker Hub
defaults: `docker.io`, and `library/` for a single-component Hub name, so that `nginx:1.25` and
`docker.io/library/nginx:1.25` are the same image), `split_docker_domain` its rule for telling a
registry host from a Docker Hub namespace. Every grammar is ASCII only, as Go's `\\w` and character
classes are. Digests are those `go-digest` validates with only sha256 registered.

`parse_image_ref` builds the project's `ImageRef` on top and refuses, on purpose, a few references
Distribution accepts (tests/data/distribution_reference_cases.yaml lists them with the reasons):
one without a tag or digest (unless asked not to), a port outside 1-65535, a bracketed IPv6 host
that is no IPv6 address, and a name whose path inside the private registry would pass 255
characters.

Inside the private registry every image keeps its source registry as the first path element
(`<private>/docker.io/library/nginx:1.25`, `<private>/quay.io/prometheus/node-exporter:v1.8.0`), so
images of the same name from two registries can never collide, and a containerd mirror can map
`docker.io` to `<private>/v2/docker.io` with a single `override_path`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import NamedTuple

DOCKER_HUB = "docker.io"
LEGACY_DOCKER_HUB = "index.docker.io"
"""Docker Hub's old "index" name; Distribution normalises it to `docker.io`."""
LOCALHOST = "localhost"
OFFICIAL_PREFIX = "library/"
MAX_NAME_LENGTH = 255
"""Distribution's `RepositoryNameTotalLengthMax`: the most characters a repository path may have."""

# The grammar of distribution/reference regexp.go, production by production.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_NAME_COMPONENT}(?:\.{_DOMAIN_NAME_COMPONENT})*"
_IPV6_ADDRESS = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_AND_PORT = rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # Go's [\w][\w.-]{0,127}; \w is ASCII there
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"

# Anchored at the end as well (`\Z`), so `match` and `fullmatch` agree.
PATH_COMPONENT = re.compile(rf"(?:{_PATH_COMPONENT})\Z")
DOMAIN = re.compile(rf"(?:{_DOMAIN_AND_PORT})\Z")
"""A registry host: DNS-like name, IPv4 or bracketed IPv6 literal, optional `:port` (Distribution's
`DomainRegexp`)."""
TAG = re.compile(rf"(?:{_TAG})\Z")
DIGEST = re.compile(rf"(?:{_DIGEST})\Z")
"""A digest as the reference grammar writes one; `go-digest` then checks algorithm and length."""
IDENTIFIER = re.compile(r"[a-f0-9]{64}\Z")
"""A 64-hex image ID, which is never read as a repository name."""
NAME = re.compile(rf"(?:({_DOMAIN_AND_PORT})/)?({_REMOTE_NAME})\Z")
"""A name, capturing (domain, path): the first component is the domain whenever it can be one."""
REFERENCE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?\Z")
"""A whole reference, capturing (name, tag, digest)."""
_SHA256_HEX = re.compile(r"[a-f0-9]{64}\Z")


class ImageRefError(ValueError):
    """A reference that Docker Distribution would not accept, or that this project refuses."""


class Reference(NamedTuple):
    """A reference as Distribution's `Parse` splits it; `domain` is None when there is none."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str) -> Reference:
    """Distribution's `Parse`: the grammar only, no Docker Hub defaults (`test.com:5000` is the
    name `test.com` tagged `5000`). Raises ImageRefError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ImageRefError("empty image reference")
    return _parse(text, text)


def _parse(text: str, shown: str) -> Reference:
    """`Parse` of `text`; errors quote `shown`, the reference as it was written."""
    match = REFERENCE.match(text)
    if match is None:
        if text.lower() != text and REFERENCE.match(text.lower()):
            raise ImageRefError(f"{shown!r}: repository name must be lowercase")
        raise ImageRefError(f"{shown!r}: invalid reference format: {_explain(text)}")
    name, tag, digest = match.groups()
    name_match = NAME.match(name)
    assert name_match is not None  # REFERENCE's name is NAME's grammar
    domain, path = name_match.groups()
    if len(path) > MAX_NAME_LENGTH:
        raise ImageRefError(f"{shown!r}: repository name longer than {MAX_NAME_LENGTH} characters")
    if digest is not None:
        _validate_digest(shown, digest)
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def split_docker_domain(name: str) -> tuple[str, str]:
    """Distribution's `splitDockerDomain`: (registry, rest) for a name as Docker reads it.

    The first element is a registry host when it is `localhost`, holds a `.` or a `:`, or has a
    capital (Hub namespaces are lowercase); otherwise the name is on Docker Hub. A Hub name of one
    component is an official image under `library/`. Any text is split; validity is checked later.
    """
    first, slash, rest = name.partition("/")
    if not slash:
        return DOCKER_HUB, OFFICIAL_PREFIX + name
    if first == LEGACY_DOCKER_HUB:
        domain, remote = DOCKER_HUB, rest
    elif first == LOCALHOST or "." in first or ":" in first or first.lower() != first:
        domain, remote = first, rest
    else:
        domain, remote = DOCKER_HUB, name
    if domain == DOCKER_HUB and "/" not in remote:
        remote = OFFICIAL_PREFIX + remote
    return domain, remote


def parse_normalized(text: str) -> Reference:
    """Distribution's `ParseNormalizedNamed`: Docker Hub's defaults applied, so `domain` is always
    set (`redis` is `docker.io/library/redis`). Raises ImageRefError saying what is wrong."""
    if not isinstance(text, str) or not text:
        raise ImageRefError("empty image reference")
    if IDENTIFIER.match(text):
        raise ImageRefError(f"{text!r}: a 64-hex string is an image ID and cannot be a repository name")
    domain, remainder = split_docker_domain(text)
    remote = remainder.partition(":")[0]
    if remote.lower() != remote:
        raise ImageRefError(f"{text!r}: repository name {remote!r} is not valid: it must be lowercase")
    return _parse(f"{domain}/{remainder}", text)


@dataclass(frozen=True, order=True)
class ImageRef:
    """A normalised image reference: `registry/path[:tag][@digest]`."""

    registry: str
    """Source registry host[:port] as Distribution names it: Docker Hub is `docker.io`, any other
    host is kept as written (its case too); `registry_prefix` folds it for the private registry."""
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
    def familiar_name(self) -> str:
        """The name as Docker shows it: `nginx` for `docker.io/library/nginx`, `x/y` for
        `docker.io/x/y`, any other registry's names in full (Distribution's `FamiliarName`)."""
        if self.registry != DOCKER_HUB:
            return self.name
        short = self.path.removeprefix(OFFICIAL_PREFIX)
        return short if "/" not in short else self.path

    @property
    def familiar(self) -> str:
        """The whole reference as Docker shows it (Distribution's `FamiliarString`)."""
        return self.familiar_name + str(self)[len(self.name):]

    @property
    def docker_ref(self) -> str:
        """What a container runtime pulls and records (Distribution's `ParseDockerRef`): the digest
        wins over a tag, and no tag means `latest`."""
        if self.digest:
            return f"{self.name}@{self.digest}"
        return f"{self.name}:{self.tag or 'latest'}"

    @property
    def private_path(self) -> str:
        """Repository path inside the private registry: the source registry becomes a path prefix
        (`registry_prefix`)."""
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


def host_and_port(registry: str) -> tuple[str, str | None]:
    """(`host`, `port` or None) of a registry host[:port]; an IPv6 host keeps its brackets."""
    if registry.startswith("["):
        host, _, after = registry.partition("]")
        return host + "]", after[1:] or None
    host, colon, port = registry.partition(":")
    return host, port if colon else None


def registry_prefix(registry: str) -> str:
    """The path element that stands for a source registry inside the private one.

    Host names are case-insensitive and a path is lowercase: `Quay.io` and `quay.io` share
    `quay.io`. A port cannot appear in a path, so `host:5000` becomes `host_5000`. An IPv6 host
    becomes its eight groups written out in full, joined by `_` (`[::1]:5000` becomes
    `0000_0000_0000_0000_0000_0000_0000_0001_5000`): a DNS name has no `_`, so no two hosts share
    a prefix, and two spellings of one address do.
    """
    host, port = host_and_port(registry)
    if host.startswith("["):
        try:
            host = ipaddress.IPv6Address(host[1:-1]).exploded.replace(":", "_")
        except ValueError:
            raise ImageRefError(f"{registry!r}: {host} is not an IPv6 address") from None
    prefix = host.lower()
    return f"{prefix}_{port}" if port is not None else prefix


def normalise_registry_host(text: str) -> str:
    """`text` as the `registry` of every image reference that names it, or ImageRefError.

    A host Docker would take for a Docker Hub namespace (no `.`, no `:`, not `localhost`, all
    lowercase) is refused, and `index.docker.io` becomes `docker.io`; anything else is kept as
    written. Thus `normalise_registry_host(h) == parse_image_ref(f"{h}/x:1").registry`.
    """
    if not isinstance(text, str) or not DOMAIN.match(text):
        raise ImageRefError(f"{text!r} is not a registry host[:port] (a DNS name, an IPv4 address or a "
                            "bracketed IPv6 address, then an optional :port)")
    domain, _ = split_docker_domain(f"{text}/x")
    if domain == DOCKER_HUB and text not in (DOCKER_HUB, LEGACY_DOCKER_HUB):
        raise ImageRefError(f"{text!r} reads as a Docker Hub namespace, not a registry host; "
                            "name it with a '.' or a :port (or localhost)")
    _check_host(text, text)
    return domain


def parse_image_ref(text: str, *, require_pin: bool = True) -> ImageRef:
    """Parse and normalise `text` as Distribution does; raise ImageRefError saying what is wrong.

    With `require_pin`, a reference must carry a tag or a digest: an implicit `latest` is a
    moving target, and an air-gapped copy must be reproducible.
    """
    if isinstance(text, str) and text and any(c.isspace() for c in text):
        raise ImageRefError(f"{text!r}: white space is not allowed in an image reference")
    ref = parse_normalized(text)
    assert ref.domain is not None  # normalised names always have one
    _check_host(text, ref.domain)
    image = ImageRef(registry=ref.domain, path=ref.path, tag=ref.tag, digest=ref.digest)
    if len(image.private_path) > MAX_NAME_LENGTH:
        raise ImageRefError(f"{text!r}: name longer than {MAX_NAME_LENGTH} characters in the private registry "
                            f"({image.private_path!r})")
    if require_pin and ref.tag is None and ref.digest is None:
        raise ImageRefError(f"{text!r}: no tag or digest; pin it (e.g. {text}:1.2.3 or {text}@sha256:…)")
    return image


def _check_host(text: str, registry: str) -> None:
    """What Distribution's grammar lets through but no client can connect to."""
    host, port = host_and_port(registry)
    if port is not None and (len(port) > 5 or not 1 <= int(port) <= 65535):
        raise ImageRefError(f"{text!r}: registry port {port} is outside 1-65535")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ImageRefError(f"{text!r}: registry host {host} is not an IPv6 address") from None


def _validate_digest(text: str, digest: str) -> None:
    """`go-digest`'s `Digest.Validate` with sha256 the only algorithm registered."""
    algorithm, _, encoded = digest.partition(":")
    if algorithm != "sha256":
        raise ImageRefError(f"{text!r}: digest algorithm {algorithm!r} is not supported; use sha256")
    if len(encoded) != 64:
        raise ImageRefError(f"{text!r}: sha256 digest must have 64 hex digits, not {len(encoded)}")
    if not _SHA256_HEX.match(encoded):
        raise ImageRefError(f"{text!r}: sha256 digest must be lowercase hex")


def _explain(text: str) -> str:
    """Which part of a reference the grammar refuses (for the message only; `REFERENCE` decides)."""
    name, at, digest = text.partition("@")
    if at and not DIGEST.match(digest):
        return f"digest {digest!r} is not algorithm:hex (e.g. sha256: and 64 hex digits)"
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not TAG.match(tag):
            return (f"tag {tag!r} is not valid (ASCII letters, digits, '_', '.' and '-', not first '.' or '-'; "
                    "at most 128)")
    parts = name.split("/")
    if len(parts) > 1 and not PATH_COMPONENT.match(parts[0]) and not DOMAIN.match(parts[0]):
        return f"registry host {parts[0]!r} is not a valid host[:port]"
    for part in parts[1:] if len(parts) > 1 and DOMAIN.match(parts[0]) else parts:
        if not PATH_COMPONENT.match(part):
            return (f"repository path element {part!r} is not valid "
                    "(lowercase ASCII letters and digits, separated by '.', '_', '__' or '-')")
    return "not registry/path[:tag][@digest]"
