"""`bundle offline-setup`: the air-gapped admin machine made ready to run `pulumi up`, from an
imported bundle and nothing else.

Steps (`--steps`, all by default; `--dry-run` prints them instead):

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
from dataclasses import dataclass, field
from pathlib import Path

from .importer import STATE_DIR
from .manifest import MANIFEST_NAME, BundleError, Manifest, sha256_file
from .plugins import install_commands, parse_plugin

STEPS = ("env", "login", "plugins", "venv")
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

    @property
    def environment(self) -> dict[str, str]:
        return {"PULUMI_BACKEND_URL": f"file://{self.backend_dir}",
                "PULUMI_CONFIG_PASSPHRASE_FILE": str(self.passphrase_file), **PULUMI_OFFLINE_ENV}

    def env_file_text(self) -> str:
        lines = ["# Source this before running pulumi inside the air gap (from `python -m bundle offline-setup`)."]
        lines += [f"export {name}={shlex.quote(value)}" for name, value in self.environment.items()]
        return "\n".join(lines) + "\n"

    def plugins(self) -> list[dict]:
        for manifest in (self.root / STATE_DIR / MANIFEST_NAME, self.root / MANIFEST_NAME):
            if manifest.is_file():
                return Manifest.read(manifest).plugins
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
            found.append(("login", [self.pulumi, "login", f"file://{self.backend_dir}"]))
        if "plugins" in self.steps:
            commands = install_commands(self.plugins(), str(self.root), pulumi=self.pulumi)
            found += [("plugins", command) for command in commands]
        if "venv" in self.steps:
            pip = str(self.venv / "bin" / "pip")
            found.append(("venv", [self.python, "-m", "venv", str(self.venv)]))
            requirements = [arg for path in self.requirement_files() for arg in ("-r", str(path))]
            found.append(("venv", [pip, "install", "--no-index", "--find-links", str(self.root / "wheels"),
                                   *requirements]))
        return found


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
    commands = setup.commands()
    if "plugins" in setup.steps and not [c for step, c in commands if step == "plugins"]:
        log("# note: no plugin tarball for this machine's platform in the bundle")
    if dry_run:
        if "env" in setup.steps:
            log(f"# {setup.env_file}:")
            log(setup.env_file_text().rstrip())
        for _, command in commands:
            log(shlex.join(command))
        return [command for _, command in commands]
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
            hint = "; install the Pulumi CLI from the bundle's files first" if command[0] == setup.pulumi else ""
            raise BundleError(f"{step}: {command[0]} is not installed{hint}") from None
        if result.returncode != 0:
            raise BundleError(f"{step}: {shlex.join(command)} failed with exit {result.returncode}")
    return [command for _, command in commands]


def default_python() -> str:
    """The interpreter the project's venv should come from: this one, unless it is itself a venv's."""
    return getattr(sys, "_base_executable", None) or sys.executable
