"""The fill plan: which images the fill copies into a private registry, and how.

The one definition of the format, written by the fill step's renderer
(`components/render/registry_fill.py`) and read by the fill program (`oci/fill.py`)::

    {"endpoint": "host:port", "parallel": 4, "retries": 3,
     "images": [{"source": "docker.io/library/nginx:1.25", "from": "docker://…" | "oci:<dir>:<name>",
                 "repository": "docker.io/library/nginx", "tag": "1.25", "digest": "sha256:…" | null}]}

Canonical JSON (sorted keys, images sorted by source), so an unchanged stack renders identical text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
LOCATION_SCHEMES = ("docker://", "oci:")


class PlanError(ValueError):
    """A plan that is not the format above; the message names the field."""


@dataclass(frozen=True)
class FillImage:
    source: str
    """Normalised source reference, as the stack lists it."""
    location: str
    """Where skopeo reads it: `docker://…` or `oci:<dir>:<name>` (`from` in the JSON)."""
    repository: str
    """Repository path in the private registry."""
    tag: str
    """Tag written in the private registry."""
    digest: str | None
    """Pinned manifest digest; the fill fails if the source differs."""

    def __post_init__(self) -> None:
        for field in ("source", "repository", "tag"):
            _text(getattr(self, field), field)
        if not _text(self.location, "from").startswith(LOCATION_SCHEMES):
            raise PlanError(f"from: {self.location!r} is neither docker://… nor oci:<dir>:<name>")
        if self.digest is not None and not (isinstance(self.digest, str) and DIGEST.match(self.digest)):
            raise PlanError(f"digest: {self.digest!r} is not sha256: and 64 lowercase hex digits (or null)")

    def to_dict(self) -> dict[str, str | None]:
        return {"source": self.source, "from": self.location, "repository": self.repository, "tag": self.tag,
                "digest": self.digest}

    @classmethod
    def from_dict(cls, entry: object, where: str) -> FillImage:
        """One entry of `images`; `where` (`images[2]`) prefixes every error."""
        fields = _fields(entry, where, {"source", "from", "repository", "tag", "digest"})
        try:
            return cls(source=fields["source"], location=fields["from"], repository=fields["repository"],
                       tag=fields["tag"], digest=fields["digest"])
        except PlanError as error:
            raise PlanError(f"{where}.{error}") from None


@dataclass(frozen=True)
class FillPlan:
    endpoint: str
    """`host:port` of the private registry."""
    images: tuple[FillImage, ...]
    """What to copy; written sorted by source."""
    parallel: int
    """Copies at once."""
    retries: int
    """Attempts after a failed copy."""

    def __post_init__(self) -> None:
        _text(self.endpoint, "endpoint")
        _count(self.parallel, "parallel", minimum=1)
        _count(self.retries, "retries", minimum=0)

    def to_json(self) -> str:
        """The plan as canonical JSON."""
        plan = {
            "endpoint": self.endpoint,
            "parallel": self.parallel,
            "retries": self.retries,
            "images": [image.to_dict() for image in sorted(self.images, key=lambda image: image.source)],
        }
        return json.dumps(plan, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FillPlan:
        """Parse a plan; PlanError names what is wrong (`images[2].digest: …`)."""
        try:
            document = json.loads(text)
        except ValueError as error:
            raise PlanError(f"not JSON ({error})") from None
        fields = _fields(document, "", {"endpoint", "images", "parallel", "retries"})
        if not isinstance(fields["images"], list):
            raise PlanError(f"images: expected a list, got {type(fields['images']).__name__}")
        images = tuple(FillImage.from_dict(entry, f"images[{n}]") for n, entry in enumerate(fields["images"]))
        return cls(endpoint=fields["endpoint"], images=images, parallel=fields["parallel"], retries=fields["retries"])


def _fields(document: object, where: str, keys: set[str]) -> dict[str, Any]:
    """`document` as an object with exactly these keys."""
    if not isinstance(document, dict):
        raise PlanError(f"{where or 'the plan'}: expected an object, got {type(document).__name__}")
    prefix = f"{where}." if where else ""
    missing = sorted(keys - document.keys())
    if missing:
        raise PlanError(f"{prefix}{missing[0]}: missing")
    unknown = sorted(document.keys() - keys)
    if unknown:
        raise PlanError(f"{prefix}{unknown[0]}: not a field of the plan")
    return document


def _text(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise PlanError(f"{field}: expected a non-empty string, got {value!r}")
    return value


def _count(value: object, field: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PlanError(f"{field}: expected a whole number >= {minimum}, got {value!r}")
    return value
