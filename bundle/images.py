"""Images as one OCI layout: copied with skopeo, named by the project's convention, read back.

Every image is copied with `skopeo copy --all --preserve-digests` from where the stack's
`registry.fill.upstreams` would fetch it (`docker.io` → `mirror:5000/docker.io`, …) into one
working layout, where skopeo stores each blob once however many images share it. The bundle's
`images/` layout is then assembled from that working layout: an `index.json` naming exactly the
images asked for (`org.opencontainers.image.ref.name` = `ImageRef.layout_name`, what the fill's
`registry.fill.ociLayout` looks up), and the blobs those images reference, or, for a delta, only
the blobs the inside does not have yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from components.images import ImageRef, ImageRefError, parse_image_ref
from oci.media import OCI_INDEX, describe, is_index

from .manifest import BundleError, sha256_file

REF_NAME = "org.opencontainers.image.ref.name"
OCI_LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'
SKOPEO_TIMEOUT = 3600


# --- what to copy, and from where ---------------------------------------------------------

def read_images_file(path: Path) -> list[str]:
    """One reference a line; blank lines and `#` comments are skipped."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise BundleError(f"{path}: cannot be read ({error.strerror})") from None
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def parse_upstreams(pairs: list[str]) -> dict[str, str]:
    """`docker.io=mirror.corp:5000/docker.io` pairs, as `registry.fill.upstreams` maps them."""
    upstreams = {}
    for pair in pairs:
        registry, separator, prefix = pair.partition("=")
        if not separator or not registry or not prefix or "://" in prefix:
            raise BundleError(f"--images-from {pair!r}: give REGISTRY=HOST[:PORT]/PATH "
                              "(e.g. docker.io=mirror.corp:5000/docker.io)")
        upstreams[registry.strip().lower()] = prefix.strip().rstrip("/")
    return upstreams


def stack_images(stack_file: Path) -> tuple[list[str], dict[str, str]]:
    """`images` and `registry.fill.upstreams` of a `Pulumi.<env>.yaml`."""
    import yaml  # only this option needs PyYAML: the rest runs on a bare python3

    try:
        config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
    except (OSError, yaml.YAMLError) as error:
        raise BundleError(f"{stack_file}: cannot be read as a stack file ({error})") from None
    images = config.get("airgap-infra:images") or []
    fill = ((config.get("airgap-infra:registry") or {}).get("fill") or {})
    if not isinstance(images, list) or not all(isinstance(image, str) for image in images):
        raise BundleError(f"{stack_file}: airgap-infra:images is not a list of references")
    return images, {str(k).lower(): str(v).rstrip("/") for k, v in (fill.get("upstreams") or {}).items()}


def parse_refs(texts: list[str]) -> list[ImageRef]:
    """Parsed and normalised; two references that name the same layout entry are refused."""
    refs: dict[str, ImageRef] = {}
    for text in texts:
        try:
            ref = parse_image_ref(text)
        except ImageRefError as error:
            raise BundleError(f"image {error}") from None
        other = refs.get(ref.layout_name)
        if other is not None and other != ref:
            raise BundleError(f"{text}: names the same layout entry as {other} ({ref.layout_name})")
        refs[ref.layout_name] = ref
    return sorted(refs.values(), key=lambda ref: ref.layout_name)


def source_location(ref: ImageRef, upstreams: dict[str, str]) -> str:
    """Where skopeo reads `ref`: the fill's rule (`components.registry.fill_image`)."""
    base = upstreams.get(ref.registry, ref.registry)
    return f"docker://{base}/{ref.path}" + (f"@{ref.digest}" if ref.digest else f":{ref.tag}")


