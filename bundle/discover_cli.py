"""The `discover` subcommand's options; its work (which needs PyYAML) is imported only when it runs,
so registering it keeps `python -m bundle` importable on a bare python3 inside the gap."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(commands) -> argparse.ArgumentParser:
    command = commands.add_parser(
        "discover", help="list every image (and CK8s artifact) that manifests, charts, a cluster need",
        description="Sources are combinable: rendered manifests (files, folders, '-' for stdin), Helm chart archives "
                    "or directories, kustomization folders, compose files, --kubeconfig, --ck8s-config.")
    command.add_argument("sources", nargs="*", metavar="PATH", help="manifest, folder, chart archive, '-'")
    command.add_argument("--rules", type=Path, action="append", default=[], metavar="FILE",
                         help="custom resource rules (YAML, the form of bundle/discover_rules.py)")
    command.add_argument("--compose-env", type=Path, action="append", default=[], metavar="FILE",
                         help="variables for compose files (KEY=VALUE lines)")
    command.add_argument("--kubeconfig", type=Path, help="read a running cluster through its API")
    command.add_argument("--context", help="kubeconfig context (default: its current-context)")
    command.add_argument("--namespace", help="only this namespace of the cluster")
    command.add_argument("--ck8s-config", type=Path, metavar="DIR", help="a Compliant Kubernetes config directory")
    command.add_argument("--resolve", action="store_true", help="pin every tag to its digest with skopeo")
    command.add_argument("--images-from", action="append", default=[], metavar="REGISTRY=PREFIX",
                         help="fetch REGISTRY's images from PREFIX, as registry.fill.upstreams (repeatable)")
    command.add_argument("--src-cert-dir", help="CA directory for the source registries (skopeo --cert-dir)")
    command.add_argument("--authfile", help="credentials for the source registries (skopeo auth file)")
    command.add_argument("--images-file", type=Path, metavar="OUT", help="write the references for bundle create")
    command.add_argument("--stack-snippet", type=Path, metavar="OUT", help="write them as YAML for `images:`")
    command.add_argument("--artifacts-file", type=Path, metavar="OUT", help="write the CK8s artifacts to fetch")
    command.add_argument("--against", type=Path, metavar="STACK", help="compare with a Pulumi.<env>.yaml")
    command.set_defaults(run=run)
    return command


def run(args) -> int:
    from . import discover
    from .images import parse_upstreams

    outputs = [path for path in (args.images_file, args.stack_snippet, args.artifacts_file) if path]
    discover.check_writable(outputs)
    sources = discover.Sources(paths=list(args.sources), rule_files=list(args.rules),
                               compose_env=list(args.compose_env), kubeconfig=args.kubeconfig, context=args.context,
                               namespace=args.namespace, ck8s_config=args.ck8s_config)
    found = discover.discover(sources)
    unpinned: list[str] = []
    if args.resolve:
        access = discover.SkopeoAccess(parse_upstreams(args.images_from), args.src_cert_dir, args.authfile)
        unpinned = discover.resolve(found.images, access)
    sys.stdout.write(discover.render_report(found))
    comparison = discover.against(found, args.against) if args.against else ""
    refs = discover.final_refs(found)
    # Everything was read (and resolved): only now is anything written.
    if args.images_file:
        discover.write_atomically(args.images_file, discover.images_file_text(refs))
    if args.stack_snippet:
        discover.write_atomically(args.stack_snippet, discover.stack_snippet_text(refs))
    if args.artifacts_file:
        discover.write_atomically(args.artifacts_file, discover.artifacts_file_text(found.artifacts))
    sys.stdout.write(comparison)
    for text in unpinned:
        print(f"bundle: {text}: no tag or digest, not resolved and left out; pin it at its source", file=sys.stderr)
    return 0
