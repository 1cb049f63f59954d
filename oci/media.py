"""OCI and Docker media types, and what a manifest tells about its image: its digest, its platforms.

Shared by the fill (the image lock) and `bundle/` (a bundle's inventory), so both describe an
image the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFEST_TYPES = INDEX_TYPES + (OCI_MANIFEST, DOCKER_MANIFEST)
IMAGE_CONFIG_TYPES = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)


def sha256(data: bytes) -> str:
    """The digest of `data`, as registries write it (`sha256:<hex>`)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_index(document: dict[str, Any]) -> bool:
    """An index (manifest list) rather than one platform's manifest."""
    return document.get("mediaType") in INDEX_TYPES or "manifests" in document


def describe(raw: bytes, load_config: Callable[[str], bytes]) -> dict[str, Any]:
    """{"mediaType", "platforms"} of a manifest or index (an OCI artifact, such as a Trivy
    database, gets its "artifactType" instead of platforms); `load_config(digest)` reads a config."""
    document = json.loads(raw)
    if "manifests" in document:
        names = [platform_name(entry.get("platform", {})) for entry in document["manifests"]]
        return {"mediaType": document.get("mediaType", ""), "platforms": sorted(names)}
    config_type = document.get("config", {}).get("mediaType", "")
    if config_type not in IMAGE_CONFIG_TYPES:
        return {"mediaType": document.get("mediaType", ""), "platforms": [],
                "artifactType": document.get("artifactType") or config_type}
    config = json.loads(load_config(document["config"]["digest"]))
    return {"mediaType": document.get("mediaType", ""), "platforms": [platform_name(config)]}


def platform_name(platform: dict[str, Any]) -> str:
    """`os/architecture[/variant]` of an index entry's platform or an image config."""
    name = f"{platform.get('os', 'unknown')}/{platform.get('architecture', 'unknown')}"
    return name + (f"/{platform['variant']}" if platform.get("variant") else "")
