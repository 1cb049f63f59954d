"""Image references: Docker Distribution's own test cases (tests/data names the source), then the
project's normalisation table and the private-registry mapping."""

import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given, strategies as st

from components.images import (
    DIGEST as DIGEST_GRAMMAR,
    DOMAIN,
    IDENTIFIER,
    NAME,
    REFERENCE,
    TAG,
    ImageRef,
    ImageRefError,
    Reference,
    normalise_registry_host,
    parse_image_ref,
    parse_normalized,
    parse_reference,
    registry_prefix,
)

DATA = Path(__file__).resolve().parents[1] / "data"
CASES = yaml.load((DATA / "distribution_reference_cases.yaml").read_text(), Loader=yaml.BaseLoader)
# What our message says for each error Distribution returns.
GO_ERRORS = {
    "ErrNameEmpty": "empty",
    "ErrReferenceInvalidFormat": "invalid reference format",
    "ErrNameContainsUppercase": "must be lowercase",
    "ErrNameTooLong": "longer than 255",
    "digest.ErrDigestInvalidLength": "must have 64 hex digits",
    "digest.ErrDigestUnsupported": "is not supported",
}


def short(case) -> str:
    """A test id: long inputs (strings.Repeat in the source) shortened."""
    text = case if isinstance(case, str) else next(iter(case.values()))
    return text if len(text) < 60 else f"{text[:25]}…{text[-25:]}({len(text)})"


def cases(*keys: str) -> list:
    section = CASES
    for key in keys:
        section = section[key]
    return [pytest.param(case, id=short(case)) for case in section]


def go(value: str | None) -> str:
    """Ours as Go writes it: no domain, tag or digest is ""."""
    return value or ""


# --- regexp_test.go: the grammar, pattern by pattern -------------------------------------------

@pytest.mark.parametrize("text", cases("domain_regexp", "match"))
def test_domain_pattern_matches(text):
    assert DOMAIN.match(text)


@pytest.mark.parametrize("text", cases("domain_regexp", "no_match"))
def test_domain_pattern_refuses(text):
    assert not DOMAIN.match(text)


@pytest.mark.parametrize("case", cases("name_regexp", "match"))
def test_name_pattern_splits_domain_and_path(case):
    match = NAME.match(case["input"])
    assert match
    if "path" in case:
        assert (go(match.group(1)), match.group(2)) == (case["domain"], case["path"])


@pytest.mark.parametrize("text", cases("name_regexp", "no_match"))
def test_name_pattern_refuses(text):
    assert not NAME.match(text)


@pytest.mark.parametrize("case", cases("reference_regexp", "match"))
def test_reference_pattern_captures_name_tag_and_digest(case):
    match = REFERENCE.match(case["input"])
    assert match
    assert tuple(map(go, match.groups())) == (case["name"], case["tag"], case["digest"])


@pytest.mark.parametrize("text", cases("reference_regexp", "no_match"))
def test_reference_pattern_refuses(text):
    assert not REFERENCE.match(text)


@pytest.mark.parametrize("text", cases("identifier_regexp", "match"))
def test_identifier_pattern_matches(text):
    assert IDENTIFIER.match(text)


@pytest.mark.parametrize("text", cases("identifier_regexp", "no_match"))
def test_identifier_pattern_refuses(text):
    assert not IDENTIFIER.match(text)


# --- reference_test.go: Parse, WithName, WithTag, WithDigest, ParseNamed -------------------------

@pytest.mark.parametrize("case", cases("parse", "valid"))
def test_parse(case):
    ref = parse_reference(case["input"])
    assert str(ref) == case["input"]
    assert (ref.name, go(ref.tag), go(ref.digest)) == (case["name"], case["tag"], case["digest"])
    if "domain" in case:
        assert go(ref.domain) == case["domain"]


@pytest.mark.parametrize("case", cases("parse", "invalid"))
def test_parse_refuses(case):
    with pytest.raises(ImageRefError, match=GO_ERRORS[case["error"]]):
        parse_reference(case["input"])


def with_name(text: str) -> Reference:
    """Distribution's WithName: NAME, then Parse's length limit."""
    if not NAME.match(text):
        raise ImageRefError(f"{text!r}: invalid reference format: not a name")
    ref = parse_reference(text)
    assert ref.tag is None and ref.digest is None
    return ref


