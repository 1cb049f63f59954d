"""Cross-field rules on their own: each rule as a table of models it refuses (with the exact
report) and one it accepts; then the collector that walks nested models, lists and maps."""

import dataclasses
import hashlib
from types import SimpleNamespace as Model
from typing import ClassVar

import pytest

from components.images import ImageRef, parse_image_ref
from components.settings.collector import collect, item_path, key_path
from components.settings.rules import (
    GIVEN,
    Rules,
    SecretKind,
    at_least_one_on,
    digest_matches,
    distinct_ports,
    exactly_one,
    host_exists,
    image_listed,
    mutually_exclusive,
    needs,
    only_with,
    refers_to,
    required_if,
    required_together,
    secret_exists,
    unique,
)

ROOT = Model(hosts={"alpha": None, "beta": None}, images=(parse_image_ref("nginx:1.25"),), registry=None, harbor=None,
             secret_values={"set": "value", "empty": "", "key": "-----BEGIN OPENSSH PRIVATE KEY-----\n…"})
SSH_KEY = SecretKind(marker="PRIVATE KEY-----", what="a private key")
GPG_KEY = SecretKind(marker="PGP PRIVATE KEY", what="a GPG key", command="gpg --export-secret-keys K | set {name}")
FILE = Model(path=__file__, sha256=hashlib.sha256(open(__file__, "rb").read()).hexdigest())

CASES = [
    # rule, model, the report at key path `x`
    pytest.param(required_if("cert_file", when={"mode": "files"}, why="give a PEM path"),
                 Model(mode="files", cert_file=None), ["x.certFile: required with mode: files; give a PEM path"],
                 id="required-if"),
    pytest.param(required_if("cert_file", when={"mode": "files"}), Model(mode="generate", cert_file=None), [],
                 id="required-if-other-mode"),
    pytest.param(required_if("gpg_key", why="unsigned repositories are not mirrored"), Model(gpg_key=None),
                 ["x.gpgKey: required; unsigned repositories are not mirrored"], id="required"),
    pytest.param(required_if("keys", when={"ignore_signatures": False}), Model(keys=(), ignore_signatures=False),
                 ["x.keys: required with ignoreSignatures: false"], id="required-if-empty-list"),
    pytest.param(required_if("kube.chart", when={"target": "k8s", "kube.mode": "helm"}),
                 Model(target="k8s", kube=Model(mode="helm", chart=None)),
                 ["x.kube.chart: required with target: k8s and kube.mode: helm"], id="required-if-nested"),
    pytest.param(required_if("smtp", when={"email": GIVEN}), Model(email="a@b.c", smtp=None),
                 ["x.smtp: required with email"], id="required-if-given"),
    pytest.param(required_if("smtp", when={"email": GIVEN}), Model(email=None, smtp=None), [],
                 id="required-if-not-given"),
    pytest.param(only_with("cert_file", "key_secret", when={"mode": "files"}),
                 Model(mode="generate", cert_file="c.pem", key_secret=None),
                 ["x.certFile: applies only with mode: files"], id="only-with"),
    pytest.param(only_with("repos[*].tree", when={"method": "aptly"}, why="debmirror copies URLs"),
                 Model(method="debmirror", repos=(Model(tree=None), Model(tree="/srv/t"))),
                 ["x.repos[1].tree: applies only with method: aptly; debmirror copies URLs"], id="only-with-each"),
    pytest.param(exactly_one("url", "tree"), Model(url="http://a", tree="/t"), ["x: give exactly one of url and tree"],
                 id="exactly-one-both"),
    pytest.param(exactly_one("url", "tree"), Model(url=None, tree=None), ["x: give exactly one of url and tree"],
                 id="exactly-one-neither"),
    pytest.param(exactly_one("url", "tree"), Model(url=None, tree="/t"), [], id="exactly-one"),
    pytest.param(mutually_exclusive("baseurl", "tree"), Model(baseurl="http://a", tree="/t"),
                 ["x: give baseurl or tree, not both"], id="mutually-exclusive"),
    pytest.param(mutually_exclusive("baseurl", "tree"), Model(baseurl=None, tree=None), [],
                 id="mutually-exclusive-neither"),
    pytest.param(at_least_one_on("apt", "rpm"), Model(apt=False, rpm=False), ["x: set apt: true and/or rpm: true"],
                 id="at-least-one-on"),
    pytest.param(required_together("dns_zone", "dns_servers"), Model(dns_zone="z", dns_servers=()),
                 ["x.dnsServers: give dnsZone and dnsServers together"], id="required-together"),
    pytest.param(required_together("dns_zone", "dns_servers"), Model(dns_zone=None, dns_servers=()), [],
                 id="required-together-none"),
    pytest.param(unique("users[*].name"), Model(users=(Model(name="a"), Model(name="b"), Model(name="a"))),
                 ["x.users[2].name: 'a' is the same as x.users[0].name; each must be unique"], id="unique"),
    pytest.param(host_exists("host"), Model(host="ghost"), ["x.host: no host named 'ghost'; known: alpha, beta"],
                 id="host-exists"),
    pytest.param(host_exists("bastion"), Model(bastion=None), [], id="host-exists-optional"),
    pytest.param(refers_to("paths[*]", lambda root: None, "artifact at"), Model(paths=("a",)), [],
                 id="refers-to-nothing-configured"),
    pytest.param(refers_to("paths[*]", lambda root: {"a"}, "artifact at"), Model(paths=("a", "b")),
                 ["x.paths[1]: no artifact at 'b'; known: a"], id="refers-to"),
    pytest.param(secret_exists("password"), Model(password="absent"),
                 ["x.password: secret 'absent' is not set; set it with "
                  "`pulumi config set --secret --path secrets.absent …`"], id="secret-not-set"),
    pytest.param(secret_exists("password"), Model(password="empty"),
                 ["x.password: secret 'empty' is empty; set it with "
                  "`pulumi config set --secret --path secrets.empty …`"],
                 id="secret-empty"),
    pytest.param(secret_exists("key", holds=SSH_KEY), Model(key="set"),
                 ["x.key: secret 'set' is not a private key; set it with "
                  "`pulumi config set --secret --path secrets.set …`"], id="secret-kind"),
    pytest.param(secret_exists("key", holds=SSH_KEY), Model(key="key"), [], id="secret-kind-ok"),
    pytest.param(secret_exists("key", when={"method": "aptly"}, holds=GPG_KEY), Model(method="aptly", key="absent"),
                 ["x.key: secret 'absent' is not set; set it with `gpg --export-secret-keys K | set absent`"],
                 id="secret-command"),
    pytest.param(secret_exists("key", when={"method": "aptly"}), Model(method="debmirror", key="absent"), [],
                 id="secret-not-needed"),
    pytest.param(needs("registry", "harbor", why="its image comes from one"), Model(),
                 ["x: no registry or harbor is configured; its image comes from one"], id="needs"),
    pytest.param(needs("registry", field="apt"), Model(apt=True), ["x.apt: no registry is configured"],
                 id="needs-field"),
    pytest.param(needs("registry", field="driver", equals="kmod"), Model(driver="bpf"), [], id="needs-other-value"),
    pytest.param(digest_matches("path", "sha256"), Model(path=FILE.path, sha256="0" * 64),
                 [f"x.sha256: {FILE.path} has sha256 {FILE.sha256}; the stack says {'0' * 64}; "
                  "give the file's own digest"], id="digest"),
    pytest.param(digest_matches("path", "sha256"), FILE, [], id="digest-ok"),
    pytest.param(image_listed("image"), Model(image="docker.io/library/nginx:1.25"), [], id="image-listed"),
    pytest.param(image_listed("image"), Model(image="nginx:1.26"),
                 ["x.image: 'nginx:1.26' is not in `images`; list it so it is in the private registry"],
                 id="image-not-listed"),
    pytest.param(distinct_ports("apt_mirror", "rpm_mirror", "file_server"),
                 Model(apt_mirror=Model(host="m", port=8443), rpm_mirror=None, file_server=Model(host="m", port=8443)),
                 ["x.fileServer.port: 8443 is also x.aptMirror.port on host 'm'; give each service its own port"],
                 id="distinct-ports"),
    pytest.param(distinct_ports("apt_mirror", "file_server"),
                 Model(apt_mirror=Model(host="m", port=8443), file_server=Model(host="n", port=8443)), [],
                 id="distinct-ports-other-host"),
]


