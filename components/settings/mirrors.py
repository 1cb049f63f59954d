"""`aptMirror`, `rpmMirror` and `mirrorClients`: package mirrors and the hosts that use them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import Strict
from pydantic.dataclasses import dataclass

from ..render.formats.hosts import is_ipv6
from .fields import (
    MODEL_CONFIG,
    AbsolutePath,
    DataPath,
    DnsName,
    Flag,
    HostName,
    Pattern,
    PgpPublicKeyFile,
    Port,
    SecretName,
    Url,
    one_of,
)
from .rules import (
    GIVEN,
    Root,
    Rules,
    SecretKind,
    at_least_one_on,
    exactly_one,
    host_exists,
    mutually_exclusive,
    needs,
    only_with,
    required_if,
    secret_exists,
    unique,
)
from .tls import ServedTlsSettings

# The folders a mirror serves repositories from also hold its own `airgap-reports`; clients keep
# `airgap-*` files and folders of their own beside the sources and .repo files.
NOT_OURS = Pattern(r"(?!airgap-).*", "is reserved: airgap-* names are the mirrors' own (reports, keys, moved "
                                     "sources); choose another")
MirrorName = Annotated[str, Pattern(r"[a-z0-9][a-z0-9-]{0,40}",
                                    "is not a mirror name; use lowercase letters, digits and '-' (at most 41)"),
                       NOT_OURS]
Suite = Annotated[str, Pattern(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._+/-]{0,63}",
                               "is not a distribution/suite name (e.g. bookworm, bookworm-updates)")]
Component = Annotated[str, Pattern(r"[a-z0-9][a-z0-9._+-]{0,31}", "is not a component name (e.g. main, contrib)")]
DebArch = Annotated[str, one_of(("all", "amd64", "arm64", "armel", "armhf", "i386", "mips64el", "ppc64el", "riscv64",
                                 "s390x"), "a Debian architecture")]
RpmArch = Annotated[str, one_of(("x86_64", "aarch64", "ppc64le", "s390x", "i686", "noarch"), "an RPM architecture")]
AptlyFilter = Annotated[str, Pattern(
    r"[A-Za-z0-9 ._+:~(),|!<>=$*-]{1,512}",
    "is not an aptly filter; use letters, digits, spaces and . _ + : ~ ( ) , | ! < > = $ * -")]
OnCalendar = Annotated[str, Pattern(r"(?! )[A-Za-z0-9*:,./~ -]{1,64}(?<! )",
                                    "is not a systemd OnCalendar expression (e.g. daily, Mon *-*-* 03:00:00)")]
RepoId = Annotated[str, Pattern(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}",
                                "is not a repository id; use letters, digits, '.', '_', ':' and '-'"), NOT_OURS]
Keep = Annotated[int, Strict(), Ge(1), Le(100)]

GPG_PRIVATE_KEY = SecretKind(
    marker="BEGIN PGP PRIVATE KEY BLOCK", what="an armored GPG private key",
    command="gpg --armor --export-secret-keys KEY | pulumi config set --secret --path secrets.{name}")


@dataclass(frozen=True, config=MODEL_CONFIG)
class AptRepoSettings:
    """One upstream Debian repository to mirror."""

    RULES: ClassVar[Rules] = (
        exactly_one("url", "tree", why="url: the upstream archive; tree: an imported bundle's archive tree "
                                       "on the mirror host"),
        required_if("keys", when={"ignore_signatures": False},
                    why="give the upstream's armored signing key(s); ignoreSignatures: true skips the check "
                        "(never recommended)"),
        only_with("filter_with_deps", when={"filter": GIVEN}),
    )

    name: MirrorName
    """Published as `<mirror>/<name>`; also the aptly mirror's name."""
    distribution: Suite
    url: Url | None = None
    """Upstream archive root, e.g. http://deb.debian.org/debian."""
    tree: AbsolutePath | None = None
    """In place of `url`: the archive tree of an imported bundle on the mirror host
    (`<into>/apt/<name>`), served to aptly on loopback while it updates; signatures still checked."""
    components: Annotated[tuple[Component, ...], MinLen(1), MaxLen(16)] = ("main",)
    architectures: Annotated[tuple[DebArch, ...], MinLen(1)] = ("amd64",)
    filter: AptlyFilter | None = None
    """aptly package query, e.g. `nginx | openssl`; only matching packages are mirrored."""
    filter_with_deps: Flag = False
    """With `filter`: also mirror the dependencies of matching packages."""
    keys: Annotated[tuple[PgpPublicKeyFile, ...], MaxLen(16)] = ()
    """Armored public keys (files) that sign the upstream's Release; required."""
    ignore_signatures: Flag = False
    """Mirror without checking the upstream's signature. Never, unless you must."""


