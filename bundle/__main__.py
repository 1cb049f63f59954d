"""python -m bundle: create, verify, import, inventory and diff bundles that cross the air gap.

    create --out DIR [--images-file F | --image REF … | --stack Pulumi.<env>.yaml] [--images-from REG=PREFIX …]
           [--apt-tree [NAME=]DIR …] [--rpm-tree [NAME=]DIR …] [--files DIR] [--pulumi-plugins DIR]
           [--wheelhouse DIR] [--split-size 4G] [--sign-key FPR --gnupghome DIR] [--delta-against MANIFEST]
    verify DIR [--public-key FILE] [--scanner "clamscan -r --no-summary {path}"]
    import DIR --into DIR [--public-key FILE] [--scanner …] [--pulumi-plugins [--install]]
    inventory DIR|MANIFEST [--json OUT]
    inventory-diff OLD NEW [--json OUT]
    merge-layout --into LAYOUT DELTA_LAYOUT
    import-registry-storage --layout DIR --storage DIR [--stop-command …] [--start-command … --endpoint HOST:PORT]
           [--registry-binary PATH]
    offline-setup --from DIR --backend-dir DIR --passphrase-file F --venv DIR [--dry-run]
    discover [PATH|- …] [--kubeconfig F] [--ck8s-config DIR] [--resolve] [--images-file OUT] [--against STACK]

Exit status: 0 success, 1 refused or failed (the message names the file), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Only what every command needs is imported here; the rest in the command that uses it, so a
# verify or an import does not pay for skopeo, TLS or tar writing code it never runs.
from . import discover_cli, importer, offline, scan
from .manifest import BundleError
from .plugins import install_commands, parse_platform, shell_line
from .verify import verify_bundle


def say(message: str) -> None:
    print(message, flush=True)


def complain(message: str) -> None:
    print(f"bundle: {message}", file=sys.stderr, flush=True)


def _named_dirs(values: list[str]) -> list[tuple[str, Path]]:
    """`NAME=DIR` or `DIR` (named after its last path element)."""
    found = []
    for value in values:
        name, separator, directory = value.partition("=")
        path = Path(directory if separator else value)
        found.append((name if separator else path.resolve().name, path))
    return found


# --- commands -----------------------------------------------------------------------------

def cmd_create(args) -> int:
    from . import create as creating, images as image_layout
    from .parts import parse_size

    images = list(args.image)
    upstreams: dict[str, str] = {}
    if args.stack:
        stack_images, upstreams = image_layout.stack_images(args.stack)
        images += stack_images
    if args.images_file:
        images += image_layout.read_images_file(args.images_file)
    upstreams.update(image_layout.parse_upstreams(args.images_from))
    options = creating.CreateOptions(
        out=args.out, images=images, upstreams=upstreams,
        apt_trees=_named_dirs(args.apt_tree), rpm_trees=_named_dirs(args.rpm_tree),
        files=args.files, plugins=args.pulumi_plugins, wheelhouse=args.wheelhouse,
        pulumi_cli=list(args.pulumi_cli), plugin_requirements=list(args.plugins_for),
        plugin_platforms=[parse_platform(value) for value in args.plugin_platform or ["linux-amd64"]],
        split_size=parse_size(args.split_size) if args.split_size else None,
        sign_key=args.sign_key, gnupghome=args.gnupghome, passphrase_file=args.passphrase_file,
        delta_against=args.delta_against, work=args.work, src_cert_dir=args.src_cert_dir,
        authfile=args.authfile, policy=args.policy)
    started = time.monotonic()
    creating.create(options, log=say)
    say(f"created in {time.monotonic() - started:.1f}s")
    return 0


def _report_refusal(problems: list[str], action: str) -> int:
    for problem in problems:
        complain(problem)
    complain(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}; {action}")
    return 1


def cmd_verify(args) -> int:
    started = time.monotonic()
    scratch = None
    try:
        stage = None
        if args.scanner:
            # A split bundle's payload exists only inside its parts: unpack it to scan it.
            manifest_file = args.bundle / "MANIFEST.json"
            probe = json.loads(manifest_file.read_bytes()) if manifest_file.is_file() else {}
            if probe.get("parts"):
                scratch = Path(tempfile.mkdtemp(prefix="bundle-verify-", dir=args.scratch))
                stage = scratch / "payload"
        result = verify_bundle(args.bundle, args.public_key, stage=stage)
        if result.problems:
            return _report_refusal(result.problems, "the bundle is refused")
        if args.scanner:
            scan.run_scanner(args.scanner, stage or args.bundle, timeout=args.scanner_timeout, log=say)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    manifest = result.manifest
    signature = (f"signed by {result.signer}" if result.signer else
                 "signature NOT checked (no --public-key)" if result.loaded.signature else "unsigned")
    say(f"{args.bundle}: verified {result.files} files, {result.bytes} bytes"
        + (f" in {len(manifest.parts)} parts" if manifest.parts else "")
        + f"; {manifest.kind} bundle created {manifest.created}; {signature}"
        + ("; scanner accepted it" if args.scanner else "")
        + f" ({time.monotonic() - started:.2f}s)")
    return 0


def cmd_import(args) -> int:
    started = time.monotonic()
    try:
        result = importer.import_bundle(args.bundle, args.into, public_key=args.public_key, scanner=args.scanner,
                                        scanner_timeout=args.scanner_timeout, log=say)
    except importer.Refused as refusal:
        return _report_refusal(refusal.problems, "nothing imported")
    into = args.into.resolve()
    manifest = result.manifest
    if not result.signer:
        say("note: signature not checked (give --public-key)" if result.loaded.signature
            else "note: the bundle is unsigned")
    if manifest.images:
        say(f"registry.fill.ociLayout: {into / 'images'}  ({len(manifest.images)} images)")
    if (into / "files").is_dir():
        say(f"fileServer.artifacts[].file: below {into / 'files'}")
    if args.pulumi_plugins:
        commands = install_commands(manifest.plugins, str(into), pulumi=args.pulumi)
        for command in commands:
            say(shell_line(command))
            if args.install:
                try:
                    installed = subprocess.run(command, timeout=600, check=False)
                except FileNotFoundError:
                    raise BundleError(f"{args.pulumi}: not installed; install the Pulumi CLI first") from None
                if installed.returncode != 0:
                    raise BundleError(f"{shell_line(command)} failed with exit {installed.returncode}")
        if not commands:
            say("# no plugin tarball for this machine's platform in the bundle")
    say(f"done in {time.monotonic() - started:.2f}s")
    return 0


def cmd_inventory(args) -> int:
    from . import inventory

    found = inventory.load(args.source)
    if args.json:
        _write_json(args.json, found)
    if not args.json or str(args.json) != "-":
        sys.stdout.write(inventory.render(found))
    return 0


def cmd_inventory_diff(args) -> int:
    from . import inventory

    difference = inventory.diff(inventory.load(args.old), inventory.load(args.new))
    if args.json:
        _write_json(args.json, difference)
    if not args.json or str(args.json) != "-":
        sys.stdout.write(inventory.render_diff(difference))
    return 0


def _write_json(target: Path, value: dict) -> None:
    text = json.dumps(value, indent=1, sort_keys=True) + "\n"
    if str(target) == "-":
        sys.stdout.write(text)
    else:
        target.write_text(text)


def cmd_merge_layout(args) -> int:
    from . import images as image_layout

    image_layout.merge_layout(args.into, args.delta, log=say)
    return 0


def cmd_import_registry_storage(args) -> int:
    import ssl

    from . import images as image_layout, registry_storage

    context = (ssl.create_default_context(cafile=str(args.ca_file)) if args.ca_file else ssl.create_default_context())
    if args.start_command and not args.endpoint:
        raise BundleError("--start-command needs --endpoint: the point of starting it is to check it")
    service = registry_storage.Service(
        args.endpoint, context, registry_storage.basic_auth(args.authfile, args.endpoint) if args.endpoint else None,
        args.stop_command, args.start_command, args.ready_timeout)
    if args.verify_only:
        if not args.endpoint:
            raise BundleError("--verify-only needs --endpoint")
        images = registry_storage.plan(image_layout.Layout(args.layout))
        problems = registry_storage.check_service(service, images, log=say)
    else:
        problems = registry_storage.import_storage(args.layout, args.storage, service, link=args.link,
                                                   registry_binary=args.registry_binary, log=say)
    if problems:
        return _report_refusal(problems, "the registry does not serve the layout")
    return 0


def cmd_offline_setup(args) -> int:
    setup = offline.OfflineSetup(
        root=args.source.resolve(), backend_dir=args.backend_dir.resolve(),
        passphrase_file=args.passphrase_file.resolve(), venv=args.venv.resolve(),
        requirements=[path.resolve() for path in args.requirements], env_file=args.env_file,
        pulumi=args.pulumi, python=args.python, cli_dir=args.cli_dir.resolve(),
        steps=tuple(step.strip() for step in args.steps.split(",") if step.strip()))
    offline.run_setup(setup, dry_run=args.dry_run, log=say)
    return 0


# --- the parser ---------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m bundle", description=__doc__.splitlines()[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = commands.add_parser("create", help="gather images, trees and files into a bundle")
    create.add_argument("--out", type=Path, required=True, help="new or empty directory")
    create.add_argument("--images-file", type=Path, help="image references, one a line (# comments)")
    create.add_argument("--image", action="append", default=[], metavar="REF", help="an image reference (repeatable)")
    create.add_argument("--stack", type=Path, help="read images and registry.fill.upstreams from a Pulumi.<env>.yaml")
    create.add_argument("--images-from", action="append", default=[], metavar="REGISTRY=PREFIX",
                        help="fetch REGISTRY's images from PREFIX, as registry.fill.upstreams (repeatable)")
    create.add_argument("--src-cert-dir", help="CA directory for the source registries (skopeo --src-cert-dir)")
    create.add_argument("--authfile", help="credentials for the source registries (skopeo auth file)")
    create.add_argument("--policy", help="skopeo signature policy file (default: the system's)")
    create.add_argument("--work", type=Path, help="working OCI layout kept between runs (fetches only what changed)")
    create.add_argument("--apt-tree", action="append", default=[], metavar="[NAME=]DIR", help="published Debian tree")
    create.add_argument("--rpm-tree", action="append", default=[], metavar="[NAME=]DIR", help="RPM repository tree")
    create.add_argument("--files", type=Path, metavar="DIR", help="file server artifacts")
    create.add_argument("--pulumi-plugins", type=Path, metavar="DIR", help="Pulumi plugin tarballs")
    create.add_argument("--wheelhouse", type=Path, metavar="DIR", help="Python wheels (and requirements.txt)")
    create.add_argument("--pulumi-cli", type=Path, action="append", default=[], metavar="ARCHIVE",
                        help="the Pulumi CLI archive (pulumi-v3.x.y-linux-x64.tar.gz)")
    create.add_argument("--plugins-for", type=Path, action="append", default=[], metavar="REQUIREMENTS",
                        help="require a plugin tarball for every provider SDK pinned there "
                             "(default: the wheelhouse's requirements.txt)")
    create.add_argument("--plugin-platform", action="append", metavar="OS-ARCH",
                        help="platforms the plugins must cover (default: linux-amd64)")
    create.add_argument("--split-size", metavar="SIZE", help="cut the payload into parts of SIZE (4G, 700M)")
    create.add_argument("--sign-key", metavar="FPR", help="sign MANIFEST.json with this key")
    create.add_argument("--gnupghome", type=Path, help="GNUPGHOME holding the signing key")
    create.add_argument("--passphrase-file", type=Path, help="passphrase of the signing key, if it has one")
    create.add_argument("--delta-against", type=Path, metavar="MANIFEST",
                        help="manifest of what the inside has: carry only what is new")
    create.set_defaults(run=cmd_create)

    def scanner_options(command):
        command.add_argument("--public-key", type=Path, help="armored public key the manifest must be signed with")
        command.add_argument("--scanner", metavar="COMMAND",
                             help='scanner over the payload, e.g. "clamscan -r --no-summary {path}"')
        command.add_argument("--scanner-timeout", type=float, default=scan.DEFAULT_TIMEOUT, metavar="SECONDS")

    verify = commands.add_parser("verify", help="check every size, checksum and the signature")
    verify.add_argument("bundle", type=Path)
    scanner_options(verify)
    verify.add_argument("--scratch", help="where a split bundle is unpacked for the scanner (default: $TMPDIR)")
    verify.set_defaults(run=cmd_verify)

    imports = commands.add_parser("import", help="verify, then lay the bundle out for the stack")
    imports.add_argument("bundle", type=Path)
    imports.add_argument("--into", type=Path, required=True)
    scanner_options(imports)
    imports.add_argument("--pulumi-plugins", action="store_true", help="print the plugin install commands")
    imports.add_argument("--install", action="store_true", help="with --pulumi-plugins: run them")
    imports.add_argument("--pulumi", default="pulumi", help="the Pulumi CLI to name in those commands")
    imports.set_defaults(run=cmd_import)

    inventory_command = commands.add_parser("inventory", help="bill of materials of a bundle or an imported directory")
    inventory_command.add_argument("source", type=Path, metavar="DIR|MANIFEST")
    inventory_command.add_argument("--json", type=Path, metavar="OUT", help="also write it as JSON ('-': stdout only)")
    inventory_command.set_defaults(run=cmd_inventory)

    difference = commands.add_parser("inventory-diff", help="what an update adds, removes and changes")
    difference.add_argument("old", type=Path)
    difference.add_argument("new", type=Path)
    difference.add_argument("--json", type=Path, metavar="OUT")
    difference.set_defaults(run=cmd_inventory_diff)

    merge = commands.add_parser("merge-layout", help="add a delta bundle's OCI layout to a full one")
    merge.add_argument("delta", type=Path, metavar="DELTA_LAYOUT")
    merge.add_argument("--into", type=Path, required=True, metavar="LAYOUT")
    merge.set_defaults(run=cmd_merge_layout)

    storage = commands.add_parser("import-registry-storage",
                                  help="write an OCI layout into a stopped registry's storage, start it, check it")
    storage.add_argument("--layout", type=Path, required=True)
    storage.add_argument("--storage", type=Path, help="the registry's storage rootdirectory")
    storage.add_argument("--link", action="store_true", help="hard-link blobs instead of copying (same filesystem)")
    storage.add_argument("--stop-command", help="e.g. 'systemctl stop airgap-registry'")
    storage.add_argument("--start-command", help="e.g. 'systemctl start airgap-registry'")
    storage.add_argument("--endpoint", help="HOST:PORT of the registry, to check every digest through the API")
    storage.add_argument("--ca-file", type=Path, help="the registry's CA")
    storage.add_argument("--authfile", type=Path, help="skopeo/docker auth file with the registry's credentials")
    storage.add_argument("--registry-binary", metavar="PATH",
                         help="Distribution's binary (e.g. /usr/bin/docker-registry): check every manifest and blob "
                              "through it serving the storage read-only on a Unix socket, then only the tags "
                              "through --endpoint")
    storage.add_argument("--ready-timeout", type=float, default=60.0, metavar="SECONDS")
    storage.add_argument("--verify-only", action="store_true", help="only check a running registry against the layout")
    storage.set_defaults(run=cmd_import_registry_storage)

    setup = commands.add_parser("offline-setup", help="DIY backend, offline Pulumi settings, plugins, venv")
    setup.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR", help="imported directory")
    setup.add_argument("--backend-dir", type=Path, default=Path.home() / ".pulumi-state")
    setup.add_argument("--passphrase-file", type=Path, default=Path.home() / ".airgap-passphrase")
    setup.add_argument("--venv", type=Path, default=Path(".venv"))
    setup.add_argument("--requirements", "-r", type=Path, action="append", default=[],
                       help="default: <DIR>/wheels/requirements.txt, else ./requirements.txt")
    setup.add_argument("--env-file", type=Path, default=Path("pulumi-offline.env"))
    setup.add_argument("--pulumi", default="pulumi", help="the CLI to run (default: the one the cli step unpacks)")
    setup.add_argument("--cli-dir", type=Path, default=Path.home() / ".pulumi" / "bin",
                       help="where the cli step unpacks the CLI")
    setup.add_argument("--python", default=offline.default_python())
    setup.add_argument("--steps", default=",".join(offline.STEPS), help=f"some of {','.join(offline.STEPS)}")
    setup.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    setup.set_defaults(run=cmd_offline_setup)

    discover_cli.add_parser(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "command", None) == "import-registry-storage" and not args.verify_only and args.storage is None:
        parser().error("import-registry-storage: --storage is required (unless --verify-only)")
    try:
        return args.run(args)
    except BundleError as error:
        complain(str(error))
        return 1
    except KeyboardInterrupt:
        complain("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
