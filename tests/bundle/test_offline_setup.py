"""Pulumi itself, offline: plugin tarballs and a wheelhouse carried in a bundle, the install
commands printed with their checksums, and a virtual environment built from the wheelhouse alone."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

from tests.bundle.conftest import bundle_cli

PLUGINS = ("pulumi-resource-command-v1.2.1-linux-amd64.tar.gz", "pulumi-resource-tls-v5.6.2-linux-amd64.tar.gz",
           "pulumi-resource-tls-v5.6.2-darwin-arm64.tar.gz")


def build_wheel(directory: Path, name: str, version: str) -> Path:
    """A pure-Python wheel written by hand (no build backend, no index): `import <name>` works."""
    files = {
        f"{name}/__init__.py": f'VERSION = "{version}"\n'.encode(),
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{name}-{version}.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: airgap-infra-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()) + f"{name}-{version}.dist-info/RECORD,,\n"
    files[f"{name}-{version}.dist-info/RECORD"] = record.encode()
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(zipfile.ZipInfo(path, (2024, 1, 1, 0, 0, 0)), data)
    return wheel


def plugin_tarball(path: Path) -> None:
    buffer = io.BytesIO(path.name.encode())
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(path.name.split("-v")[0])
        info.size, info.mode = len(buffer.getvalue()), 0o755
        archive.addfile(info, buffer)


def plugins_and_wheels(tmp_path: Path, names=PLUGINS) -> tuple[Path, Path]:
    """A directory of plugin tarballs and an empty wheelhouse."""
    plugins, wheels = tmp_path / "plugins", tmp_path / "wheels"
    plugins.mkdir()
    wheels.mkdir()
    for name in names:
        plugin_tarball(plugins / name)
    return plugins, wheels


def make_bundle(tmp_path: Path) -> tuple[Path, Path, str]:
    """(imported directory, plugin tarballs, what `import --pulumi-plugins` printed)."""
    plugins, wheels = plugins_and_wheels(tmp_path)
    build_wheel(wheels, "airgap_tinypkg", "1.0")
    (wheels / "requirements.txt").write_text("airgap_tinypkg==1.0\n")
    bundle, into = tmp_path / "bundle", tmp_path / "inside"
    created = bundle_cli("create", "--out", bundle, "--pulumi-plugins", plugins, "--wheelhouse", wheels)
    assert created.returncode == 0, created.stderr
    imported = bundle_cli("import", bundle, "--into", into, "--pulumi-plugins")
    assert imported.returncode == 0, imported.stderr
    return into, plugins, imported.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_import_prints_each_plugin_install_with_its_checksum(tmp_path):
    into, plugins, printed = make_bundle(tmp_path)
    root = into.resolve()
    command = plugins / PLUGINS[0]
    tls = plugins / PLUGINS[1]
    expected = [
        f"pulumi plugin install resource command 1.2.1 --file {root}/pulumi/plugins/{PLUGINS[0]} "
        f"--checksum {sha256(command)}",
        f"pulumi plugin install resource tls 5.6.2 --file {root}/pulumi/plugins/{PLUGINS[1]} --checksum {sha256(tls)}",
    ]
    lines = [line for line in printed.splitlines() if line.startswith("pulumi plugin install")]
    assert lines == expected, "this machine's platform only (linux/amd64 here), in order"


def test_offline_setup_dry_run_prints_every_step(tmp_path):
    into, plugins, _ = make_bundle(tmp_path)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse\n")
    passphrase.chmod(0o600)
    result = bundle_cli("offline-setup", "--from", into, "--backend-dir", tmp_path / "state", "--passphrase-file",
                        passphrase, "--venv", tmp_path / "venv", "--env-file", tmp_path / "offline.env",
                        "--python", "python3", "--dry-run")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    root = into.resolve()
    assert f"export PULUMI_BACKEND_URL=file://{tmp_path / 'state'}" in lines
    assert f"export PULUMI_CONFIG_PASSPHRASE_FILE={passphrase}" in lines
    assert "export PULUMI_SKIP_UPDATE_CHECK=true" in lines
    assert "export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true" in lines
    assert f"pulumi login file://{tmp_path / 'state'}" in lines
    assert (f"pulumi plugin install resource command 1.2.1 --file {root}/pulumi/plugins/{PLUGINS[0]} "
            f"--checksum {sha256(plugins / PLUGINS[0])}") in lines
    assert f"python3 -m venv {tmp_path / 'venv'}" in lines
    assert (f"{tmp_path / 'venv'}/bin/pip install --no-index --find-links {root}/wheels "
            f"-r {root}/wheels/requirements.txt") in lines
    assert not (tmp_path / "offline.env").exists() and not (tmp_path / "venv").exists(), "a dry run changes nothing"


def test_offline_setup_refuses_a_passphrase_file_others_can_read(tmp_path):
    into, _, _ = make_bundle(tmp_path)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse\n")
    passphrase.chmod(0o644)
    result = bundle_cli("offline-setup", "--from", into, "--passphrase-file", passphrase, "--steps", "env",
                        "--env-file", tmp_path / "offline.env")
    assert result.returncode == 1 and "readable by others (mode 0644); chmod 600 it" in result.stderr


def test_the_venv_is_built_from_the_wheelhouse_alone(tmp_path):
    into, _, _ = make_bundle(tmp_path)
    venv = tmp_path / "venv"
    # No index at all: pip must find everything in the bundle's wheelhouse.
    env = {**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_NO_CACHE_DIR": "1"}
    result = bundle_cli("offline-setup", "--from", into, "--venv", venv, "--steps", "venv", env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import airgap_tinypkg; print(airgap_tinypkg.VERSION)"],
        capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "1.0", imported.stderr


def test_create_refuses_a_bundle_without_the_pinned_providers_plugins(tmp_path):
    """The wheelhouse's requirements pin provider SDKs: each needs its plugin tarball at that version."""
    plugins, wheels = plugins_and_wheels(tmp_path)
    (wheels / "requirements.txt").write_text(
        "pulumi==3.272.0\npulumi-command==1.2.1\npulumi_tls==5.6.2  # a comment\npulumi-kubernetes==4.34.2\n"
        "pulumi-policy==1.21.0\n")
    refused = bundle_cli("create", "--out", tmp_path / "b", "--pulumi-plugins", plugins, "--wheelhouse", wheels)
    assert refused.returncode == 1
    assert "pulumi-resource-kubernetes-v4.34.2-linux-amd64.tar.gz" in refused.stderr
    assert "command" not in refused.stderr.split("missing from --pulumi-plugins:")[1].split(";")[0], \
        "only what is missing is named"
    assert not any((tmp_path / "b").glob("MANIFEST.json")), "no bundle is made"
    plugin_tarball(plugins / "pulumi-resource-kubernetes-v4.34.2-linux-amd64.tar.gz")
    made = bundle_cli("create", "--out", tmp_path / "b2", "--pulumi-plugins", plugins, "--wheelhouse", wheels)
    assert made.returncode == 0, made.stderr
    assert "3 pinned providers" in made.stderr + made.stdout
    darwin = bundle_cli("create", "--out", tmp_path / "b3", "--pulumi-plugins", plugins, "--wheelhouse", wheels,
                        "--plugin-platform", "linux-amd64", "--plugin-platform", "darwin-arm64")
    assert darwin.returncode == 1 and "pulumi-resource-command-v1.2.1-darwin-arm64.tar.gz" in darwin.stderr


