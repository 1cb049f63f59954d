"""Crossing the gap: one verifiable bundle of everything the inside needs, and its import.

`python -m bundle create` gathers, on the connected side, the images (one OCI layout, every
platform, each blob once, digests kept), published apt and RPM trees, file server artifacts,
Pulumi plugin tarballs and a Python wheelhouse into one directory with a `MANIFEST.json` that
names every file with its size and sha256 (optionally signed with gpg, optionally split into
media-sized parts). On the air-gapped side, `verify` checks every byte against the manifest and
the signature, `import` lays the content out where the stack reads it (`registry.fill.ociLayout`,
`fileServer.artifacts[].file`, mirror trees), and `inventory` / `inventory-diff` tell what an
update brings. A delta bundle, built against the manifest of what the inside already holds,
carries only new blobs, packages and files.

Bundle layout (the same paths again below the directory `import` writes into):

    MANIFEST.json, MANIFEST.json.asc
    images/                  OCI image layout (oci-layout, index.json, blobs/sha256/…)
    apt/<name>/…             published Debian trees (dists/, pool/), as they are
    rpm/<name>/…             RPM repositories (repodata/, packages), as they are
    files/…                  file server artifacts
    pulumi/plugins/…         plugin tarballs (pulumi-resource-<name>-v<version>-<os>-<arch>.tar.gz)
    wheels/…                 wheelhouse for the Pulumi program and the policy pack
    parts/bundle.tar.NNN     instead of the payload above, when split for media

Standard library only (plus skopeo and gpg): it runs on the admin machine inside the gap before
any virtual environment exists.
"""
