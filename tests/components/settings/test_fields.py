"""Field types: each accepts what it should (normalised where it says so) and refuses the rest
with a message that quotes the value and says what to write instead."""

import subprocess
from typing import Annotated, Any

import pytest
from pydantic import TypeAdapter, ValidationError

from components.settings.admin_files import PROJECT_SOURCES, STACK_FILE
from components.settings.fields import (
    Address,
    CaFile,
    CertificateFile,
    DataPath,
    DnsName,
    Endpoint,
    HostName,
    ImageReference,
    OciLayout,
    Pattern,
    PgpPublicKeyFile,
    ProjectFile,
    ProjectOutput,
    Relay,
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
    pytest.param(Address, "2001:DB8::0:11", "2001:db8::11", id="address-ipv6"),
    pytest.param(Relay, "[2001:DB8::25]:25", "[2001:db8::25]:25", id="relay-ipv6"),
    pytest.param(Relay, "Relay.Internal:587", "relay.internal:587", id="relay-name"),
    pytest.param(Endpoint, "minio.internal", "minio.internal", id="endpoint-host"),
    pytest.param(Endpoint, "[2001:db8::9]", "[2001:db8::9]", id="endpoint-ipv6"),
    pytest.param(CaFile, "examples/prod/ca.crt", str(PROJECT_DIR / "examples/prod/ca.crt"), id="ca"),
    pytest.param(DataPath, "/var/lib/airgap/registry", "/var/lib/airgap/registry", id="data-path-airgap"),
    pytest.param(ProjectOutput, "locks/prod-image-lock.json", "locks/prod-image-lock.json", id="output-own-folder"),
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
    pytest.param(Address, "2001:db8::1%eth0", "zone id", id="address-zone-id"),
    pytest.param(Address, "::", "unspecified", id="address-unspecified"),
    pytest.param(Address, "ff02::1", "multicast", id="address-multicast"),
    pytest.param(Address, "fe80::1", "link-local", id="address-link-local"),
    pytest.param(Address, "10.1", "reads as an IPv4 address", id="address-short-ipv4"),
    pytest.param(Address, "ɢoogle.com", "ASCII", id="address-lookalike"),
    pytest.param(DnsName, "0x0a000001", "reads as an IPv4 address", id="dns-hex-address"),
    pytest.param(Relay, "relay", "not host:port", id="relay-no-port"),
    pytest.param(Relay, "relay:65536", "not a port number", id="relay-port-high"),
    pytest.param(Endpoint, "minio:9000/x", "not host or host:port", id="endpoint-path"),
    pytest.param(CaFile, "examples/prod/registry.crt", "is not a CA certificate", id="ca-leaf"),
    pytest.param(CertificateFile, "examples/prod", "not found", id="certificate-directory"),
    pytest.param(DataPath, "/var/lib/dpkg", "outside the data roots", id="path-system-state"),
    pytest.param(DataPath, "/opt/containerd", "outside the data roots", id="path-vendor"),
    pytest.param(ProjectFile, "/etc/hostname", "outside the project directory", id="file-outside"),
    pytest.param(ProjectFile, ".gitignore", "hidden", id="file-hidden"),
    pytest.param(ProjectOutput, "README.md", "the project's own", id="output-over-readme"),
    pytest.param(ProjectOutput, "Pulumi.dev.yaml", "the project's own", id="output-over-stack"),
    pytest.param(ProjectOutput, "out/-rf", "starts with '.' or '-'", id="output-option"),
    pytest.param(Url, "https://u:p@x/", "credentials", id="url-credentials"),
])
def test_refused_values(field_type, value, message):
    assert message in refusal(field_type, value)


def test_project_sources_name_everything_the_repository_holds_at_its_top():
    """Outputs are refused on or in these; a new top-level file or folder must be listed."""
    tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    top = {line.split("/", 1)[0] for line in tracked.stdout.splitlines()}
    unlisted = [name for name in sorted(top) if not (name.startswith(".") or name in PROJECT_SOURCES
                                                     or STACK_FILE.fullmatch(name))]
    assert unlisted == []


@pytest.mark.parametrize("field_type,value", [
    pytest.param(DnsName, "registry.ехample", id="cyrillic-letters"),
    pytest.param(Sha256, "０" * 64, id="full-width-digits"),
    pytest.param(HostName, "registrу", id="cyrillic-u"),
    pytest.param(SecretName, "registryPasswоrd", id="cyrillic-o"),
    pytest.param(Address, "10.0.0.１", id="full-width-in-address"),
])
def test_look_alike_unicode_is_refused(field_type, value):
    """The tools these values reach are ASCII-only; a look-alike letter or digit is another value."""
    refusal(field_type, value)