class _AptScopesItsCa:
    """apt trusts the mirror's CA for its host name alone (`Acquire::https::<host>::CaInfo`), which
    cannot be an IPv6 address."""

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        host = root.hosts.get(model.host)
        if model.tls.mode != "none" and model.hostname is None and host is not None and is_ipv6(host.address):
            yield (f"{path}.hostname: required when the host's address is IPv6 ({host.address}); apt scopes the "
                   "mirror's CA to a host name or IPv4 address")


@dataclass(frozen=True, config=MODEL_CONFIG)
class AptMirrorSettings:
    RULES: ClassVar[Rules] = (
        host_exists("host"),
        _AptScopesItsCa(),
        secret_exists("signing_key_secret", when={"method": "aptly"}, holds=GPG_PRIVATE_KEY),
        unique("repos[*].name"),
        only_with("repos[*].tree", when={"method": "aptly"}),
        only_with("repos[*].filter", when={"method": "aptly"}, why="debmirror cannot filter"),
    )

    host: HostName
    hostname: DnsName | None = None
    port: Port = 8443
    tls: ServedTlsSettings = ServedTlsSettings()
    method: Literal["aptly", "debmirror"] = "aptly"
    """`aptly`: snapshots, published signed with the stack's key; `debmirror`: a plain copy that
    keeps the upstream's own signatures."""
    storage_path: DataPath = "/var/lib/airgap/apt-mirror"
    signing_key_secret: SecretName = "mirrorSigningKey"
    """Entry of `secrets` holding the armored GPG private key that signs what aptly publishes."""
    keep: Keep = 5
    """Snapshots kept per repository; older ones are dropped and their packages reclaimed."""
    schedule: OnCalendar = "daily"
    """When the systemd timer updates the mirrors."""
    repos: Annotated[tuple[AptRepoSettings, ...], MinLen(1), MaxLen(64)] = ()
    purge: Flag = False


@dataclass(frozen=True, config=MODEL_CONFIG)
class RpmRepoSettings:
    """One upstream RPM repository to mirror."""

    RULES: ClassVar[Rules] = (
        mutually_exclusive("baseurl", "tree", why="tree: an imported bundle's repository tree on the mirror host"),
        required_if("gpg_key", why="give the armored key that signs the packages; unsigned repositories are not "
                                   "mirrored"),
    )

    id: RepoId
    """Repository id; published as `<mirror>/<id>`."""
    baseurl: Url | None = None
    """Upstream baseurl; leave it out to use the host's existing repository of this id."""
    tree: AbsolutePath | None = None
    """In place of `baseurl`: the repository tree of an imported bundle on the mirror host
    (`<into>/rpm/<id>`); signatures still checked."""
    gpg_key: PgpPublicKeyFile | None = None
    """Armored public key that signs the packages (and the metadata, when it is signed)."""
    releasever: Suite = "9"
    arches: Annotated[tuple[RpmArch, ...], MinLen(1)] = ("x86_64", "noarch")
    metadata_signed: Flag = True
    """The upstream signs repomd.xml (repomd.xml.asc): mirrored as is, and clients check it."""


@dataclass(frozen=True, config=MODEL_CONFIG)
class RpmMirrorSettings:
    RULES: ClassVar[Rules] = (host_exists("host"), unique("repos[*].id"))

    host: HostName
    hostname: DnsName | None = None
    port: Port = 8444
    tls: ServedTlsSettings = ServedTlsSettings()
    server: Literal["nginx", "httpd"] = "nginx"
    storage_path: DataPath = "/var/lib/airgap/rpm-mirror"
    keep: Keep = 5
    schedule: OnCalendar = "daily"
    repos: Annotated[tuple[RpmRepoSettings, ...], MinLen(1), MaxLen(64)] = ()
    purge: Flag = False


@dataclass(frozen=True, config=MODEL_CONFIG)
class MirrorClientSettings:
    """A host whose package manager is pointed at the mirrors."""

    RULES: ClassVar[Rules] = (
        host_exists("host"),
        needs("apt_mirror", field="apt"),
        needs("rpm_mirror", field="rpm"),
        at_least_one_on("apt", "rpm"),
    )

    host: HostName
    apt: Flag = False
    """Apt sources (deb822, Signed-By) for every apt mirror repository."""
    rpm: Flag = False
    """dnf/yum .repo files (gpgcheck=1) for every RPM mirror repository."""
    move_aside: Flag = True
    """Move the host's other sources/.repo files into an `airgap-moved` folder (restored on removal)."""
