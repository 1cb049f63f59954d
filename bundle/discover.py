"""python -m bundle discover: every image (and CK8s artifact) a set of sources needs, in one
sorted, deduplicated list, each with where it was found.

Sources, combinable in one run: rendered manifests (files, folders, `-` for stdin), Helm chart
archives and directories (bundle/discover_charts.py), Kustomize directories, compose files, a
running cluster (bundle/discover_cluster.py) and a CK8s config directory
(bundle/discover_ck8s.py). References are normalised with the project's parser
(components/images.py), so `nginx:1.25` and `docker.io/library/nginx:1.25` are one image.
`--resolve` pins each to `tag@sha256:…` with skopeo, read from where the fill would read it.

Runs on the connected side and needs PyYAML; nothing here is imported by the commands that run
inside the gap. Nothing is written unless every source was read.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from components.images import ImageRef, ImageRefError, parse_image_ref

from . import discover_charts as charts, discover_manifests as manifests
from .discover_rules import BUILT_IN, Hit, ResourceRule, RuleError, parse_rules
from .images import source_location
from .manifest import BundleError

SKOPEO_TIMEOUT = 300


@dataclass
class Origin:
    where: str
    rule: str
    note: str = ""


@dataclass
class Found:
    """One image after normalisation, with every place it was found."""

    text: str
    ref: ImageRef | None
    origins: list[Origin] = field(default_factory=list)
    problem: str | None = None
    resolved: str | None = None

    @property
    def pinned(self) -> bool:
        return self.ref is not None and (self.ref.tag is not None or self.ref.digest is not None)


@dataclass
class Discovery:
    images: list[Found]
    artifacts: list[dict]
    notes: list[str]


# --- gathering ----------------------------------------------------------------------------

@dataclass
class Sources:
    paths: list[str] = field(default_factory=list)
    rule_files: list[Path] = field(default_factory=list)
    compose_env: list[Path] = field(default_factory=list)
    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str | None = None
    ck8s_config: Path | None = None
    stdin: Callable[[], str] = field(default=lambda: sys.stdin.read())


def load_rules(files: list[Path]) -> list[ResourceRule]:
    rules = list(BUILT_IN)
    for file in files:
        text = manifests.read_text(file)
        try:
            document = yaml.load(text, Loader=manifests.LOADER)
            rules = parse_rules(document, str(file)) + rules  # a user's rule is tried first
        except yaml.YAMLError as error:
            raise BundleError(f"{file}: not valid YAML ({error})") from None
        except RuleError as error:
            raise BundleError(str(error)) from None
    return rules


def gather(sources: Sources) -> tuple[list[Hit], list[str]]:
    """Every hit of every source; a source that cannot be read stops everything, naming its file."""
    rules = load_rules(sources.rule_files)
    hits: list[Hit] = []
    notes: list[str] = []
    scan = charts.ChartScan()
    if not sources.paths and not sources.kubeconfig and not sources.ck8s_config:
        raise BundleError("nothing to discover: give manifests, charts, folders, '-', --kubeconfig or --ck8s-config")
    for given in sources.paths:
        if given == "-":
            hits += manifests.stdin_hits(sources.stdin(), rules)
            continue
        path = Path(given)
        if not path.exists() and not path.is_symlink():
            raise BundleError(f"{path}: no such file or directory")
        hits += path_hits(path, rules, sources.compose_env, scan, notes)
    hits += scan.hits
    notes += scan.notes
    if scan.charts:
        notes.append(charts.RENDER_ADVICE + f" (charts read: {', '.join(scan.charts)})")
    if sources.kubeconfig:
        from .discover_cluster import discover as discover_cluster

        cluster_hits, cluster_notes = discover_cluster(sources.kubeconfig, sources.context, rules,
                                                                namespace=sources.namespace)
        hits += cluster_hits
        notes += cluster_notes
    return hits, notes


def path_hits(path: Path, rules: list[ResourceRule], compose_env: list[Path], scan: charts.ChartScan,
              notes: list[str]) -> list[Hit]:
    """What one path holds: a chart, a kustomization, a compose file, a manifest, or a folder of them."""
    if path.is_dir():
        if (path / "Chart.yaml").is_file():
            charts.scan_chart(charts.load_directory(path), scan)
            return []
        if any((path / name).is_file() for name in manifests.KUSTOMIZATIONS):
            return manifests.kustomize_hits(path, rules, notes)
        hits: list[Hit] = []
        for child in sorted(path.iterdir()):
            if child.is_symlink() and not child.resolve().is_relative_to(path.resolve()):
                raise BundleError(f"{child}: links out of {path} (to {os.readlink(child)}); refused")
            if child.is_dir() or child.name.endswith(manifests.MANIFEST_SUFFIXES) or charts.is_chart_archive(child):
                hits += path_hits(child, rules, compose_env, scan, notes)
        return hits
    if charts.is_chart_archive(path):
        charts.scan_chart(charts.read_archive(path), scan)
        return []
    if manifests.is_compose(path):
        return manifests.compose_hits(path, compose_env, notes)
    if path.name in manifests.KUSTOMIZATIONS:
        return manifests.kustomize_hits(path.parent, rules, notes)
    return manifests.manifest_hits(path, rules)


def normalise(hits: list[Hit]) -> list[Found]:
    """One entry per normalised reference, sorted; text that is no reference is kept as a problem."""
    found: dict[str, Found] = {}
    for hit in hits:
        try:
            ref: ImageRef | None = parse_image_ref(hit.ref, require_pin=False)
            key, problem = str(ref), None
        except ImageRefError as error:
            ref, key, problem = None, hit.ref, str(error)
        entry = found.setdefault(key, Found(key, ref, problem=problem))
        origin = Origin(hit.where, hit.rule, hit.note)
        if origin not in entry.origins:
            entry.origins.append(origin)
    for entry in found.values():
        entry.origins.sort(key=lambda origin: (origin.where, origin.rule))
    return sorted(found.values(), key=lambda entry: (entry.ref is None, entry.text))


def discover(sources: Sources) -> Discovery:
    hits, notes = gather(sources)
    artifacts: list[dict] = []
    if sources.ck8s_config:
        from .discover_ck8s import discover as discover_ck8s

        artifacts, ck8s_hits, ck8s_notes = discover_ck8s(sources.ck8s_config)
        hits += ck8s_hits
        notes += ck8s_notes
    return Discovery(normalise(hits), artifacts, notes)


# --- pinning ------------------------------------------------------------------------------

@dataclass(frozen=True)
class SkopeoAccess:
    upstreams: dict[str, str] = field(default_factory=dict)
    cert_dir: str | None = None
    authfile: str | None = None
    retries: int = 2


def manifest_digest(ref: ImageRef, access: SkopeoAccess) -> str:
    """The digest of the manifest (or index) `ref` names, as the fill will copy it with
    `--preserve-digests`: the sha256 of the bytes the registry serves."""
    command = ["skopeo", "inspect", "--raw", "--retry-times", str(access.retries),
               *(["--cert-dir", access.cert_dir] if access.cert_dir else []),
               *(["--authfile", access.authfile] if access.authfile else []),
               source_location(ref, access.upstreams)]
    try:
        result = subprocess.run(command, capture_output=True, timeout=SKOPEO_TIMEOUT, check=False)
    except FileNotFoundError:
        raise BundleError("skopeo is not installed; install it (apt-get install skopeo)") from None
    if result.returncode != 0:
        detail = (result.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        raise BundleError(f"{ref}: skopeo inspect {source_location(ref, access.upstreams)} failed: {detail}")
    return "sha256:" + hashlib.sha256(result.stdout).hexdigest()


def resolve(images: list[Found], access: SkopeoAccess, *, parallel: int = 4) -> list[str]:
    """Pin every tagged image to `tag@digest`; returns the references left unpinned (no tag)."""
    pending = [entry for entry in images if entry.ref is not None and entry.ref.tag and not entry.ref.digest]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        digests = list(pool.map(lambda entry: manifest_digest(entry.ref, access), pending))
    for entry, digest in zip(pending, digests, strict=True):
        assert entry.ref is not None
        entry.resolved = f"{entry.ref.name}:{entry.ref.tag}@{digest}"
    for entry in images:
        if entry.ref is not None and entry.ref.digest:
            entry.resolved = str(entry.ref)
    return [entry.text for entry in images if entry.ref is not None and not entry.pinned]


# --- what to write ------------------------------------------------------------------------

def final_refs(discovery: Discovery) -> list[str]:
    """The references to carry: resolved when resolved, pinned ones only."""
    return [entry.resolved or entry.text for entry in discovery.images if entry.pinned]


def render_report(discovery: Discovery) -> str:
    lines = []
    for entry in discovery.images:
        head = entry.resolved or entry.text
        if entry.problem:
            head += f"  (NOT A REFERENCE: {entry.problem})"
        elif not entry.pinned:
            head += "  (NO TAG OR DIGEST: pin it; left out of the outputs)"
        lines.append(head)
        for origin in entry.origins:
            lines.append(f"    {origin.where}  [{origin.rule}]" + (f"  note: {origin.note}" if origin.note else ""))
    if discovery.artifacts:
        lines.append("")
        lines.append("artifacts (for bundle create --files):")
        for artifact in discovery.artifacts:
            lines.append(f"  {artifact['name']}  {artifact['source']}")
            lines.append(f"    {artifact['origin']}" + (f"  note: {artifact['note']}" if artifact.get("note") else ""))
    for note in discovery.notes:
        lines.append(f"note: {note}")
    pinned = sum(1 for entry in discovery.images if entry.pinned)
    lines.append(f"{len(discovery.images)} images ({pinned} pinned), {len(discovery.artifacts)} artifacts")
    return "\n".join(lines) + "\n"


def images_file_text(refs: list[str]) -> str:
    return "# python -m bundle discover: for bundle create --images-file\n" + "".join(f"{ref}\n" for ref in refs)


def stack_snippet_text(refs: list[str]) -> str:
    header = "# python -m bundle discover: paste under `config:` in Pulumi.<env>.yaml\n"
    return header + yaml.safe_dump({"airgap-infra:images": refs}, default_flow_style=False, sort_keys=False)


def artifacts_file_text(artifacts: list[dict]) -> str:
    lines = ["# python -m bundle discover: <path under bundle create --files DIR>  <where to fetch it>"]
    lines += [f"{artifact['name']}  {artifact['source']}" for artifact in artifacts]
    return "\n".join(lines) + "\n"


def against(discovery: Discovery, stack_file: Path) -> str:
    """What the stack lacks, and what it carries that no source uses (compared by name and tag)."""
    from .images import stack_images

    listed, _ = stack_images(stack_file)
    carried: dict[tuple[str, str | None], ImageRef] = {}
    for text in listed:
        try:
            ref = parse_image_ref(text, require_pin=False)
        except ImageRefError as error:
            raise BundleError(f"{stack_file}: airgap-infra:images: {error}") from None
        carried[(ref.name, ref.tag or ref.digest)] = ref
    needed = {}
    for entry in discovery.images:
        if entry.ref is not None:
            needed[(entry.ref.name, entry.ref.tag or entry.ref.digest)] = entry
    lines = []
    lacking = sorted(set(needed) - set(carried))
    unused = sorted(set(carried) - set(needed))
    lines.append(f"{stack_file}: lacks {len(lacking)}, carries {len(unused)} that nothing uses")
    for key in lacking:
        entry = needed[key]
        lines.append(f"  lacks   {entry.resolved or entry.text}  (found at {entry.origins[0].where})")
    for key in unused:
        lines.append(f"  unused  {carried[key]}")
    for key in sorted(set(carried) & set(needed)):
        entry, ref = needed[key], carried[key]
        digest = entry.ref.digest if entry.ref and entry.ref.digest else (entry.resolved or "").partition("@")[2]
        if digest and ref.digest and digest != ref.digest:
            lines.append(f"  differs {ref}: the sources pin {digest}")
    return "\n".join(lines) + "\n"


def write_atomically(target: Path, text: str) -> None:
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text)
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise BundleError(f"{target}: cannot be written ({error.strerror})") from None


def check_writable(targets: list[Path]) -> None:
    """Before any work: a target whose folder is missing is refused now, not after a long run."""
    for target in targets:
        if target.is_dir():
            raise BundleError(f"{target}: is a directory; give a file name")
        if not target.parent.is_dir():
            raise BundleError(f"{target}: folder {target.parent} does not exist")
