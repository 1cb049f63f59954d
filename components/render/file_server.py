"""File server content: artifacts verified by sha256 on arrival, with a `SHA256SUMS` index.

Each artifact comes from a URL the host can reach or from a file copied from the admin machine
(staged under `.incoming/<sha256>`, content-addressed, never served: nginx hides dot-paths;
moved into place once verified).
An artifact already in place with the right checksum is left alone; a new one is written to a
temporary file beside its target and renamed into place only if its sha256 matches, so a
mismatch fails the step and the previous file stays served.
"""

from __future__ import annotations

from dataclasses import dataclass

from .shell import put_file, q

STAGING = ".incoming"


@dataclass(frozen=True)
class Artifact:
    path: str
    sha256: str
    url: str | None = None
    staged: bool = False
    """Copied from the admin machine to `<root>/.incoming/<sha256>`."""


_ARTIFACT_FUNCTION = r'''airgap_artifact() {  # ROOT PATH SHA256 URL STAGED
  local target="$1/$2" want=$3 url=$4 staged=$5 tmp got
  if [ -f "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$want" ]; then
    if [ -n "$staged" ]; then rm -f "$staged"; fi   # a copy sent again is not needed
    return 0
  fi
  install -d -m 0755 "$(dirname "$target")"
  tmp=$(mktemp "$(dirname "$target")/.airgap-incoming.XXXXXX")
  if [ -n "$url" ]; then
    if ! curl -fsSL --retry 3 --max-time 900 -o "$tmp" "$url"; then
      rm -f "$tmp"; echo "file server: cannot fetch $url for $2" >&2; ARTIFACT_FAILED=yes; return 0
    fi
  elif [ -f "$staged" ]; then
    mv -f "$staged" "$tmp"   # same file system: no second copy; a served file is never written in place
  else
    rm -f "$tmp"; echo "file server: $2 is not on the host and was not copied again ($staged missing); re-run with the copy replaced" >&2; ARTIFACT_FAILED=yes; return 0
  fi
  got=$(sha256sum "$tmp" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    rm -f "$tmp"
    echo "file server: $2 arrived with sha256 $got, expected $want; the previous file stays served" >&2
    ARTIFACT_FAILED=yes; return 0
  fi
  chmod 0644 "$tmp"; mv -f "$tmp" "$target"; CHANGED="$CHANGED artifacts"
}
'''


def sha256sums(artifacts: list[Artifact]) -> str:
    """`sha256sum -c` format, sorted by path."""
    return "".join(f"{a.sha256}  {a.path}\n" for a in sorted(artifacts, key=lambda a: a.path))


def install_body(root: str, artifacts: list[Artifact]) -> str:
    lines = [
        f"install -d -m 0755 {q(root)}",
        "ARTIFACT_FAILED=no",
        _ARTIFACT_FUNCTION,
    ]
    for artifact in sorted(artifacts, key=lambda a: a.path):
        staged = f"{root}/{STAGING}/{artifact.sha256}" if artifact.staged else ""
        lines.append("airgap_artifact " + " ".join(q(v) for v in (root, artifact.path, artifact.sha256,
                                                                   artifact.url or "", staged)))
    lines += [
        'if [ "$ARTIFACT_FAILED" = yes ]; then exit 1; fi',
        put_file(f"{root}/SHA256SUMS", sha256sums(artifacts) or "\n", tag="index"),
        f"(cd {q(root)} && sha256sum --quiet -c SHA256SUMS)",
    ]
    return "\n".join(lines)


def uninstall_body(root: str, *, purge: bool) -> str:
    if purge:
        return f"rm -rf --one-file-system {q(root)}"
    return f"echo {q(f'file server removed; files kept in {root}')} >&2"
