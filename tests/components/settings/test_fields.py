"""Field types: each accepts what it should (normalised where it says so) and refuses the rest
with a message that quotes the value and says what to write instead."""

from typing import Annotated, Any

import pytest
from pydantic import TypeAdapter, ValidationError

from components.settings.fields import (
    Address,
    CertificateFile,
    DataPath,
    DnsName,
    HostName,
    ImageReference,
    OciLayout,
    Pattern,
    PgpPublicKeyFile,
    ProjectFile,
    ProjectOutput,
    SecretName,
    Sha256,
    Url,
    one_of,
)
from offline.stackfile import PROJECT_DIR


def refusal(field_type: Any, value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        TypeAdapter(field_type).validate_python(value)
    (error,) = caught.value.errors()
    return str(error["msg"]).removeprefix("Value error, ")


def test_pattern_quotes_the_value_and_says_what_is_allowed():
    code = Annotated[str, Pattern(r"[a-z]{2}", "is not a code; use two lowercase letters")]
    assert TypeAdapter(code).validate_python("ab") == "ab"
    assert refusal(code, "abc") == "'abc' is not a code; use two lowercase letters"


def test_one_of_lists_the_choices():
    colour = Annotated[str, one_of(("red", "blue"), "a colour")]
    assert TypeAdapter(colour).validate_python("red") == "red"
    assert refusal(colour, "re") == "'re' is not a colour; use one of blue, red"


@pytest.mark.parametrize("field_type,value,expected", [
    pytest.param(DnsName, "Registry.Example.Internal", "registry.example.internal", id="dns-lowercased"),
    pytest.param(Address, "10.0.0.1", "10.0.0.1", id="address-ip"),
    pytest.param(Address, "::FFFF:10.0.0.1", "::ffff:a00:1", id="address-ipv6-normalised"),
    pytest.param(Address, "Host.Example", "host.example", id="address-dns-lowercased"),
    pytest.param(DataPath, "/srv/registry", "/srv/registry", id="data-path"),
    pytest.param(ProjectOutput, "out/x.json", "out/x.json", id="project-output"),
    pytest.param(ProjectFile, "Pulumi.yaml", str(PROJECT_DIR / "Pulumi.yaml"), id="project-file-absolute"),
    pytest.param(CertificateFile, "examples/prod/ca.crt", str(PROJECT_DIR / "examples/prod/ca.crt"), id="certificate"),
    pytest.param(PgpPublicKeyFile, "sandbox/data/upstream-keys/rpm.asc",
                 str(PROJECT_DIR / "sandbox/data/upstream-keys/rpm.asc"), id="pgp-key"),
    pytest.param(Url, "https://deb.example/debian/", "https://deb.example/debian", id="url-trailing-slash"),
    pytest.param(ImageReference, "nginx:1.25", "nginx:1.25", id="image-kept-as-written"),
])
def test_accepted_values(field_type, value, expected):
    assert TypeAdapter(field_type).validate_python(value) == expected


@pytest.mark.parametrize("field_type,value,message", [
    pytest.param(HostName, "Bad_Name", "not a host name", id="host-name"),
    pytest.param(HostName, "9lives", "starting with a letter", id="host-name-digit"),
    pytest.param(SecretName, "a b", "not a secret name", id="secret-name"),
    pytest.param(DnsName, "a..b", "not a DNS name", id="dns-empty-label"),
    pytest.param(DnsName, "host:5000", "not a DNS name", id="dns-port"),
    pytest.param(DnsName, "a" * 254, "not a DNS name", id="dns-too-long"),
    pytest.param(Address, "10.0.0.1; reboot", "neither an IP address nor a DNS name", id="address"),
    pytest.param(DataPath, "relative/path", "not an absolute, normalised path", id="path-relative"),
    pytest.param(DataPath, "/srv/./x", "normalised", id="path-dot"),
    pytest.param(DataPath, "/srv/x/", "no trailing '/'", id="path-trailing-slash"),
    pytest.param(DataPath, "/srv//x", "normalised", id="path-double-slash"),
    pytest.param(DataPath, "/srv/a b", "may hold only", id="path-space"),
    pytest.param(DataPath, "/srvx/a", "outside the data roots", id="path-lookalike-root"),
    pytest.param(DataPath, "/mnt", "outside the data roots", id="path-root-itself"),
    pytest.param(ProjectOutput, "", "not a relative path", id="output-empty"),
    pytest.param(ProjectOutput, "a/../../b", "not a relative path", id="output-dotdot"),
    pytest.param(ProjectOutput, "out/$x", "may hold only", id="output-dollar"),
    pytest.param(ProjectFile, "", "must be a file path", id="file-empty"),
    pytest.param(ProjectFile, "no/such/file", "not found", id="file-missing"),
    pytest.param(CertificateFile, "Pulumi.yaml", "holds no PEM certificate", id="certificate-not-pem"),
    pytest.param(PgpPublicKeyFile, "sandbox/data/upstream-keys/rpm.secret.asc", "not an armored OpenPGP public key",
                 id="pgp-secret-key"),
    pytest.param(OciLayout, "sandbox/data", "not an OCI image layout", id="oci-layout"),
    pytest.param(Url, "ftp://x/y", "http:// or https://", id="url-scheme"),
    pytest.param(Url, "https://x/a?b=c", "without query", id="url-query"),
    pytest.param(Url, "https://x/a b", "characters", id="url-space"),
    pytest.param(Sha256, "A" * 64, "64 lowercase hex", id="sha256-uppercase"),
    pytest.param(ImageReference, "nginx", "no tag or digest", id="image-unpinned"),
])
def test_refused_values(field_type, value, message):
    assert message in refusal(field_type, value)
