"""Trivy's vulnerability databases as OCI artifacts, generated deterministically, the way
`oras` / Trivy publish them: an OCI image manifest whose config has Trivy's own media type and
whose one layer is the database archive. The layout is what users carry across the gap.

    python -m sandbox.trivy_artifacts sandbox/data/trivy-layout   # (re)write the shipped one
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

from sandbox.oci_images import canonical_json, gzip_stored, sha256_digest

CONFIG_TYPE = "application/vnd.aquasec.trivy.config.v1+json"
DB_LAYER_TYPE = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip"
JAVA_DB_LAYER_TYPE = "application/vnd.aquasec.trivy.javadb.layer.v1.tar+gzip"
DB_REF = "ghcr.io/aquasecurity/trivy-db:2"
JAVA_DB_REF = "ghcr.io/aquasecurity/trivy-java-db:1"
BUILD_TIME = 1704067200  # 2024-01-01T00:00:00Z


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), BUILD_TIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip_stored(buffer.getvalue())


def artifacts() -> dict[str, tuple[str, bytes]]:
    """ref → (layer media type, layer bytes)."""
    metadata = {"Version": 2, "NextUpdate": "2024-01-02T00:00:00Z", "UpdatedAt": "2024-01-01T00:00:00Z"}
    return {
        DB_REF: (DB_LAYER_TYPE, _archive({"trivy.db": b"airgap-infra test vulnerability db\n" * 64,
                                          "metadata.json": json.dumps(metadata).encode()})),
        JAVA_DB_REF: (JAVA_DB_LAYER_TYPE, _archive({"trivy-java.db": b"airgap-infra test java db\n" * 64,
                                                    "metadata.json": json.dumps({**metadata, "Version": 1}).encode()})),
    }


def write_layout(directory: Path) -> dict[str, str]:
    """Write the OCI layout; return ref → manifest digest."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> dict:
        digest = sha256_digest(data)
        (blobs / digest.split(":")[1]).write_bytes(data)
        return {"digest": digest, "size": len(data)}

    entries, digests = [], {}
    config = put(b"{}")
    for ref, (layer_type, layer) in artifacts().items():
        manifest = canonical_json({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": CONFIG_TYPE, **config},
            "layers": [{"mediaType": layer_type, **put(layer),
                        "annotations": {"org.opencontainers.image.title": "db.tar.gz"}}],
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        })
        descriptor = put(manifest)
        digests[ref] = descriptor["digest"]
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", **descriptor,
                        "annotations": {"org.opencontainers.image.ref.name": ref}})
    (directory / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_bytes(canonical_json({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}))
    return digests


if __name__ == "__main__":
    print(json.dumps(write_layout(Path(sys.argv[1])), indent=2))