def cli_archive_file(directory: Path, version: str = "3.190.0") -> Path:
    """An archive shaped like Pulumi's CLI release (pulumi/pulumi and its language host). The real
    CLI cannot be obtained here; this `pulumi` writes each command line it gets to a log."""
    archive = directory / f"pulumi-v{version}-linux-x64.tar.gz"
    script = b'#!/bin/sh\necho "$*" >> "$(dirname "$0")/pulumi.calls"\n'
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("pulumi/pulumi", "pulumi/pulumi-language-python"):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(script), 0o755
            tar.addfile(info, io.BytesIO(script))
        evil = tarfile.TarInfo("pulumi/../../escaped")
        evil.size = 1
        tar.addfile(evil, io.BytesIO(b"x"))
    return archive


def test_offline_setup_unpacks_the_cli_and_runs_it_for_login_and_plugins(tmp_path):
    plugins, _ = plugins_and_wheels(tmp_path, PLUGINS[:1])
    archive = cli_archive_file(tmp_path)
    bundle, into = tmp_path / "bundle", tmp_path / "inside"
    assert bundle_cli("create", "--out", bundle, "--pulumi-plugins", plugins, "--pulumi-cli", archive).returncode == 0
    imported = bundle_cli("import", bundle, "--into", into)
    assert imported.returncode == 0, imported.stderr
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("correct horse\n")
    passphrase.chmod(0o600)
    cli_dir = tmp_path / "home/.pulumi/bin"
    args = ("offline-setup", "--from", into, "--backend-dir", tmp_path / "state", "--passphrase-file", passphrase,
            "--env-file", tmp_path / "offline.env", "--cli-dir", cli_dir, "--steps", "cli,env,login,plugins")
    result = bundle_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in cli_dir.iterdir()) == ["pulumi", "pulumi-language-python", "pulumi.calls"]
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "home/escaped").exists()
    calls = (cli_dir / "pulumi.calls").read_text().splitlines()
    assert calls == [f"login file://{tmp_path / 'state'}",
                     f"plugin install resource command 1.2.1 --file {into.resolve()}/pulumi/plugins/{PLUGINS[0]} "
                     f"--checksum {sha256(plugins / PLUGINS[0])}"]
    assert f'export PATH={cli_dir}:"$PATH"' in (tmp_path / "offline.env").read_text().splitlines()

    # an archive altered after the import is refused before anything is unpacked again
    imported_archive = into / "pulumi/cli" / archive.name
    data = bytearray(imported_archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    imported_archive.write_bytes(bytes(data))
    altered = bundle_cli(*args)
    assert altered.returncode == 1 and "differs from the manifest" in altered.stderr
