"""`harbor`: the sandbox stack with Harbor beside the registry is accepted; each broken key is
refused with its path, through the same host, secret, digest and TLS rules as every service."""

import hashlib
from pathlib import Path

import pytest

from components.settings import s3_driver
from offline.program import run_program
from offline.stackfile import StackConfig

from .stack_edits import DELETE, assert_refused, edits, set_path, with_changes

DATA = Path(__file__).parents[2] / "data"
INSTALLER = "harbor-offline-installer-v2.12.4.tgz"
S3 = {"bucket": "harbor", "region": "eu-north-1", "regionendpoint": "https://minio.internal:9000",
      "forcepathstyle": True, "chunksize": 10485760}


def harbor_stack(directory: Path) -> StackConfig:
    """The sandbox stack with Harbor on the registry host (an installer stand-in in `directory`)."""
    installer = directory / INSTALLER
    installer.write_bytes(b"a stand-in for Harbor's offline installer")
    harbor = {"host": "registry", "installer": str(installer),
              "installerSha256": hashlib.sha256(installer.read_bytes()).hexdigest()}
    return with_changes(edits(set_path("harbor", harbor), set_path("adminFileRoots", [str(directory)]),
                              set_path("secrets.harborAdminPassword", "admin"),
                              set_path("secrets.harborDatabasePassword", "database"),
                              set_path("secrets.harborRobotSecret", "robot")))


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> StackConfig:
    return harbor_stack(tmp_path_factory.mktemp("harbor"))


