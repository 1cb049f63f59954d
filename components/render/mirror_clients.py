"""Client side of the mirrors: apt sources (deb822, Signed-By, never trusted=yes) and dnf/yum
`.repo` files (gpgcheck=1, repo_gpgcheck=1 where the metadata is signed).

The host's other sources are moved into an `airgap-moved` folder, where apt and dnf no longer
read them; removing the client configuration moves them back. Both directions are idempotent.
"""

from __future__ import annotations

from . import programs
from .shell import put_file, q

APT_MOVED = "/etc/apt/sources.list.d/airgap-moved"
YUM_MOVED = "/etc/yum.repos.d/airgap-moved"
APT_SOURCES = programs.load("mirror_clients/apt-sources.sh")
YUM_REPOS = programs.load("mirror_clients/yum-repos.sh")


def apt_lines(*, sources: dict[str, str], keys: dict[str, str], ca_pem: str | None, hostname: str,
              move_aside: bool) -> str:
    """apt sources, keys and CA for the mirrors; the host's own sources moved aside when asked
    (programs/mirror_clients/apt-sources.sh)."""
    lines = ["install -d -m 0755 /etc/apt/keyrings /etc/apt/sources.list.d"]
    if move_aside:
        lines = [APT_SOURCES, *lines, f"airgap_apt_sources_aside {q(APT_MOVED)}"]
    for name in sorted(sources):
        lines.append(put_file(f"/etc/apt/keyrings/airgap-{name}.asc", keys[name], tag="apt"))
        lines.append(put_file(f"/etc/apt/sources.list.d/airgap-{name}.sources", sources[name], tag="apt"))
    if ca_pem:
        lines.append(put_file("/etc/apt/keyrings/airgap-mirror-ca.crt", ca_pem, tag="apt"))
        ca_info = f'Acquire::https::{hostname}::CaInfo "/etc/apt/keyrings/airgap-mirror-ca.crt";\n'
        lines.append(put_file("/etc/apt/apt.conf.d/60airgap-mirror", ca_info, tag="apt"))
    lines.append("if airgap_changed apt; then apt-get update -q -o APT::Update::Error-Mode=any >&2; fi")
    return "\n".join(lines)


def apt_restore_lines(names: list[str]) -> str:
    lines = [f"rm -f /etc/apt/sources.list.d/airgap-{q(n)}.sources /etc/apt/keyrings/airgap-{q(n)}.asc" for n in names]
    lines += [
        "rm -f /etc/apt/apt.conf.d/60airgap-mirror /etc/apt/keyrings/airgap-mirror-ca.crt",
        f"airgap_apt_sources_back {q(APT_MOVED)}",
    ]
    return "\n".join([APT_SOURCES, *lines])


def yum_lines(*, repo_files: dict[str, str], keys: dict[str, str], ca_pem: str | None, move_aside: bool,
              key_dir: str, ca_path: str) -> str:
    """dnf/yum repositories, keys and CA for the mirrors; the host's own `.repo` files moved aside
    when asked (programs/mirror_clients/yum-repos.sh)."""
    lines = [f"install -d -m 0755 /etc/yum.repos.d {q(key_dir)} \"$(dirname {q(ca_path)})\""]
    if move_aside:
        lines = [YUM_REPOS, *lines, f"airgap_yum_repos_aside {q(YUM_MOVED)}"]
    for repo_id in sorted(repo_files):
        lines.append(put_file(f"{key_dir}/RPM-GPG-KEY-airgap-{repo_id}", keys[repo_id], tag="yum"))
        lines.append(put_file(f"/etc/yum.repos.d/airgap-{repo_id}.repo", repo_files[repo_id], tag="yum"))
    if ca_pem:
        lines.append(put_file(ca_path, ca_pem, tag="yum"))
    return "\n".join(lines)


def yum_restore_lines(ids: list[str], key_dir: str) -> str:
    lines = [f"rm -f /etc/yum.repos.d/airgap-{q(i)}.repo {q(key_dir)}/RPM-GPG-KEY-airgap-{q(i)}" for i in ids]
    lines.append(f"airgap_yum_repos_back {q(YUM_MOVED)}")
    return "\n".join([YUM_REPOS, *lines])
