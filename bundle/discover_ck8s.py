"""Artifacts a Compliant Kubernetes (Welkin apps) environment fetches besides container images,
listed from its config directory (`common-config.yaml`, `sc-config.yaml`, `wc-config.yaml`), so
that they can be fetched into the folder `bundle create --files` carries and served by the file
server (or, for OCI artifacts, copied into the registry).

- Falco: the rules files it enables (`falco.rulesFiles.<name>.version`, OCI artifacts that
  falcoctl installs) and, with `falco.driver.kind: kmod` or `ebpf`, the driver for each kernel.
- OpenSearch: `opensearch.plugins.additionalPlugins` (URLs), and the object storage plugin when
  `installExternalObjectStoragePlugin` would download it at start.
- Trivy: the vulnerability and Java databases (OCI artifacts, `trivyDb` in the stack).

Keys are those of the project's config schema (tests/data/ck8s_config_keys.txt).
"""

from __future__ import annotations

import posixpath
import urllib.parse
from pathlib import Path

import yaml

from .discover_charts import merge
from .discover_manifests import LOADER, read_text
from .discover_rules import Hit, first
from .manifest import BundleError

FALCO_RULES = {"default": "falco-rules", "incubating": "falco-incubating-rules", "sandbox": "falco-sandbox-rules"}
TRIVY_DATABASES = ("ghcr.io/aquasecurity/trivy-db:2", "ghcr.io/aquasecurity/trivy-java-db:1")


def _load(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        document = yaml.load(read_text(path), Loader=LOADER)
    except yaml.YAMLError as error:
        raise BundleError(f"{path}: not valid YAML ({getattr(error, 'problem', error)})") from None
    if document is not None and not isinstance(document, dict):
        raise BundleError(f"{path}: not a CK8s config (a mapping)")
    return document or {}


def _enabled(config: dict, path: str, default: bool = True) -> bool:
    value = first(config, path)
    return default if value is None else value is True


def discover(directory: Path) -> tuple[list[dict], list[Hit], list[str]]:
    """(artifacts, hits, notes) of a CK8s config directory."""
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a directory")
    common = _load(directory / "common-config.yaml")
    clusters = {name: merge(common, _load(directory / f"{name}-config.yaml")) for name in ("sc", "wc")
                if (directory / f"{name}-config.yaml").is_file()} or {"common": common}
    if not any(clusters.values()):
        raise BundleError(f"{directory}: no common-config.yaml, sc-config.yaml or wc-config.yaml")
    artifacts: dict[str, dict] = {}
    notes: list[str] = []

    def add(name: str, source: str, origin: str, note: str = "") -> None:
        artifacts.setdefault(name, {"name": name, "source": source, "origin": origin, "note": note})

    for cluster, config in clusters.items():
        origin = f"{directory}/{cluster}-config.yaml" if cluster != "common" else f"{directory}/common-config.yaml"
        if _enabled(config, "falco.enabled"):
            for rules, artifact in FALCO_RULES.items():
                version = first(config, f"falco.rulesFiles.{rules}.version")
                if _enabled(config, f"falco.rulesFiles.{rules}.enabled", rules == "default") and version:
                    add(f"falco/{artifact}-{version}", f"oci://ghcr.io/falcosecurity/rules/{artifact}:{version}",
                        f"{origin}:falco.rulesFiles.{rules}", "an OCI artifact falcoctl installs; serve it through "
                        "falco.customIndexes or carry it in the registry")
            driver = first(config, "falco.driver.kind")
            if driver in ("kmod", "ebpf"):
                add(f"falco/driver-{driver}", "https://download.falco.org/driver/", f"{origin}:falco.driver.kind",
                    f"one {driver} driver per node kernel, below falco.driver.module.repoURL on the file server")
        if cluster in ("sc", "common"):
            for plugin in first(config, "opensearch.plugins.additionalPlugins") or []:
                if not isinstance(plugin, str) or plugin == "set-me":
                    continue
                name = posixpath.basename(urllib.parse.urlsplit(plugin).path) or plugin
                add(f"opensearch/{name}", plugin, f"{origin}:opensearch.plugins.additionalPlugins")
            if _enabled(config, "opensearch.plugins.installExternalObjectStoragePlugin", False):
                notes.append(f"{origin}: opensearch.plugins.installExternalObjectStoragePlugin is true: OpenSearch "
                             "downloads its object storage plugin at start; set it false and list the plugin in "
                             "additionalPlugins from the file server")
        if _enabled(config, "trivy.enabled"):
            for database in TRIVY_DATABASES:
                add(f"trivy/{database.rsplit('/', 1)[1].replace(':', '-')}", f"oci://{database}",
                    f"{origin}:trivy.scanner", "an OCI artifact: carry it with trivyDb.ociLayout "
                    "(oras copy --to-oci-layout)")
    return sorted(artifacts.values(), key=lambda artifact: artifact["name"]), [], notes