CASES = [
    pytest.param(set_path("harbor.host", "ghost"), "harbor.host", "no host named 'ghost'", id="host"),
    pytest.param(set_path("harbor.installer", "Pulumi.yaml"), "harbor.installer",
                 "not named like Harbor's offline installer", id="installer-name"),
    pytest.param(set_path("harbor.installer", "sandbox/data/harbor-offline-installer-v2.11.2.tgz"), "harbor.installer",
                 "is not a Harbor release line whose harbor.yml this stack writes; use a v2.12, v2.13, v2.14, v2.15.x",
                 id="installer-line"),
    pytest.param(set_path("harbor.installer", f"nowhere/{INSTALLER}"), "harbor.installer", "not found",
                 id="installer-missing"),
    pytest.param(set_path("harbor.installerSha256", "0" * 64), "harbor.installerSha256", "has sha256",
                 id="installer-digest"),
    pytest.param(set_path("harbor.installerSha256", DELETE), "harbor.installerSha256", "required",
                 id="installer-digest-missing"),
    pytest.param(set_path("harbor.port", 5443), "harbor.port", "is also registry.port on host 'registry'",
                 id="port-taken"),
    pytest.param(set_path("harbor.dataVolume", "/home/harbor"), "harbor.dataVolume", "outside the data roots",
                 id="data-volume"),
    pytest.param(set_path("harbor.robotName", "robot$1"), "harbor.robotName", "not a registry user name",
                 id="robot-name"),
    pytest.param(set_path("secrets.harborAdminPassword", DELETE), "harbor.adminPasswordSecret",
                 "secret 'harborAdminPassword' is not set", id="admin-secret-missing"),
    pytest.param(set_path("secrets.harborDatabasePassword", ""), "harbor.databasePasswordSecret",
                 "secret 'harborDatabasePassword' is empty", id="database-secret-empty"),
    pytest.param(set_path("secrets.harborRobotSecret", ""), "harbor.robotSecret", "is empty", id="robot-secret-empty"),
    pytest.param(set_path("harbor.s3SecretKeySecret", "harborS3"), "harbor.s3SecretKeySecret",
                 "secret 'harborS3' is not set", id="s3-secret-missing"),
    pytest.param(set_path("harbor.tls", {"mode": "files"}), "harbor.tls.certFile", "required with mode: files",
                 id="tls-files-no-cert"),
    pytest.param(set_path("harbor.tls", {"mode": "files", "certFile": "examples/prod/registry.crt"}),
                 "harbor.tls.keySecret", "required with mode: files", id="tls-files-no-key"),
    pytest.param(set_path("harbor.tls", {"mode": "files", "certFile": "Pulumi.yaml", "keySecret": "registryPassword"}),
                 "harbor.tls.certFile", "no PEM certificate", id="tls-cert-not-pem"),
    pytest.param(set_path("harbor.tls", {"mode": "files", "certFile": "examples/prod/registry.crt",
                                         "keySecret": "harborTlsKey"}),
                 "harbor.tls.keySecret", "secret 'harborTlsKey' is not set", id="tls-key-missing"),
    pytest.param(set_path("harbor.tls", {"keySecret": "registryPassword"}), "harbor.tls.keySecret",
                 "applies only with mode: files", id="tls-key-without-files"),
    pytest.param(set_path("harbor.fill", {"upstreams": {"nodots": "mirror.io"}}), "harbor.fill.upstreams.nodots",
                 "not a registry host", id="fill-upstream"),
    pytest.param(set_path("harbor.fill", {"parallel": 0}), "harbor.fill.parallel", "greater than or equal to 1",
                 id="fill-parallel"),
    pytest.param(set_path("harbor.purge", "yes"), "harbor.purge", "valid boolean", id="purge-string"),
    pytest.param(set_path("trivyDb", DELETE), "harbor.scanner",
                 "no trivyDb is configured; Harbor's scanner reads its databases from the registry trivyDb fills; "
                 "or set scanner: false", id="scanner-without-databases"),
    pytest.param(set_path("harbor.trivyDbUser", "ghost"), "harbor.trivyDbUser",
                 "no registry user named 'ghost'; known: airgap, reader", id="trivy-db-user"),
    pytest.param(set_path("harbor.installer", "harbor-offline-installer-v２.11.0.tgz"), "harbor.installer",
                 "not named like Harbor's offline installer", id="installer-version-full-width"),
    pytest.param(set_path("harbor.port", 22), "harbor.port", "22 is also hosts.registry.port (SSH)", id="port-on-ssh"),
    pytest.param(set_path("harbor.dataVolume", "/var/lib/airgap/registry"), "harbor.dataVolume",
                 "is the same directory as registry.storagePath", id="data-volume-shared"),
    # the s3 driver's parameters: its own names and types, no credential in plain text
    pytest.param(set_path("harbor.s3", {**S3, "secretkey": "wJalrXUtnFEMI/K7MDENG"}), "harbor.s3",
                 "'secretkey' is a credential and would be written in plain text; harbor.s3SecretKeySecret",
                 id="s3-secret-key-in-plain-text"),
    pytest.param(set_path("harbor.s3", {**S3, "secret_key": "x"}), "harbor.s3",
                 "'secret_key' is not a parameter of the registry's s3 driver; use one of accelerate", id="s3-unknown"),
    pytest.param(set_path("harbor.s3", {**S3, "secure": "no"}), "harbor.s3", "secure: 'no' is not true or false",
                 id="s3-flag"),
    pytest.param(set_path("harbor.s3", {**S3, "chunksize": True}), "harbor.s3", "chunksize: True is not a whole number",
                 id="s3-number"),
    pytest.param(set_path("harbor.s3", {**S3, "rootdirectory": "/harbor\nstorage:\n  delete: {enabled: true}"}),
                 "harbor.s3", "rootdirectory: ", id="s3-text-newline"),
    pytest.param(set_path("harbor.s3", {**S3, "regionendpoint": "https://key:secret@minio.internal:9000"}),
                 "harbor.s3", "regionendpoint: 'https://key:secret@minio.internal:9000' holds credentials",
                 id="s3-endpoint-credentials"),
    pytest.param(set_path("harbor.s3", {**S3, "bucket": "Harbor_Images"}), "harbor.s3", "not an S3 bucket name",
                 id="s3-bucket"),
    pytest.param(set_path("harbor.s3", {"region": "eu-north-1"}), "harbor.s3", "has no 'bucket'", id="s3-no-bucket"),
    pytest.param(set_path("harbor.s3", {"bucket": "harbor"}), "harbor.s3", "neither 'region' nor 'regionendpoint'",
                 id="s3-no-region"),
]


def test_the_stack_with_harbor_is_accepted(stack):
    run = run_program(stack)
    assert run.error is None, run.error
    assert run.named("harbor").type == "airgap:index:HarborInstall"


def test_harbor_without_its_scanner_needs_no_databases(stack):
    run = run_program(with_changes(edits(set_path("trivyDb", DELETE), set_path("harbor.scanner", False)), stack))
    assert run.error is None, run.error


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_harbor_settings_are_refused(stack, edit, path, message):
    assert_refused(with_changes(edit, stack), path, message)


def test_an_s3_store_with_its_secret_key_as_a_secret_is_accepted(stack):
    run = run_program(with_changes(edits(set_path("harbor.s3", S3), set_path("harbor.s3SecretKeySecret", "harborS3"),
                                         set_path("secrets.harborS3", "wJalrXUtnFEMI/K7MDENG")), stack))
    assert run.error is None, run.error


def test_the_s3_parameters_are_the_driver_s():
    listed = {line.split("#")[0].strip().removeprefix("storage_service.s3.")
              for line in (DATA / "harbor_yml_keys.txt").read_text().splitlines()
              if line.startswith("storage_service.s3.")}
    assert s3_driver.PARAMETERS == listed