def copy_into_layout(refs: list[ImageRef], layout: Path, upstreams: dict[str, str], *,
                     src_cert_dir: str | None = None, authfile: str | None = None,
                     policy: str | None = None, retries: int = 2, log=print) -> None:
    """skopeo copy every image, every platform, digests kept, into one layout.

    One after another: two skopeo processes writing the same layout race on its index.json.
    Blobs already in the layout (shared layers, or a kept working layout) are not fetched again.
    """
    if ":" in str(layout):
        raise BundleError(f"{layout}: skopeo's oci: transport cannot take a path with ':'")
    layout.mkdir(parents=True, exist_ok=True)
    for number, ref in enumerate(refs, 1):
        command = ["skopeo", *(["--policy", policy] if policy else []), "copy", "--quiet", "--all",
                   "--preserve-digests", "--retry-times", str(retries),
                   *(["--src-cert-dir", src_cert_dir] if src_cert_dir else []),
                   *(["--src-authfile", authfile] if authfile else []),
                   source_location(ref, upstreams), f"oci:{layout}:{ref.layout_name}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=SKOPEO_TIMEOUT, check=False)
        except FileNotFoundError:
            raise BundleError("skopeo is not installed; install it (apt-get install skopeo)") from None
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise BundleError(f"{ref}: skopeo copy from {source_location(ref, upstreams)} failed: {detail}")
        log(f"  [{number}/{len(refs)}] {ref.layout_name}")


# --- reading a layout ---------------------------------------------------------------------

class Layout:
    """An OCI image layout on disk: its index and its blobs, each checked against its digest."""

    def __init__(self, root: Path):
        self.root = root

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        if algorithm != "sha256" or len(hexdigest) != 64:
            raise BundleError(f"{self.root}: digest {digest!r} is not sha256")
        return self.root / "blobs" / "sha256" / hexdigest

    def index(self) -> list[dict]:
        try:
            document = json.loads((self.root / "index.json").read_bytes())
        except (OSError, ValueError) as error:
            raise BundleError(f"{self.root / 'index.json'}: not a readable OCI index ({error})") from None
        return list(document.get("manifests", []))

    def named(self) -> dict[str, dict]:
        """Layout name → index entry (entries without a name are ignored)."""
        return {entry["annotations"][REF_NAME]: entry for entry in self.index()
                if entry.get("annotations", {}).get(REF_NAME)}

    def read(self, digest: str) -> bytes:
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except OSError:
            raise BundleError(f"{path}: blob {digest} is missing from the layout") from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise BundleError(f"{path}: blob {digest} is altered")
        return data

    def closure(self, digest: str) -> list[str]:
        """Every blob an image needs: its manifest (or index and each platform's), configs, layers."""
        found = [digest]
        document = json.loads(self.read(digest))
        if is_index(document):
            for child in document.get("manifests", []):
                found += self.closure(child["digest"])
        else:
            if "config" in document:
                found.append(document["config"]["digest"])
            found += [layer["digest"] for layer in document.get("layers", [])]
        return list(dict.fromkeys(found))

    def summary(self, name: str, entry: dict, ref: str | None = None) -> dict:
        """ref, layout name, digest, media type and platforms (or artifact type) of one image."""
        # The fill's own reading of platforms and artifact types, so the lock and the bundle agree.
        digest = entry["digest"]
        described = describe(self.read(digest), self.read)
        return {"ref": ref or name, "layoutName": name, "digest": digest, **described}


def scan_layout(root: Path) -> list[dict]:
    """Summaries of every named image in a layout (an imported one, for its inventory)."""
    if not (root / "index.json").exists():
        return []
    layout = Layout(root)
    return sorted((layout.summary(name, entry) for name, entry in layout.named().items()),
                  key=lambda image: image["layoutName"])


def assembled_index(entries: list[dict]) -> bytes:
    """index.json of the bundle's layout: the given entries, sorted by name, compact."""
    ordered = sorted(entries, key=lambda entry: entry["annotations"][REF_NAME])
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": ordered},
                      sort_keys=True, separators=(",", ":")).encode()


def select(work: Layout, refs: list[ImageRef]) -> tuple[list[dict], list[dict], list[str]]:
    """(index entries, summaries, blob digests) of `refs` in the working layout."""
    named = work.named()
    entries, summaries, blobs = [], [], []
    for ref in refs:
        entry = named.get(ref.layout_name)
        if entry is None:
            raise BundleError(f"{ref}: not in the working layout {work.root}")
        if ref.digest and entry["digest"] != ref.digest:
            raise BundleError(f"{ref}: the layout holds {entry['digest']}, the reference pins {ref.digest}")
        entries.append({key: entry[key] for key in ("mediaType", "digest", "size", "annotations", "platform")
                        if key in entry})
        summaries.append(work.summary(ref.layout_name, entry, str(ref)))
        blobs += work.closure(entry["digest"])
    return entries, summaries, sorted(set(blobs))


# --- combining a delta's layout with the one the inside has --------------------------------

def merge_layout(target: Path, delta: Path, *, log=print) -> int:
    """Add a delta layout's blobs to `target` and take its (complete) index; returns blobs added.

    Refused, with `target` untouched, unless every blob the new index needs is then present.
    The index is replaced last and by rename: a reader sees the old layout or the new one.
    """
    source, destination = Layout(delta), Layout(target)
    new_index = source.index()
    (target / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    delta_dir = delta / "blobs" / "sha256"
    delta_blobs = {path.name for path in delta_dir.iterdir()} if delta_dir.is_dir() else set()
    present = {path.name for path in (target / "blobs" / "sha256").iterdir()}

    def lookup(digest: str) -> bytes:
        hexdigest = digest.partition(":")[2]
        return (source if hexdigest in delta_blobs else destination).read(digest)

    missing = []
    for entry in new_index:
        # (digest, is it a manifest or index to read further); configs and layers are leaves.
        pending = [(entry["digest"], True)]
        while pending:
            digest, document_blob = pending.pop()
            hexdigest = digest.partition(":")[2]
            if hexdigest not in delta_blobs and hexdigest not in present:
                missing.append(f"{digest} ({entry.get('annotations', {}).get(REF_NAME, 'unnamed')})")
                continue
            if document_blob:
                document = json.loads(lookup(digest))
                pending += [(child["digest"], True) for child in document.get("manifests", [])]
                if "config" in document:
                    pending.append((document["config"]["digest"], False))
                pending += [(layer["digest"], False) for layer in document.get("layers", [])]
    if missing:
        raise BundleError(f"{delta}: the merged layout would lack {len(missing)} blobs, "
                          f"e.g. {missing[0]}; import the bundle this delta was built against first")
    added = 0
    for hexdigest in sorted(delta_blobs - present):
        blob = delta / "blobs" / "sha256" / hexdigest
        size, digest = sha256_file(blob)
        if digest != hexdigest:
            raise BundleError(f"{blob}: content does not match its name")
        temporary = target / "blobs" / "sha256" / f".{hexdigest}.{os.getpid()}"
        shutil.copyfile(blob, temporary)
        os.replace(temporary, target / "blobs" / "sha256" / hexdigest)
        added += 1
    if not (target / "oci-layout").exists():
        (target / "oci-layout").write_bytes(OCI_LAYOUT_FILE)
    temporary = target / f".index.json.{os.getpid()}"
    shutil.copyfile(delta / "index.json", temporary)
    os.replace(temporary, target / "index.json")
    log(f"merged {delta} into {target}: {added} blobs added, {len(new_index)} images in the index")
    return added

