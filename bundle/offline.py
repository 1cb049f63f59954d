"""`bundle offline-setup`: the air-gapped admin machine made ready to run `pulumi up`, from an
imported bundle and nothing else.

Steps (`--steps`, all by default; `--dry-run` prints them instead):

    cli      the Pulumi CLI archive of this machine's platform (`pulumi/cli/pulumi-v…-linux-x64.tar.gz`),
             its sha256 checked against the manifest, unpacked into --cli-dir (~/.pulumi/bin), which
             the environment file puts first on PATH; later steps run that `pulumi`
    env      an environment file to source: PULUMI_BACKEND_URL=file://…,
             PULUMI_CONFIG_PASSPHRASE_FILE, PULUMI_SKIP_UPDATE_CHECK=true,
             PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true (the CLI never reaches out)
    login    pulumi login file://<backend dir>   (a DIY backend on this machine)
    plugins  pulumi plugin install <kind> <name> <version> --file <tarball> --checksum <sha256>,
             for each tarball of this machine's platform in the bundle
    venv     python3 -m venv <venv>; <venv>/bin/pip install --no-index --find-links <bundle>/wheels -r <requirements>
"""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .importer import STATE_DIR
from .manifest import MANIFEST_NAME, BundleError, FileEntry, Manifest, sha256_file
from .plugins import cli_archive, install_commands, parse_plugin, this_platform

STEPS = ("cli", "env", "login", "plugins", "venv")
_CLI_ARCH = {"amd64": "x64", "arm64": "arm64"}
PULUMI_OFFLINE_ENV = {
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
}
COMMAND_TIMEOUT = 1800


@dataclass
class OfflineSetup:
    root: Path
    """An imported directory (or a plain bundle directory)."""
    backend_dir: Path
    passphrase_file: Path
    venv: Path
    requirements: list[Path] = field(default_factory=list)
    env_file: Path = Path("pulumi-offline.env")
    pulumi: str = "pulumi"
    python: str = "python3"
    steps: tuple[str, ...] = STEPS
    cli_dir: Path = Path.home() / ".pulumi" / "bin"

    def manifest(self) -> Manifest | None:
        for path in (self.root / STATE_DIR / MANIFEST_NAME, self.root / MANIFEST_NAME):
            if path.is_file():
                return Manifest.read(path)
        return None

    def cli_archive(self) -> Path | None:
        """The newest CLI archive in the bundle for this machine's platform, if any."""
        os_name, arch = this_platform()
        directory = self.root / "pulumi" / "cli"
        found = []
        for path in sorted(directory.glob("pulumi-v*.tar.gz")) if directory.is_dir() else []:
            info = cli_archive(path.name)
            if (info["os"], info["arch"]) == (os_name, _CLI_ARCH.get(arch, arch)):
                found.append((tuple(int(n) for n in info["version"].split(".")), path))
        return max(found)[1] if found else None

    @property
    def pulumi_command(self) -> str:
        """The `pulumi` later steps run: the one the cli step unpacks, unless --pulumi names another."""
        if "cli" in self.steps and self.pulumi == "pulumi" and self.cli_archive() is not None:
            return str(self.cli_dir / "pulumi")
        return self.pulumi

    @property
    def environment(self) -> dict[str, str]:
        return {"PULUMI_BACKEND_URL": f"file://{self.backend_dir}",
                "PULUMI_CONFIG_PASSPHRASE_FILE": str(self.passphrase_file), **PULUMI_OFFLINE_ENV}

    def env_file_text(self) -> str:
        lines = ["# Source this before running pulumi inside the air gap (from `python -m bundle offline-setup`)."]
        lines += [f"export {name}={shlex.quote(value)}" for name, value in self.environment.items()]
        if "cli" in self.steps and self.cli_archive() is not None:
            lines.append(f'export PATH={shlex.quote(str(self.cli_dir))}:"$PATH"')
        return "\n".join(lines) + "\n"

    def plugins(self) -> list[dict]:
        manifest = self.manifest()
        if manifest is not None:
            return manifest.plugins
        directory = self.root / "pulumi" / "plugins"
        found = sorted(p for p in directory.glob("*") if p.is_file()) if directory.is_dir() else []
        return [parse_plugin(p.relative_to(self.root).as_posix(), sha256_file(p)[1]) for p in found]

    def requirement_files(self) -> list[Path]:
        if self.requirements:
            return self.requirements
        shipped = self.root / "wheels" / "requirements.txt"
        return [shipped if shipped.is_file() else Path("requirements.txt")]

    def commands(self) -> list[tuple[str, list[str]]]:
        """(step, command) in order; the env step writes a file and has no command."""
        found = []
        if "login" in self.steps:
            found.append(("login", [self.pulumi_command, "login", f"file://{self.backend_dir}"]))
        if "plugins" in self.steps:
            commands = install_commands(self.plugins(), str(self.root), pulumi=self.pulumi_command)
            found += [("plugins", command) for command in commands]
        if "venv" in self.steps:
            pip = str(self.venv / "bin" / "pip")
            found.append(("venv", [self.python, "-m", "venv", str(self.venv)]))
            requirements = [arg for path in self.requirement_files() for arg in ("-r", str(path))]
            found.append(("venv", [pip, "install", "--no-index", "--find-links", str(self.root / "wheels"),
                                   *requirements]))
        return found


