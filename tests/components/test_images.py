"""Image references: parsing and normalisation as a table, then the private-registry mapping."""

import pytest
from hypothesis import given, strategies as st

from components.images import ImageRef, ImageRefError, parse_image_ref

DIGEST = "sha256:" + "ab" * 32

NORMALISED = [
    # text → (registry, path, tag, digest)
    ("nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("library/nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("docker.io/nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("index.docker.io/library/nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("registry-1.docker.io/mattermost/mattermost-enterprise-edition:9.11.1",
     ("docker.io", "mattermost/mattermost-enterprise-edition", "9.11.1", None)),
    ("quay.io/prometheus/node-exporter:v1.8.0", ("quay.io", "prometheus/node-exporter", "v1.8.0", None)),
    ("registry.k8s.io/pause:3.9", ("registry.k8s.io", "pause", "3.9", None)),
    ("localhost/app:1", ("localhost", "app", "1", None)),
    ("Registry.Example.COM:5000/team/app:v2", ("registry.example.com:5000", "team/app", "v2", None)),
    ("127.0.0.2:5000/docker.io/library/alpine:3.19", ("127.0.0.2:5000", "docker.io/library/alpine", "3.19", None)),
    (f"busybox@{DIGEST}", ("docker.io", "library/busybox", None, DIGEST)),
    (f"busybox:1.36@{DIGEST}", ("docker.io", "library/busybox", "1.36", DIGEST)),
    ("ghcr.io/a/b/c/d:x_y.z-1", ("ghcr.io", "a/b/c/d", "x_y.z-1", None)),
    ("docker.io/a__b/c-d--e:1", ("docker.io", "a__b/c-d--e", "1", None)),
]


@pytest.mark.parametrize("text,expected", NORMALISED)
def test_normalises(text, expected):
    ref = parse_image_ref(text)
    assert (ref.registry, ref.path, ref.tag, ref.digest) == expected


REJECTED = [
    ("", "empty"),
    ("nginx", "no tag or digest"),
    ("Nginx:1", "not valid"),
    ("nginx:1 ", "white space"),
    ("ngi nx:1", "white space"),
    ("nginx:-bad", "tag"),
    ("nginx:" + "a" * 129, "tag"),
    ("nginx@sha256:abc", "digest"),
    ("nginx@md5:" + "a" * 32, "digest"),
    ("quay.io/:1", "not valid"),
    ("quay.io//x:1", "not valid"),
    ("reg.io:99999/x:1", "port"),
    ("-reg.io/x:1", "registry host"),
    ("x/$(reboot):1", "not valid"),
    ("x/`id`:1", "not valid"),
    ("x/a;b:1", "not valid"),
    ("x/../y:1", "not valid"),
    ("docker.io/" + "a" * 260 + ":1", "longer"),
]


@pytest.mark.parametrize("text,fragment", REJECTED)
def test_rejects(text, fragment):
    with pytest.raises(ImageRefError, match=fragment):
        parse_image_ref(text)


PRIVATE = [
    ("nginx:1.25", "reg:5443/docker.io/library/nginx:1.25"),
    ("mattermost/mattermost-enterprise-edition:9.11.1",
     "reg:5443/docker.io/mattermost/mattermost-enterprise-edition:9.11.1"),
    ("quay.io/prometheus/node-exporter:v1.8.0", "reg:5443/quay.io/prometheus/node-exporter:v1.8.0"),
    ("registry.k8s.io/pause:3.9", "reg:5443/registry.k8s.io/pause:3.9"),
    ("mirror.corp:5000/team/app:1", "reg:5443/mirror.corp_5000/team/app:1"),
    (f"busybox@{DIGEST}", f"reg:5443/docker.io/library/busybox:sha256-{'ab' * 32}"),
    (f"busybox:1.36@{DIGEST}", "reg:5443/docker.io/library/busybox:1.36"),
]


@pytest.mark.parametrize("text,private", PRIVATE)
def test_private_ref_keeps_source_registry(text, private):
    assert parse_image_ref(text).private_ref("reg:5443") == private


def test_same_name_in_two_registries_never_collides():
    assert parse_image_ref("docker.io/x/y:1").private_path != parse_image_ref("quay.io/x/y:1").private_path


def test_private_paths_are_valid_references():
    for text, _ in PRIVATE:
        private = parse_image_ref(text).private_ref("reg.internal:5443")
        assert parse_image_ref(private).registry == "reg.internal:5443"


component = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@given(st.lists(component, min_size=1, max_size=4), tag)
def test_round_trip(parts, tag_text):
    ref = parse_image_ref("/".join(["quay.io", *parts]) + ":" + tag_text)
    assert parse_image_ref(str(ref)) == ref
    assert isinstance(ref, ImageRef)
