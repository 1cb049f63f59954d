"""Debian mirror: aptly (snapshots, signed publish, atomic switch) or debmirror, served by nginx.

The update program (`/usr/local/sbin/airgap-apt-mirror-update`) is what both the `pulumi up`
step and the systemd timer run, under one lock:

- aptly: one aptly mirror per upstream component (a published component stays a component),
  created with the upstream's keyring (never `-ignore-signatures` unless the stack says so),
  updated, snapshotted as `<repo>-<component>-<UTC time>`; if the packages differ from what is
  published, the new snapshots are published with `publish switch` (signed with the stack's
  key) in one step, so clients see the old state or the new one, never a mix. A report of what
  changed is kept; the newest `keep` snapshots stay, older ones are dropped and `db cleanup`
  reclaims their packages. When the upstream's InRelease (it lists every index's checksum) and
  the repository's settings are byte for byte what the last complete update saw, the update
  stops there: nothing is downloaded, snapshotted or cleaned up (`AIRGAP_FULL_UPDATE=1` forces
  the whole update, e.g. to re-check the pool).
- debmirror: a copy of the upstream tree (its own signatures kept) in a dated directory built
  from hard links of the previous one, switched in with an atomic symlink swap.

A repository taken out of the stack stops being served: aptly unpublishes it (its snapshots stay,
as data do, and it is published again when put back), debmirror's link to it goes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from . import programs, systemd
from .purge import purge_lines
from .shell import put_file, q

UPDATE_PROGRAM = "/usr/local/sbin/airgap-apt-mirror-update"
CONFIG_DIR = "/etc/airgap/apt-mirror"
UNIT = "airgap-apt-mirror-update"
PUBLIC_KEY_NAME = "airgap-archive-key.asc"
REPORTS = "airgap-reports"
INSTALL = programs.load("apt_mirror/install.sh")


@dataclass(frozen=True)
class AptRepo:
    name: str
    url: str
    distribution: str
    components: tuple[str, ...]
    architectures: tuple[str, ...]
    keys: tuple[str, ...]
    """Armored public keys of the upstream."""
    filter: str | None = None
    filter_with_deps: bool = False
    ignore_signatures: bool = False
    tree: str | None = None
    """An imported bundle's archive tree on the mirror host, in place of `url`."""


@dataclass(frozen=True)
class AptMirrorSpec:
    root: str
    """Storage path: aptly's rootDir, keyrings, GNUPGHOME, debmirror trees."""
    method: str
    keep: int
    schedule: str
    repos: tuple[AptRepo, ...]

    @property
    def public(self) -> str:
        """What nginx serves: aptly's publish root (debmirror trees are linked into it)."""
        return f"{self.root}/aptly/public"

    def keyring(self, repo: AptRepo) -> str:
        return f"{self.root}/keyrings/{repo.name}.gpg"


def aptly_config(spec: AptMirrorSpec) -> str:
    return json.dumps({
        "rootDir": f"{spec.root}/aptly",
        "downloadConcurrency": 4,
        "architectures": [],
        "dependencyFollowSuggests": False,
        "dependencyFollowRecommends": False,
        "dependencyFollowAllVariants": False,
        "dependencyFollowSource": False,
        "gpgDisableSign": False,
        "gpgDisableVerify": False,
        "gpgProvider": "gpg",
        "downloadSourcePackages": False,
        "skipLegacyPool": True,
        "ppaDistributorID": "",
        "ppaCodename": "",
        "FileSystemPublishEndpoints": {},
        "S3PublishEndpoints": {},
        "SwiftPublishEndpoints": {},
    }, indent=2, sort_keys=True)


def update_program(spec: AptMirrorSpec) -> str:
    """The update program (programs/apt_mirror/update.sh): its settings, its functions, then one
    call per repository, every value quoted."""
    head = programs.with_settings("apt_mirror/update.sh", ROOT=spec.root, KEEP=int(spec.keep),
                                  APTLY_CONFIG=f"{CONFIG_DIR}/aptly.conf")
    calls = []
    for repo in spec.repos:
        archs = ",".join(repo.architectures)
        if spec.method == "aptly":
            rest = " ".join(q(v) for v in (
                repo.distribution, archs, repo.filter or "",
                "yes" if repo.filter_with_deps else "no", "yes" if repo.ignore_signatures else "no",
                spec.keyring(repo), repo.name, *repo.components))
            if repo.tree:
                calls.append(f"serve_tree {q(repo.tree)}\n"
                             f"AIRGAP_SOURCE={q('tree:' + repo.tree)} aptly_repo {q(repo.name)} \"$TREE_URL\" {rest}\n"
                             "stop_trees")
            else:
                calls.append(f"aptly_repo {q(repo.name)} {q(repo.url)} {rest}")
        else:
            calls.append("debmirror_repo " + " ".join(q(v) for v in (
                repo.name, repo.url, repo.distribution, archs, spec.keyring(repo), *repo.components)))
    calls.append("finish " + " ".join(q(repo.name) for repo in spec.repos))
    return head + "\n" + "\n".join(calls) + "\n"