def install_cli(setup: OfflineSetup, archive: Path, *, log=print) -> None:
    """Unpack the CLI archive's `pulumi/<program>` files into the CLI directory, after checking
    the archive against the manifest; nothing outside that directory is written."""
    manifest = setup.manifest()
    relative = archive.relative_to(setup.root).as_posix()
    listed = manifest.state().get(relative) if manifest is not None else None
    if manifest is not None:
        if listed is None:
            raise BundleError(f"{relative}: not listed in the bundle's manifest")
        if not isinstance(listed, FileEntry) or sha256_file(archive) != (listed.size, listed.sha256):
            raise BundleError(f"{relative}: differs from the manifest (size or sha256); import the bundle again")
    setup.cli_dir.mkdir(parents=True, exist_ok=True)
    installed = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            source = tar.extractfile(member) if member.isfile() else None
            if source is None or len(parts) != 2 or parts[0] != "pulumi" or parts[1] in ("", ".", ".."):
                continue
            with tempfile.NamedTemporaryFile(dir=setup.cli_dir, delete=False) as out:
                out.write(source.read())
            os.chmod(out.name, 0o755)
            os.replace(out.name, setup.cli_dir / parts[1])
            installed.append(parts[1])
    if "pulumi" not in installed:
        raise BundleError(f"{relative}: holds no pulumi/pulumi program")
    log(f"installed {', '.join(sorted(installed))} into {setup.cli_dir}")


def check_passphrase_file(path: Path) -> str | None:
    """A problem with the passphrase file, or None: it must exist and be private to its owner."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return (f"{path}: missing; create it first: (umask 077; openssl rand -base64 32 > {shlex.quote(str(path))}), "
                "or copy the one the stack's secrets were encrypted with")
    if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path}: readable by others (mode {stat.S_IMODE(status.st_mode):04o}); chmod 600 it"
    return None


def run_setup(setup: OfflineSetup, *, dry_run: bool = False, log=print) -> list[list[str]]:
    """Do (or print, with `dry_run`) every step; returns the commands."""
    unknown = set(setup.steps) - set(STEPS)
    if unknown:
        raise BundleError(f"--steps: {', '.join(sorted(unknown))} unknown; give some of {', '.join(STEPS)}")
    if {"env", "login", "plugins"} & set(setup.steps):
        problem = check_passphrase_file(setup.passphrase_file)
        if problem and not dry_run:
            raise BundleError(problem)
        if problem:
            log(f"# note: {problem}")
    archive = setup.cli_archive() if "cli" in setup.steps else None
    if "cli" in setup.steps and archive is None:
        log("# note: no Pulumi CLI archive for this machine's platform in the bundle; using the installed pulumi")
    commands = setup.commands()
    if "plugins" in setup.steps and not [c for step, c in commands if step == "plugins"]:
        log("# note: no plugin tarball for this machine's platform in the bundle")
    if dry_run:
        if archive is not None:
            log(f"# unpack {archive} (checked against the manifest) into {setup.cli_dir}")
        if "env" in setup.steps:
            log(f"# {setup.env_file}:")
            log(setup.env_file_text().rstrip())
        for _, command in commands:
            log(shlex.join(command))
        return [command for _, command in commands]
    if archive is not None:
        install_cli(setup, archive, log=log)
    if "env" in setup.steps:
        setup.env_file.write_text(setup.env_file_text())
        log(f"wrote {setup.env_file}: source it before running pulumi")
    if "login" in setup.steps:
        setup.backend_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # pip's own version check would ask an index; there is none in here.
    environment = {**os.environ, **setup.environment, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for step, command in commands:
        log(f"+ {shlex.join(command)}")
        try:
            result = subprocess.run(command, env=environment, stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT,
                                    check=False)
        except FileNotFoundError:
            hint = ("; carry its archive in the bundle (create --pulumi-cli)"
                    if command[0] == setup.pulumi_command else "")
            raise BundleError(f"{step}: {command[0]} is not installed{hint}") from None
        if result.returncode != 0:
            raise BundleError(f"{step}: {shlex.join(command)} failed with exit {result.returncode}")
    return [command for _, command in commands]


def default_python() -> str:
    """The interpreter the project's venv should come from: this one, unless it is itself a venv's."""
    return getattr(sys, "_base_executable", None) or sys.executable
