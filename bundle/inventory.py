"""One bill of materials across images, Debian and RPM packages and files, and what changes.

An inventory is read from a bundle's manifest (a full or a delta one: both describe the whole
state after import), from an imported directory (scanned: the OCI index and blobs, the trees'
Packages and primary.xml indexes, files hashed), or from an inventory saved as JSON earlier.

    images  ref (layout name), digest, platforms (or artifactType)
    deb     name, version, architecture, sha256, path
    rpm     name, version ([epoch:]version-release), architecture, sha256, path
    files   path, size, sha256   (file server artifacts, plugin tarballs, wheels)
"""

from __future__ import annotations

import json
from pathlib import Path

from . import images as image_layout, repos
from .manifest import FORMAT, MANIFEST_NAME, BundleError, FileEntry, Manifest, parallel_map, sha256_file

INVENTORY_FORMAT = "airgap-infra-inventory/1"
FILE_SECTIONS = ("files/", "pulumi/plugins/", "wheels/")
KINDS = ("images", "deb", "rpm", "files")
TITLES = {"images": "images", "deb": "Debian packages", "rpm": "RPM packages", "files": "files"}


def _image(summary: dict) -> dict:
    found = {"ref": summary["layoutName"], "digest": summary["digest"], "platforms": list(summary.get("platforms", []))}
    if summary.get("artifactType"):
        found["artifactType"] = summary["artifactType"]
    return found


def _package(package: dict) -> dict:
    return {key: package[key] for key in ("name", "version", "architecture", "sha256", "path")}


def _sorted(inventory: dict) -> dict:
    return {
        "format": INVENTORY_FORMAT,
        "images": sorted(inventory["images"], key=lambda i: i["ref"]),
        "deb": sorted(inventory["deb"], key=lambda p: (p["name"], p["architecture"], p["version"], p["path"])),
        "rpm": sorted(inventory["rpm"], key=lambda p: (p["name"], p["architecture"], p["version"], p["path"])),
        "files": sorted(inventory["files"], key=lambda f: f["path"]),
    }


def from_manifest(manifest: Manifest) -> dict:
    files = [{"path": e.path, "size": e.size, "sha256": e.sha256}
             for e in manifest.state().values() if e.path.startswith(FILE_SECTIONS) and isinstance(e, FileEntry)]
    return _sorted({
        "images": [_image(summary) for summary in manifest.images],
        "deb": [_package(p) for p in manifest.packages.get("deb", [])],
        "rpm": [_package(p) for p in manifest.packages.get("rpm", [])],
        "files": files,
    })


def from_tree(root: Path) -> dict:
    """Scan an imported directory (or any tree laid out like a bundle's payload)."""
    deb: list[dict] = []
    rpm: list[dict] = []
    for kind, reader, found in (("apt", repos.deb_packages, deb), ("rpm", repos.rpm_packages, rpm)):
        section = root / kind
        for tree in sorted(section.iterdir()) if section.is_dir() else []:
            if tree.is_dir():
                found += [_package(p) for p in reader(tree, f"{kind}/{tree.name}")]
    paths = sorted(path for prefix in FILE_SECTIONS if (root / prefix).is_dir()
                   for path in (root / prefix).rglob("*") if path.is_file() and not path.is_symlink())

    def describe(path: Path) -> dict:
        size, digest = sha256_file(path)
        return {"path": path.relative_to(root).as_posix(), "size": size, "sha256": digest}

    return _sorted({
        "images": [_image(summary) for summary in image_layout.scan_layout(root / "images")],
        "deb": deb, "rpm": rpm, "files": parallel_map(describe, paths),
    })


def load(path: Path) -> dict:
    """From a manifest file, a saved inventory, a bundle directory, or an imported directory."""
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return from_manifest(Manifest.read(path / MANIFEST_NAME))
        return from_tree(path)
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise BundleError(f"{path}: neither a directory nor a readable JSON file ({error})") from None
    if isinstance(document, dict) and document.get("format") == FORMAT:
        return from_manifest(Manifest.from_bytes(path.read_bytes(), str(path)))
    if isinstance(document, dict) and document.get("format") == INVENTORY_FORMAT:
        return _sorted(document)
    raise BundleError(f"{path}: not a bundle manifest or an inventory")


# --- differences --------------------------------------------------------------------------

def _key(kind: str, item: dict) -> tuple:
    if kind == "images":
        return (item["ref"],)
    if kind == "files":
        return (item["path"],)
    return (item["name"], item["architecture"], item["version"])


def _same(kind: str, old: dict, new: dict) -> bool:
    if kind == "images":
        return (old["digest"], old["platforms"]) == (new["digest"], new["platforms"])
    return old["sha256"] == new["sha256"]


def diff(old: dict, new: dict) -> dict:
    """Per kind: what the update adds, removes, and changes (same name, other content)."""
    result = {}
    for kind in KINDS:
        before = {_key(kind, item): item for item in old[kind]}
        after = {_key(kind, item): item for item in new[kind]}
        result[kind] = {
            "added": [after[k] for k in sorted(after.keys() - before.keys())],
            "removed": [before[k] for k in sorted(before.keys() - after.keys())],
            "changed": [{"old": before[k], "new": after[k]} for k in sorted(before.keys() & after.keys())
                        if not _same(kind, before[k], after[k])],
        }
    return result


# --- text ---------------------------------------------------------------------------------

def short(digest: str) -> str:
    hexdigest = digest.partition(":")[2] or digest
    return ("sha256:" if ":" in digest else "") + hexdigest[:12]


def _row(kind: str, item: dict) -> list[str]:
    if kind == "images":
        return [item["ref"], short(item["digest"]), item.get("artifactType") or ",".join(item["platforms"])]
    if kind == "files":
        return [item["path"], str(item["size"]), short(item["sha256"])]
    return [item["name"], item["version"], item["architecture"], short(item["sha256"])]


HEADERS = {"images": ["REF", "DIGEST", "PLATFORMS"], "files": ["PATH", "SIZE", "SHA256"],
           "deb": ["NAME", "VERSION", "ARCH", "SHA256"], "rpm": ["NAME", "VERSION", "ARCH", "SHA256"]}


def table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]


def render(inventory: dict) -> str:
    lines = []
    for kind in KINDS:
        items = inventory[kind]
        lines.append(f"{TITLES[kind]} ({len(items)})")
        if items:
            lines += table([HEADERS[kind], *(_row(kind, item) for item in items)])
        lines.append("")
    return "\n".join(lines)


def render_diff(difference: dict) -> str:
    lines = []
    for kind in KINDS:
        change = difference[kind]
        lines.append(f"{TITLES[kind]}: {len(change['added'])} added, {len(change['removed'])} removed, "
                     f"{len(change['changed'])} changed")
        rows = [["+", *_row(kind, item)] for item in change["added"]]
        rows += [["-", *_row(kind, item)] for item in change["removed"]]
        for pair in change["changed"]:
            old, new = _row(kind, pair["old"]), _row(kind, pair["new"])
            rows.append(["~", *[o if o == n else f"{o} -> {n}" for o, n in zip(old, new, strict=True)]])
        if rows:
            lines += table(rows)
    return "\n".join(lines) + "\n"


def changed(difference: dict) -> bool:
    return any(difference[kind][what] for kind in KINDS for what in ("added", "removed", "changed"))
