"""`harbor`: the sandbox stack with Harbor beside the registry is accepted; each broken key is
refused with its path, through the same host, secret, digest and TLS rules as every service."""

import hashlib
from pathlib import Path

import pytest

from offline.program import run_program
from offline.stackfile import StackConfig

from .stack_edits import DELETE, assert_refused, edits, set_path, with_changes

INSTALLER = "harbor-offline-installer-v2.12.4.tgz"


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