@pytest.mark.parametrize("case", cases("with_name", "valid"))
def test_with_name(case):
    ref = with_name(case["input"])
    assert (go(ref.domain), ref.path) == (case["domain"], case["path"])


@pytest.mark.parametrize("case", cases("with_name", "invalid"))
def test_with_name_refuses(case):
    with pytest.raises(ImageRefError, match=GO_ERRORS[case["error"]]):
        with_name(case["input"])


@pytest.mark.parametrize("case", cases("with_tag_and_digest"))
def test_with_tag_and_digest(case):
    ref = with_name(case["name"])
    assert not case["tag"] or TAG.match(case["tag"])
    assert not case["digest"] or DIGEST_GRAMMAR.match(case["digest"])
    assert str(ref._replace(tag=case["tag"] or None, digest=case["digest"] or None)) == case["combined"]


@pytest.mark.parametrize("case", cases("parse_named", "canonical"))
def test_canonical_names_print_as_written(case):
    ref = parse_image_ref(case["input"], require_pin=False)
    assert str(ref) == case["input"]
    assert (ref.registry, ref.path) == (case["domain"], case["path"])


@pytest.mark.parametrize("text", cases("parse_named", "not_canonical"))
def test_familiar_names_are_not_canonical(text):
    assert str(parse_image_ref(text, require_pin=False)) != text


# --- normalize_test.go: ParseNormalizedNamed, familiar names, ParseAnyReference, ParseDockerRef --

@pytest.mark.parametrize("text", cases("normalized", "valid"))
def test_normalized(text):
    ref = parse_normalized(text)
    image = parse_image_ref(text, require_pin=False)
    assert (image.registry, image.path, image.tag, image.digest) == tuple(ref)


@pytest.mark.parametrize("text", cases("normalized", "invalid"))
def test_normalized_refuses(text):
    with pytest.raises(ImageRefError):
        parse_normalized(text)
    with pytest.raises(ImageRefError):
        parse_image_ref(text, require_pin=False)


@pytest.mark.parametrize("case", cases("repository_info"))
def test_familiar_full_and_ambiguous_names_agree(case):
    for text in filter(None, (case["familiar"], case["full"], case["ambiguous"])):
        ref = parse_image_ref(text, require_pin=False)
        assert (ref.familiar_name, str(ref), ref.registry, ref.path) == (
            case["familiar"], case["full"], case["domain"], case["path"]), text


@pytest.mark.parametrize("case", cases("tag_and_digest"))
def test_tag_and_digest_together(case):
    ref = parse_image_ref(case["input"])
    assert ref.tag and ref.digest
    assert (str(ref), ref.familiar) == (case["full"], case["familiar"])


@pytest.mark.parametrize("case", cases("any_reference"))
def test_any_reference(case):
    if "ours" in case:
        # Distribution reads a bare image ID or digest; an ImageRef is always a name.
        assert IDENTIFIER.match(case["input"]) or DIGEST_GRAMMAR.match(case["input"])
        if "ours_equivalent" not in case:
            with pytest.raises(ImageRefError):
                parse_image_ref(case["input"], require_pin=False)
        else:
            assert str(parse_image_ref(case["input"])) == case["ours_equivalent"]
        return
    ref = parse_image_ref(case["input"], require_pin=False)
    assert str(ref) == case["equivalent"]
    assert (ref.registry, ref.path, ref.tag, ref.digest) == tuple(parse_reference(case["equivalent"]))


@pytest.mark.parametrize("case", cases("split_hostname"))
def test_normalized_domain_and_path(case):
    ref = parse_image_ref(case["input"], require_pin=False)
    assert (ref.registry, ref.path) == (case["domain"], case["path"])


@pytest.mark.parametrize("case", cases("docker_ref"))
def test_docker_ref(case):
    assert parse_image_ref(case["input"], require_pin=False).docker_ref == case["expected"]
    parse_reference(case["expected"])


@pytest.mark.parametrize("text", cases("invalid_components", "tag"))
def test_invalid_tag(text):
    assert not TAG.match(text)


@pytest.mark.parametrize("text", cases("invalid_components", "digest"))
def test_invalid_digest(text):
    assert not DIGEST_GRAMMAR.match(text)


@pytest.mark.parametrize("case", cases("refused"))
def test_what_we_refuse_that_distribution_accepts(case):
    parse_normalized(case["input"])
    with pytest.raises(ImageRefError):
        parse_image_ref(case["input"], require_pin=False)