@pytest.mark.parametrize("rule,model,report", CASES)
def test_rule(rule, model, report):
    assert list(rule.check(model, "x", ROOT)) == report


@dataclasses.dataclass(frozen=True)
class Leaf:
    RULES: ClassVar[Rules] = (host_exists("host_name"),)
    host_name: str


@dataclasses.dataclass(frozen=True)
class Branch:
    RULES: ClassVar[Rules] = (unique("leaves[*].host_name"),)
    leaves: tuple[Leaf, ...]
    by_name: dict[str, Leaf]


@dataclasses.dataclass(frozen=True)
class Top:
    RULES: ClassVar[Rules] = (needs("registry", field="images"),)
    hosts: dict[str, object]
    secret_values: dict[str, str]
    images: tuple[ImageRef, ...]
    registry: object | None
    branch: Branch


def test_collect_walks_models_lists_and_maps_and_reports_every_problem():
    top = Top(hosts={"alpha": None}, secret_values={}, images=(parse_image_ref("nginx:1"),), registry=None,
              branch=Branch(leaves=(Leaf("alpha"), Leaf("ghost"), Leaf("alpha")), by_name={"odd": Leaf("gone")}))
    assert collect(top) == [
        "images: no registry is configured",
        "branch.leaves[2].hostName: 'alpha' is the same as branch.leaves[0].hostName; each must be unique",
        "branch.leaves[1].hostName: no host named 'ghost'; known: alpha",
        "branch.byName.odd.hostName: no host named 'gone'; known: alpha",
    ]


def test_key_paths_are_spelt_as_in_the_stack_file():
    assert key_path("", "s3_secret_key_secret") == "s3SecretKeySecret"
    assert key_path("harbor", "tls.key_secret") == "harbor.tls.keySecret"
    assert key_path("", "ck8s") == "ck8s"
    assert item_path("hosts", "registry") == "hosts.registry"
    assert item_path("registry.fill.upstreams", "docker.io") == 'registry.fill.upstreams["docker.io"]'
