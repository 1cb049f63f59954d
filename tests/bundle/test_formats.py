"""The bundle's formats as tables: manifest paths and links, sizes, plugin names, Debian
paragraphs, the scanner template, and manifests a hostile bundle could carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bundle.images import parse_refs, parse_upstreams, read_images_file, source_location, stack_images
from bundle.manifest import BundleError, Entry, FileEntry, LinkEntry, Manifest, check_path, link_stays_inside
from bundle.parts import parse_size
from bundle.plugins import install_commands, parse_plugin
from bundle.repos import parse_deb822
from bundle.scan import scanner_command

HEX = "ab" * 32


@pytest.mark.parametrize("path", [
    "images/index.json", "images/blobs/sha256/" + HEX, "apt/debian/dists/bookworm/InRelease",
    "rpm/baseos/repodata/repomd.xml", "files/falco/rules.yaml", "pulumi/plugins/x.tar.gz", "wheels/a.whl",
])
def test_payload_paths_accepted(path):
    assert check_path(path) == path


@pytest.mark.parametrize("path,why", [
    ("", "not a plain relative path"), ("/etc/passwd", "not a plain relative path"),
    ("files/../../etc/passwd", "not a plain relative path"), ("files/./a", "not a plain relative path"),
    ("files//a", "not a plain relative path"), ("files\\a", "not a plain relative path"),
    ("MANIFEST.json", "outside"), ("etc/passwd", "outside"), ("pulumi/other/x", "outside"),
    ("images", "outside"), ("filesystem/x", "outside"),
])
def test_payload_paths_refused(path, why):
    with pytest.raises(BundleError, match=why):
        check_path(path)


@pytest.mark.parametrize("path,target,inside", [
    ("apt/debian/dists/stable", "bookworm", True),
    ("apt/debian/dists/stable", "../pool", True),
    ("apt/debian/dists/stable", "../../other", False),      # another apt tree
    ("apt/debian/dists/stable", "/etc", False),
    ("files/falco/latest.yaml", "rules.yaml", True),
    ("files/falco/latest.yaml", "../../images/index.json", False),
    ("pulumi/plugins/current", "x.tar.gz", True),
])
def test_links_stay_inside_their_tree(path, target, inside):
    assert link_stays_inside(path, target) is inside


@pytest.mark.parametrize("text,size", [
    ("4G", 4 << 30), ("4GiB", 4 << 30), ("700M", 700 << 20), ("700mb", 700 << 20), ("256K", 256 << 10),
    ("1048576", 1 << 20), (" 2T ", 2 << 40),
])
def test_split_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "4X", "-1G", "1.5G", "100", "G"])
def test_split_sizes_refused(text):
    with pytest.raises(BundleError, match="--split-size"):
        parse_size(text)


@pytest.mark.parametrize("name,expected", [
    ("pulumi-resource-command-v1.2.1-linux-amd64.tar.gz", ("resource", "command", "1.2.1", "linux", "amd64")),
    ("pulumi-resource-azure-native-v2.90.0-linux-arm64.tar.gz",
     ("resource", "azure-native", "2.90.0", "linux", "arm64")),
    ("pulumi-language-python-v3.272.0-darwin-arm64.tgz", ("language", "python", "3.272.0", "darwin", "arm64")),
    ("pulumi-resource-tls-v5.6.2-alpha.1-linux-amd64.tar.gz", ("resource", "tls", "5.6.2-alpha.1", "linux", "amd64")),
])
def test_plugin_tarball_names(name, expected):
    plugin = parse_plugin(f"pulumi/plugins/{name}", HEX)
    assert (plugin["kind"], plugin["name"], plugin["version"], plugin["os"], plugin["arch"]) == expected


@pytest.mark.parametrize("name", ["command.tar.gz", "pulumi-resource-command-1.2.1-linux-amd64.tar.gz",
                                  "pulumi-resource-command-v1.2.1-linux-amd64.zip"])
def test_plugin_tarball_names_refused(name):
    with pytest.raises(BundleError, match="not named like a Pulumi plugin tarball"):
        parse_plugin(f"pulumi/plugins/{name}", HEX)


def test_plugin_install_commands_carry_the_checksum_for_this_platform_only():
    plugins = [parse_plugin(f"pulumi/plugins/{n}", HEX) for n in (
        "pulumi-resource-tls-v5.6.2-linux-amd64.tar.gz", "pulumi-resource-command-v1.2.1-linux-amd64.tar.gz",
        "pulumi-resource-command-v1.2.1-darwin-arm64.tar.gz")]
    assert install_commands(plugins, "/inside", platform_filter=("linux", "amd64")) == [
        ["pulumi", "plugin", "install", "resource", "command", "1.2.1", "--file",
         "/inside/pulumi/plugins/pulumi-resource-command-v1.2.1-linux-amd64.tar.gz", "--checksum", HEX],
        ["pulumi", "plugin", "install", "resource", "tls", "5.6.2", "--file",
         "/inside/pulumi/plugins/pulumi-resource-tls-v5.6.2-linux-amd64.tar.gz", "--checksum", HEX],
    ]


def test_debian_paragraphs_with_continuation_lines():
    text = ("Package: a\nVersion: 1.0\nDescription: short\n long line\n .\nSHA256: " + HEX + "\n\n\n"
            "Package: b\nVersion: 2:1.0-1\nFilename: pool/main/b/b_1.0-1_all.deb\n")
    assert parse_deb822(text) == [
        {"Package": "a", "Version": "1.0", "Description": "short\nlong line\n.", "SHA256": HEX},
        {"Package": "b", "Version": "2:1.0-1", "Filename": "pool/main/b/b_1.0-1_all.deb"},
    ]


@pytest.mark.parametrize("template,expected", [
    ("clamscan -r --no-summary {path}", ["clamscan", "-r", "--no-summary", "/m e/x"]),
    ("scan --root={path}/payload", ["scan", "--root=/m e/x/payload"]),
    ("clamdscan --fdpass", ["clamdscan", "--fdpass", "/m e/x"]),  # no {path}: appended, never nothing to scan
    ("sh -c 'test -d \"$1\"' s {path}", ["sh", "-c", 'test -d "$1"', "s", "/m e/x"]),
])
def test_scanner_template(template, expected):
    assert scanner_command(template, Path("/m e/x")) == expected


def manifest_bytes(**changes) -> bytes:
    document: dict[str, object] = {
        "format": "airgap-infra-bundle/1", "kind": "full", "created": "2024-01-01T00:00:00Z", "base": None,
        "images": [], "packages": {"deb": [], "rpm": []}, "plugins": [],
        "files": [{"path": "files/a", "size": 1, "sha256": HEX}], "carried": [], "parts": []}
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize("changes,why", [
    ({"format": "something/2"}, "not a bundle manifest"),
    ({"kind": "partial"}, "neither full nor delta"),
    ({"files": [{"path": "../../etc/cron.d/x", "size": 1, "sha256": HEX}]}, "not a plain relative path"),
    ({"files": [{"path": "/etc/passwd", "size": 1, "sha256": HEX}]}, "not a plain relative path"),
    ({"files": [{"path": "files/a", "size": -1, "sha256": HEX}]}, "not a byte count"),
    ({"files": [{"path": "files/a", "size": 1, "sha256": "abc"}]}, "not 64 hex digits"),
    ({"files": [{"path": "files/a", "link": "/etc/shadow"}]}, "leaves its section"),
    ({"files": [{"path": "files/a", "link": "../images/index.json"}]}, "leaves its section"),
    ({"carried": [{"path": "files/a", "size": 1, "sha256": HEX}]}, "files/a is listed twice"),
    ({"parts": [{"path": "parts/evil", "size": 1, "sha256": HEX}]}, "part 0 should be parts/bundle.tar.000"),
])
def test_hostile_manifests_are_refused(changes, why):
    with pytest.raises(BundleError, match=why):
        Manifest.from_bytes(manifest_bytes(**changes))


def test_manifest_bytes_are_deterministic_and_sorted():
    files: list[Entry] = [FileEntry("images/index.json", 10, HEX), LinkEntry("apt/d/dists/stable", "bookworm"),
                          FileEntry("files/z", 1, HEX)]
    one = Manifest(created="2024-01-01T00:00:00Z", files=files, images=[{"ref": "b"}, {"ref": "a"}])
    two = Manifest(created="2024-01-01T00:00:00Z", files=list(reversed(files)), images=[{"ref": "a"}, {"ref": "b"}])
    assert one.to_bytes() == two.to_bytes()
    again = Manifest.from_bytes(one.to_bytes())
    assert [e.path for e in again.files] == ["apt/d/dists/stable", "files/z", "images/index.json"]
    assert again.to_bytes() == one.to_bytes()


def test_a_plugin_entry_must_name_a_listed_tarball():
    tarball = "pulumi/plugins/pulumi-resource-command-v1.2.1-linux-amd64.tar.gz"
    files = [{"path": tarball, "size": 1, "sha256": HEX}]
    good = Manifest.from_bytes(manifest_bytes(files=files, plugins=[{"path": tarball, "sha256": HEX}]))
    assert good.plugins[0]["name"] == "command" and good.plugins[0]["version"] == "1.2.1"
    for plugin in ({"path": "pulumi/plugins/../../../bin/pulumi", "sha256": HEX},
                   {"path": tarball, "sha256": "cd" * 32}, {"path": "files/a", "sha256": HEX}):
        with pytest.raises(BundleError, match="is not a listed file of pulumi/plugins/"):
            Manifest.from_bytes(manifest_bytes(files=files + [{"path": "files/a", "size": 1, "sha256": HEX}],
                                               plugins=[plugin]))


def test_images_from_a_stack_file_a_list_and_a_mapping(tmp_path):
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text("config:\n  airgap-infra:registry:\n    fill:\n      upstreams:\n"
                     "        docker.io: transfer:5000/docker.io/\n"
                     "  airgap-infra:images:\n    - nginx:1.25\n    - quay.io/prometheus/node-exporter:v1.8.0\n")
    images, upstreams = stack_images(stack)
    assert images == ["nginx:1.25", "quay.io/prometheus/node-exporter:v1.8.0"]
    assert upstreams == {"docker.io": "transfer:5000/docker.io"}
    listed = tmp_path / "images.txt"
    listed.write_text("# images for June\nnginx:1.25   # the web tier\n\nbusybox@sha256:" + HEX + "\n")
    refs = parse_refs(read_images_file(listed))
    assert [ref.layout_name for ref in refs] == ["docker.io/library/busybox:sha256-" + HEX,
                                                 "docker.io/library/nginx:1.25"]
    assert source_location(refs[1], upstreams) == "docker://transfer:5000/docker.io/library/nginx:1.25"
    assert source_location(refs[0], {}) == "docker://docker.io/library/busybox@sha256:" + HEX
    assert parse_upstreams(["quay.io=mirror:5000/quay.io/"]) == {"quay.io": "mirror:5000/quay.io"}


@pytest.mark.parametrize("texts,why", [
    (["nginx"], "no tag or digest"),
    (["nginx:1.25", f"nginx:1.25@sha256:{HEX}"], "names the same layout entry"),
])
def test_image_lists_refused(texts, why):
    with pytest.raises(BundleError, match=why):
        parse_refs(texts)


@pytest.mark.parametrize("pair", ["docker.io", "docker.io=", "=mirror/x", "docker.io=https://mirror/x"])
def test_upstream_mappings_refused(pair):
    with pytest.raises(BundleError, match="give REGISTRY=HOST"):
        parse_upstreams([pair])