def test_every_section_is_tested():
    tested = {"domain_regexp", "name_regexp", "reference_regexp", "identifier_regexp", "parse", "with_name",
              "with_tag_and_digest", "parse_named", "normalized", "repository_info", "tag_and_digest",
              "any_reference", "split_hostname", "docker_ref", "invalid_components", "refused"}
    assert set(CASES) == tested
    assert sum(1 for case in CASES["any_reference"] if "ours" in case) == 2


# --- the project's own table ---------------------------------------------------------------------

DIGEST = "sha256:" + "ab" * 32

NORMALISED = [
    # text → (registry, path, tag, digest)
    ("nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("library/nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("docker.io/nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    ("index.docker.io/library/nginx:1.25", ("docker.io", "library/nginx", "1.25", None)),
    # Only index.docker.io is Docker Hub's alias; registry-1.docker.io is a registry of its own name.
    ("registry-1.docker.io/mattermost/mattermost-enterprise-edition:9.11.1",
     ("registry-1.docker.io", "mattermost/mattermost-enterprise-edition", "9.11.1", None)),
    ("quay.io/prometheus/node-exporter:v1.8.0", ("quay.io", "prometheus/node-exporter", "v1.8.0", None)),
    ("registry.k8s.io/pause:3.9", ("registry.k8s.io", "pause", "3.9", None)),
    ("localhost/app:1", ("localhost", "app", "1", None)),
    # A host keeps its case, as in Distribution; registry_prefix folds it.
    ("Registry.Example.COM:5000/team/app:v2", ("Registry.Example.COM:5000", "team/app", "v2", None)),
    ("127.0.0.2:5000/docker.io/library/alpine:3.19", ("127.0.0.2:5000", "docker.io/library/alpine", "3.19", None)),
    (f"busybox@{DIGEST}", ("docker.io", "library/busybox", None, DIGEST)),
    (f"busybox:1.36@{DIGEST}", ("docker.io", "library/busybox", "1.36", DIGEST)),
    ("ghcr.io/a/b/c/d:x_y.z-1", ("ghcr.io", "a/b/c/d", "x_y.z-1", None)),
    ("docker.io/a__b/c-d--e:1", ("docker.io", "a__b/c-d--e", "1", None)),
    ("[2001:db8::1]:5000/team/app:1", ("[2001:db8::1]:5000", "team/app", "1", None)),
    ("[::1]/app:1", ("[::1]", "app", "1", None)),
    # A first element with a capital is a host, not a Hub namespace (Hub namespaces are lowercase).
    ("LOCALDOMAIN/app:1", ("LOCALDOMAIN", "app", "1", None)),
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
    ("example.com/" + "a" * 250 + ":1", "longer than 255 characters in the private registry"),
    ("reg.io:0/x:1", "port"),
    ("[2001:db8::1]:65536/x:1", "port"),
    ("[fd00123123123]:5000/x:1", "not an IPv6 address"),
    ("[1:2:3:4:5:6:7:8:9]/x:1", "not an IPv6 address"),
    ("[fe80::1%eth0]/x:1", "registry host"),
    ("[::ffff:1.2.3.4]/x:1", "registry host"),
    ("nginx@sha512:" + "a" * 128, "not supported"),
    ("nginx@sha256:" + "A" * 64, "lowercase hex"),
    ("0123456789abcdef" * 4, "image ID"),
    # Every grammar is ASCII, as Go's: Unicode letters and digits match Python's \w but no Go pattern.
    ("nginx:1\u0663", "tag"),
    ("quay.io/x:\u1e6b", "tag"),
    ("ng\u00efnx:1", "not valid"),
    ("b\u00fccher.de/x:1", "registry host"),
    ("nginx@sha256:" + "\uff11" * 64, "digest"),
    ("localhost:\u0665000/x:1", "registry host"),
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
    ("Quay.IO/x/y:1", "reg:5443/quay.io/x/y:1"),
    ("[2001:db8::1]:5000/team/app:1", "reg:5443/2001_0db8_0000_0000_0000_0000_0000_0001_5000/team/app:1"),
    ("[::1]/app:1", "reg:5443/0000_0000_0000_0000_0000_0000_0000_0001/app:1"),
]


@pytest.mark.parametrize("text,private", PRIVATE)
def test_private_ref_keeps_source_registry(text, private):
    assert parse_image_ref(text).private_ref("reg:5443") == private


def test_same_name_in_two_registries_never_collides():
    assert parse_image_ref("docker.io/x/y:1").private_path != parse_image_ref("quay.io/x/y:1").private_path


def test_private_paths_are_valid_references():
    for text, _ in PRIVATE:
        ref = parse_image_ref(text)
        private = parse_image_ref(ref.private_ref("reg.internal:5443"))
        assert (private.registry, private.path) == ("reg.internal:5443", ref.private_path)


def test_one_host_has_one_prefix_and_two_hosts_two():
    assert registry_prefix("[2001:DB8::1]:5000") == registry_prefix("[2001:db8:0:0::1]:5000")
    assert registry_prefix("Quay.IO") == registry_prefix("quay.io") == "quay.io"
    hosts = ["quay.io", "quay.io:443", "[::1]", "[::1]:5000", "[::2]:5000", "localhost", "localhost:5000",
             "0000-0000.io", "127.0.0.1", "127.0.0.1:5000"]
    assert len({registry_prefix(host) for host in hosts}) == len(hosts)


REGISTRY_HOSTS = [
    ("docker.io", "docker.io"),
    ("index.docker.io", "docker.io"),
    ("registry-1.docker.io", "registry-1.docker.io"),
    ("quay.io", "quay.io"),
    ("localhost", "localhost"),
    ("localhost:5000", "localhost:5000"),
    ("127.0.0.2:5000", "127.0.0.2:5000"),
    ("[::1]:5000", "[::1]:5000"),
    ("[2001:db8::1]", "[2001:db8::1]"),
    ("Registry.Example.COM:5443", "Registry.Example.COM:5443"),
    ("MIRROR", "MIRROR"),
]


@pytest.mark.parametrize("host,normalised", REGISTRY_HOSTS)
def test_normalise_registry_host(host, normalised):
    assert normalise_registry_host(host) == normalised == parse_image_ref(f"{host}/x:1").registry


@pytest.mark.parametrize("host", ["", "mirror", "library", "quay.io/x", "-x.io", "x-.io", "host:http", "reg.io:0",
                                  "reg.io:65536", "[fd00123123123]:5000", "[::1", "::1", "b\u00fccher.de", "quay.io "])
def test_normalise_registry_host_refuses(host):
    with pytest.raises(ImageRefError):
        normalise_registry_host(host)


@pytest.mark.parametrize("host", cases("domain_regexp", "match"))
def test_every_host_distribution_matches_names_images_the_same(host):
    try:
        normalised = normalise_registry_host(host)
    except ImageRefError as error:
        if "Docker Hub namespace" in str(error):
            assert parse_image_ref(f"{host}/x:1").name == f"docker.io/{host}/x"
        else:  # a port or an IPv6 address no client can reach
            with pytest.raises(ImageRefError):
                parse_image_ref(f"{host}/x:1")
    else:
        assert parse_image_ref(f"{host}/x:1").registry == normalised


def test_pathological_input_is_refused_quickly():
    started = time.monotonic()
    for text in ("a" * 20000 + "!", "a." * 10000 + "/", "a-" * 10000 + "!", "a/" * 10000 + "!",
                 "a" * 10000 + ":" + "b" * 10000, "0" * 5000 + ":" + "1" * 5000 + "/x:1"):
        with pytest.raises(ImageRefError):
            parse_image_ref(text)
    assert time.monotonic() - started < 2


component = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)


host = st.sampled_from(["quay.io", "docker.io", "localhost:5000", "[fd00::1]:5000", "Mirror.Corp", "MIRROR"])


@given(host, st.lists(component, min_size=1, max_size=4), tag)
def test_round_trip(host_text, parts, tag_text):
    ref = parse_image_ref("/".join([host_text, *parts]) + ":" + tag_text)
    assert parse_image_ref(str(ref)) == ref
    assert isinstance(ref, ImageRef)


@given(host, st.lists(component, min_size=1, max_size=4), tag, st.data())
def test_no_character_beyond_ascii_is_ever_accepted(host_text, parts, tag_text, data):
    text = "/".join([host_text, *parts]) + ":" + tag_text + "@" + DIGEST
    where = data.draw(st.integers(min_value=0, max_value=len(text)))
    char = data.draw(st.characters(min_codepoint=128))
    with pytest.raises(ImageRefError):
        parse_reference(text[:where] + char + text[where:])
    with pytest.raises(ImageRefError):
        parse_image_ref(text[:where] + char + text[where:])
