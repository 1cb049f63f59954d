"""The fill step: copies the stack's images into the private registry and prints the image lock.

The work itself is the fill program `oci/fill.py` (standard-library Python driving skopeo),
shipped with the modules of `oci` it imports, its plan and the registry's CA into a private
temporary directory on the machine that runs it. The registry credentials arrive as the step's
one stdin secret: a skopeo auth file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path

import oci
from oci.plan import FillImage, FillPlan

from ..images import ImageRef, parse_image_ref
from .shell import heredoc_delimiter

# The package as the fill program imports it: `__init__.py` too, so that this `oci` is a regular
# package and no other `oci` on the machine can take its place.
SHIPPED = ("__init__.py", "media.py", "plan.py", "registry.py", "fill.py")
PROGRAM = {module: (Path(oci.__file__).parent / module).read_text() for module in SHIPPED}


def registry_key(host: str) -> str:
    """A registry host as the stack's maps name it: normalised by the image parser (Docker Hub's
    legacy `index.docker.io` is docker.io) after lowercasing, since DNS does not tell `DOCKER.IO` from
    docker.io. ValueError (the parser's ImageRefError) when `host` is no registry host."""
    return parse_image_ref(f"{host.lower()}/airgap/probe:1").registry


def source_location(ref: ImageRef, upstreams: Mapping[str, str], layout_dir: str | None) -> str:
    """Where the fill reads `ref`: its name in an OCI layout, or `docker://` at its registry or at
    the mirror `upstreams` maps that registry to (keys as `registry_key` writes them)."""
    if layout_dir is not None:
        return f"oci:{layout_dir}:{ref.layout_name}"
    base = upstreams.get(registry_key(ref.registry), ref.registry)
    return f"docker://{base}/{ref.path}" + (f"@{ref.digest}" if ref.digest else f":{ref.tag}")


def source_registry(ref: ImageRef, upstreams: Mapping[str, str]) -> str:
    """The registry the fill contacts for `ref`, as `registry_key` names it."""
    return registry_key(upstreams.get(registry_key(ref.registry), ref.registry).split("/", 1)[0])


def fill_plan(endpoint: str, images: list[FillImage], *, parallel: int, retries: int) -> str:
    """The plan as `oci.plan` writes it (canonical JSON: an unchanged stack renders identical text)."""
    return FillPlan(endpoint=endpoint, images=tuple(images), parallel=parallel, retries=retries).to_json()


def _write(target: str, content: str) -> str:
    """Write `content` to the shell expression `target` (a fixed path under $work)."""
    if not content.endswith("\n"):
        content += "\n"
    delimiter = heredoc_delimiter(content)
    return f"cat > {target} <<'{delimiter}'\n{content}{delimiter}\n"


def fill_step(plan: str, ca_pem: str) -> str:
    """Step body. Prints the lock JSON on stdout; progress on stderr."""
    return "\n".join([
        "for tool in skopeo python3; do",
        "  if ! command -v \"$tool\" >/dev/null 2>&1; then",
        "    echo \"fill: $tool is not installed on $(hostname); install it from the internal mirror\" >&2; exit 1",
        "  fi",
        "done",
        "work=$(mktemp -d /tmp/airgap-fill.XXXXXX)",
        "AIRGAP_TMP+=(\"$work\")",
        "install -d -m 0700 \"$work/certs\" \"$work/oci\"",
        *(_write(f'"$work/oci/{module}"', text) for module, text in PROGRAM.items()),
        _write('"$work/plan.json"', plan),
        _write('"$work/certs/ca.crt"', ca_pem),
        "airgap_secret_tmp authfile",
        ('python3 -I "$work/oci/fill.py" --plan "$work/plan.json" --authfile "$authfile" '
         '--cert-dir "$work/certs" \\'),
        "  --cache \"${XDG_CACHE_HOME:-$HOME/.cache}/airgap-infra/fill-metadata.json\"",
    ])


def auth_file(endpoint: str, user: str, password: str) -> str:
    """A skopeo/containers auth file for one registry (a secret: holds the password)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {endpoint: {"auth": token}}}, sort_keys=True)
