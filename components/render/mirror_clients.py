"""Client side of the mirrors: apt sources (deb822, Signed-By, never trusted=yes) and dnf/yum
`.repo` files (gpgcheck=1, repo_gpgcheck=1 where the metadata is signed).

The host's other sources are moved into an `airgap-moved` folder, where apt and dnf no longer
read them; removing the client configuration moves them back. Both directions are idempotent.
"""

from __future__ import annotations

from .shell import put_file, q

APT_MOVED = "/etc/apt/sources.list.d/airgap-moved"
YUM_MOVED = "/etc/yum.repos.d/airgap-moved"


def apt_lines(*, sources: dict[str, str], keys: dict[str, str], ca_pem: str | None, hostname: str,
              move_aside: bool) -> str:
    lines = ["install -d -m 0755 /etc/apt/keyrings /etc/apt/sources.list.d"]
    if move_aside:
        lines += [
            f"install -d -m 0755 {APT_MOVED}",
            f"if [ -f /etc/apt/sources.list ] && [ -s /etc/apt/sources.list ]; then mv /etc/apt/sources.list {APT_MOVED}/sources.list; fi",
            "for file in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do",
            "  [ -e \"$file\" ] || continue",
            "  case \"$(basename \"$file\")\" in airgap-*) continue ;; esac",
            f"  mv \"$file\" {APT_MOVED}/",
            "done",
        ]
    for name in sorted(sources):
        lines.append(put_file(f"/etc/apt/keyrings/airgap-{name}.asc", keys[name], tag="apt"))
        lines.append(put_file(f"/etc/apt/sources.list.d/airgap-{name}.sources", sources[name], tag="apt"))
    if ca_pem:
        lines.append(put_file("/etc/apt/keyrings/airgap-mirror-ca.crt", ca_pem, tag="apt"))
        lines.append(put_file("/etc/apt/apt.conf.d/60airgap-mirror",
                              f'Acquire::https::{hostname}::CaInfo "/etc/apt/keyrings/airgap-mirror-ca.crt";\n', tag="apt"))
    lines.append("if airgap_changed apt; then apt-get update -q -o APT::Update::Error-Mode=any >&2; fi")
    return "\n".join(lines)


def apt_restore_lines(names: list[str]) -> str:
    lines = [f"rm -f /etc/apt/sources.list.d/airgap-{q(n)}.sources /etc/apt/keyrings/airgap-{q(n)}.asc" for n in names]
    lines += [
        "rm -f /etc/apt/apt.conf.d/60airgap-mirror /etc/apt/keyrings/airgap-mirror-ca.crt",
        f"if [ -f {APT_MOVED}/sources.list ]; then mv {APT_MOVED}/sources.list /etc/apt/sources.list; fi",
        f"for file in {APT_MOVED}/*; do [ -e \"$file\" ] && mv \"$file\" /etc/apt/sources.list.d/; done",
        f"rmdir {APT_MOVED} 2>/dev/null || true",
    ]
    return "\n".join(lines)


def yum_lines(*, repo_files: dict[str, str], keys: dict[str, str], ca_pem: str | None, move_aside: bool,
              key_dir: str, ca_path: str) -> str:
    lines = [f"install -d -m 0755 /etc/yum.repos.d {q(key_dir)} \"$(dirname {q(ca_path)})\""]
    if move_aside:
        lines += [
            f"install -d -m 0755 {YUM_MOVED}",
            "for file in /etc/yum.repos.d/*.repo; do",
            "  [ -e \"$file\" ] || continue",
            "  case \"$(basename \"$file\")\" in airgap-*) continue ;; esac",
            f"  mv \"$file\" {YUM_MOVED}/",
            "done",
        ]
    for repo_id in sorted(repo_files):
        lines.append(put_file(f"{key_dir}/RPM-GPG-KEY-airgap-{repo_id}", keys[repo_id], tag="yum"))
        lines.append(put_file(f"/etc/yum.repos.d/airgap-{repo_id}.repo", repo_files[repo_id], tag="yum"))
    if ca_pem:
        lines.append(put_file(ca_path, ca_pem, tag="yum"))
    return "\n".join(lines)


def yum_restore_lines(ids: list[str], key_dir: str) -> str:
    lines = [f"rm -f /etc/yum.repos.d/airgap-{q(i)}.repo {q(key_dir)}/RPM-GPG-KEY-airgap-{q(i)}" for i in ids]
    lines += [
        f"for file in {YUM_MOVED}/*; do [ -e \"$file\" ] && mv \"$file\" /etc/yum.repos.d/; done",
        f"rmdir {YUM_MOVED} 2>/dev/null || true",
    ]
    return "\n".join(lines)