def keyring_lines(spec: AptMirrorSpec) -> str:
    """Each repository's upstream keys, as a binary keyring aptly and debmirror verify with; the
    keys of repositories no longer mirrored removed."""
    lines = [f"install -d -m 0755 {q(spec.root + '/keyrings')}"]
    for repo in spec.repos:
        armored = f"{CONFIG_DIR}/keys/{repo.name}.asc"
        lines.append(put_file(armored, "".join(k if k.endswith("\n") else k + "\n" for k in repo.keys),
                              tag=f"keys-{repo.name}"))
        lines.append(f"airgap_apt_mirror_keyring {q(armored)} {q(spec.keyring(repo))} {q(f'keys-{repo.name}')}")
    lines.append(" ".join(["airgap_apt_mirror_prune_keys", q(f"{CONFIG_DIR}/keys"), q(f"{spec.root}/keyrings"),
                           *(q(repo.name) for repo in spec.repos)]))
    return "\n".join(lines)


def signing_key_lines(spec: AptMirrorSpec) -> str:
    """Import the stack's signing key (next stdin secret) into the mirror's own GNUPGHOME, and
    publish its public half for clients."""
    return f"airgap_apt_mirror_signing_key {q(spec.root + '/gnupg')} {q(f'{spec.public}/{PUBLIC_KEY_NAME}')}"


def install_body(spec: AptMirrorSpec, nginx_site: str, site_name: str) -> str:
    """Install step: packages, configuration, keys, update program, timer (programs/apt_mirror/install.sh)."""
    lines = [
        INSTALL,
        f"airgap_apt_mirror_tools {q(spec.method)}",
        f"install -d -m 0755 {q(spec.root)} {q(spec.root + '/aptly')} {q(spec.public)} {q(CONFIG_DIR)}",
        put_file(f"{CONFIG_DIR}/aptly.conf", aptly_config(spec), tag="config"),
        keyring_lines(spec),
    ]
    if spec.method == "aptly":
        lines.append(signing_key_lines(spec))
    lines += [
        put_file(UPDATE_PROGRAM, update_program(spec), mode="0755", tag="program"),
        systemd.scheduled_lines(UNIT, "Update the Debian mirrors (airgap-infra)", UPDATE_PROGRAM, spec.schedule),
    ]
    return "\n".join(lines)


def update_body() -> str:
    """Update step: run the update program now; its stdout is every repository's report."""
    return UPDATE_PROGRAM


def uninstall_body(spec: AptMirrorSpec, site_name: str, *, purge: bool) -> str:
    lines = [
        systemd.remove_scheduled_lines(UNIT),
        f"rm -f {q(UPDATE_PROGRAM)}",
        f"rm -f {q(f'/etc/nginx/sites-enabled/{site_name}.conf')}",
        "systemctl reload nginx >/dev/null 2>&1 || true",
    ]
    if purge:
        lines += [purge_lines(spec.root), f"rm -rf --one-file-system {q(CONFIG_DIR)}"]
    else:
        lines.append(f"echo {q(f'apt mirror removed; packages and snapshots kept in {spec.root}')} >&2")
    return "\n".join(lines)


def print_keys_lines(spec: AptMirrorSpec) -> str:
    """The keys clients trust, printed as the install step's output: the stack's publishing key
    (aptly), or the upstreams' own (debmirror keeps their signatures)."""
    if spec.method == "aptly":
        return f"cat {q(spec.public + '/' + PUBLIC_KEY_NAME)}"
    return "cat " + " ".join(q(f"{CONFIG_DIR}/keys/{repo.name}.asc") for repo in spec.repos)


def reports_command(spec: AptMirrorSpec) -> str:
    """Read-only: every update report the mirror host holds (none yet: nothing)."""
    return f"cat {q(spec.public + '/' + REPORTS)}/*.json 2>/dev/null || true"
