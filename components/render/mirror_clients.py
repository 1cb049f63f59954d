"""Client side of the mirrors: apt sources (deb822, Signed-By, never trusted=yes) and dnf/yum
`.repo` files (gpgcheck=1, repo_gpgcheck=1 where the metadata is signed).

The host's other sources are moved into an `airgap-moved` folder, where apt and dnf no longer
read them; removing the client configuration moves them back. Both directions are idempotent.
"""

from __future__ import annotations

from . import programs
from .formats import apt_conf
from .shell import put_file, q

APT_MOVED = "/etc/apt/sources.list.d/airgap-moved"
YUM_MOVED = "/etc/yum.repos.d/airgap-moved"
APT_SOURCES = programs.load("mirror_clients/apt-sources.sh")
YUM_REPOS = programs.load("mirror_clients/yum-repos.sh")


def apt_lines(*, sources: dict[str, str], keys: dict[str, str], ca_pem: str | None, hostname: str,
              move_aside: bool) -> str:
    """apt sources, keys and CA for the mirrors, and nothing else of ours: sources of repositories
    no longer mirrored are removed; the host's own sources are moved aside when asked, and back
    when not (programs/mirror_clients/apt-sources.sh)."""
    lines = [APT_SOURCES, "install -d -m 0755 /etc/apt/keyrings /etc/apt/sources.list.d",
             f"airgap_apt_sources_aside {q(APT_MOVED)}" if move_aside else f"airgap_apt_sources_back {q(APT_MOVED)}"]
    for name in sorted(sources):
        lines.append(put_file(f"/etc/apt/keyrings/airgap-{name}.asc", keys[name], tag="apt"))
        lines.append(put_file(f"/etc/apt/sources.list.d/airgap-{name}.sources", sources[name], tag="apt"))
    lines.append(" ".join(["airgap_apt_prune", *(q(name) for name in sorted(sources))]))
    if ca_pem:
        lines.append(put_file("/etc/apt/keyrings/airgap-mirror-ca.crt", ca_pem, tag="apt"))
        ca_info = apt_conf.ca_info("https", hostname, "/etc/apt/keyrings/airgap-mirror-ca.crt")
        lines.append(put_file("/etc/apt/apt.conf.d/60airgap-mirror", ca_info, tag="apt"))
    else:
        lines.append("rm -f /etc/apt/apt.conf.d/60airgap-mirror /etc/apt/keyrings/airgap-mirror-ca.crt")
    lines.append("if airgap_changed apt; then apt-get update -q -o APT::Update::Error-Mode=any >&2; fi")
    return "\n".join(lines)


def apt_restore_lines() -> str:
    """Every apt source, key and CA of ours removed; the host's own sources back in place."""
    return "\n".join([
        APT_SOURCES,
        "airgap_apt_prune",
        "rm -f /etc/apt/apt.conf.d/60airgap-mirror /etc/apt/keyrings/airgap-mirror-ca.crt",
        f"airgap_apt_sources_back {q(APT_MOVED)}",
    ])


def yum_lines(*, repo_files: dict[str, str], keys: dict[str, str], ca_pem: str | None, move_aside: bool,
              key_dir: str, ca_path: str) -> str:
    """dnf/yum repositories, keys and CA for the mirrors, and nothing else of ours; the host's own
    `.repo` files moved aside when asked, and back when not (programs/mirror_clients/yum-repos.sh)."""
    lines = [YUM_REPOS, f"install -d -m 0755 /etc/yum.repos.d {q(key_dir)} \"$(dirname {q(ca_path)})\"",
             f"airgap_yum_repos_aside {q(YUM_MOVED)}" if move_aside else f"airgap_yum_repos_back {q(YUM_MOVED)}"]
    for repo_id in sorted(repo_files):
        lines.append(put_file(f"{key_dir}/RPM-GPG-KEY-airgap-{repo_id}", keys[repo_id], tag="yum"))
        lines.append(put_file(f"/etc/yum.repos.d/airgap-{repo_id}.repo", repo_files[repo_id], tag="yum"))
    lines.append(" ".join(["airgap_yum_prune", q(key_dir), *(q(repo_id) for repo_id in sorted(repo_files))]))
    lines.append(put_file(ca_path, ca_pem, tag="yum") if ca_pem else f"rm -f {q(ca_path)}")
    return "\n".join(lines)


def yum_restore_lines(key_dir: str, ca_path: str) -> str:
    """Every .repo file, key and CA of ours removed; the host's own `.repo` files back in place."""
    return "\n".join([YUM_REPOS, f"airgap_yum_prune {q(key_dir)}", f"rm -f {q(ca_path)}",
                      f"airgap_yum_repos_back {q(YUM_MOVED)}"])
