"""The convergence property's parts: a small model of the sandbox stack, random edits of it, and
what sandbox hosts hold of a stack.

`Stack` names every knob the edits turn: which components the stack has, their ports and TLS, its
images, repositories, artifacts and client configurations. A component taken out keeps its knobs,
so putting it back brings back the settings it had. `sequences(seed, n)` draws `n` sequences of
edits (dealt from a deck of every kind of edit on every component), each starting where the one
before ended, as a pure function of the seed: any one of them can be replayed alone. `observe`
reads what a stack determines on the hosts (see observe_host.py) and in the private registry;
`differences` compares two observations.
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import os
import random
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.images import parse_image_ref
from oci.registry import RegistryClient
from offline.stackfile import StackConfig
from sandbox.hosts import SandboxHost

OBSERVE_HOST = (Path(__file__).parent / "observe_host.py").read_text()

IMAGES = ("docker.io/airgaptest/app-01:1.0", "docker.io/airgaptest/app-02:1.0", "docker.io/airgaptest/app-03:1.0",
          "docker.io/library/alpine:3.19",
          "registry.k8s.io/pause@sha256:7ac6a9fe3f53882a0161654d8d4bd433311f740184b001f9303c141bbd88ddc9")
APT_REPOS = {
    "upstream-debian": {},
    # The same archive, only one package of it: another published tree beside the first.
    "debian-hello": {"filter": "airgap-hello"},
}
RPM_REPOS = ("upstream-rpm", "upstream-rpm-copy")
ARTIFACTS = {
    "falco/falco_rules.yaml": {"file": "sandbox/data/artifacts/falco_rules.yaml",
                               "sha256": "29bbd2205a0712249223c127b89f8ff5e4546f84b8ece761031ad20b7588d61a"},
    "falco/index.yaml": {"file": "sandbox/data/artifacts/falco-index.yaml",
                         "sha256": "c3a61955ab4cfce8f345a4fc8856a247d80627d7618f7fc7af8b1d4ea95e9da4"},
    "opensearch/repository-s3-2.15.0.zip": {
        "file": "sandbox/data/artifacts/repository-s3-2.15.0.zip",
        "sha256": "bca10a09b208dc7d648f5a6f31f78a699be2456587ab1d4c8190c1c9513a2eb5"},
    "keys/upstream-debian.asc": {"url": "http://127.0.0.2:8080/keys/debian.asc",
                                 "sha256": "eacd9474db67e5a51f55c7274b656c875619019269cfa32ef71cd7154f327bea"},
    "keys/upstream-rpm.asc": {"url": "http://127.0.0.2:8080/keys/rpm.asc",
                              "sha256": "5cc6e1c0f403b52c9ef6f8efbb3d02218411cdeb018bb03027151c24729fabe3"},
}
MIRROR_CLIENTS = (("client", "apt"), ("client", "rpm"), ("registry", "apt"))
REGISTRY_CLIENTS = (("client", "docker"), ("client", "containerd"), ("mirror", "docker"))
COMPONENTS = ("registry", "apt", "rpm", "files")
SERVED = ("apt", "rpm", "files")
# Each component's two ports: its default and one that is free on its host.
PORTS = {"registry": (5443, 5444), "apt": (8443, 9443), "rpm": (8444, 9444), "files": (8445, 9445)}


@dataclass(frozen=True)
class Stack:
    """The knobs of the sandbox stack the edits turn; the default is close to the stack's file."""

    present: frozenset[str] = frozenset(COMPONENTS)
    ports: tuple[tuple[str, int], ...] = tuple((c, PORTS[c][0]) for c in COMPONENTS)
    plain_http: frozenset[str] = frozenset()
    """Served components with `tls.mode: none`."""
    images: frozenset[str] = frozenset(IMAGES[:2])
    apt_repos: frozenset[str] = frozenset({"upstream-debian"})
    rpm_repos: frozenset[str] = frozenset({"upstream-rpm"})
    artifacts: frozenset[str] = frozenset({"falco/falco_rules.yaml", "keys/upstream-debian.asc"})
    mirror_clients: frozenset[tuple[str, str]] = frozenset(MIRROR_CLIENTS[:2])
    registry_clients: frozenset[tuple[str, str]] = frozenset(REGISTRY_CLIENTS[:2])

    def port(self, component: str) -> int:
        return dict(self.ports)[component]

    def has(self, component: str) -> bool:
        return component in self.present

    def render(self, base: StackConfig) -> StackConfig:
        """The sandbox stack `base` with these settings (ck8s left out: it only writes files on
        the admin machine, from the file server's artifacts)."""
        values = {key.split(":", 1)[1]: value for key, value in base.values.items()}
        registry = {**values["registry"], "port": self.port("registry")}

        def served(name: str, settings: dict, **more: Any) -> dict:
            tls = {"tls": {"mode": "none"}} if name in self.plain_http else {}
            return {**settings, "port": self.port(name), **tls, **more} if self.has(name) else {}

        apt_base = values["aptMirror"]["repos"][0]
        rpm_base = values["rpmMirror"]["repos"][0]
        mirror_clients = _clients(self.mirror_clients, {"apt": self.has("apt"), "rpm": self.has("rpm")})
        registry_clients = _clients(self.registry_clients, {"docker": True, "containerd": True})
        return base.with_values(
            registry=registry if self.has("registry") else {},
            images=sorted(self.images) if self.has("registry") else [],
            trivyDb=values["trivyDb"] if self.has("registry") else {},
            registryClients=registry_clients if self.has("registry") else [],
            aptMirror=served("apt", values["aptMirror"], repos=[
                {**apt_base, "name": name, **APT_REPOS[name]} for name in sorted(self.apt_repos)]),
            rpmMirror=served("rpm", values["rpmMirror"], repos=[
                {**rpm_base, "id": repo} for repo in sorted(self.rpm_repos)]),
            mirrorClients=mirror_clients,
            fileServer=served("files", values["fileServer"], artifacts=[
                {"path": path, **ARTIFACTS[path]} for path in sorted(self.artifacts)]),
            ck8s={},
        )

    def describe(self) -> str:
        parts = []
        for component in COMPONENTS:
            if not self.has(component):
                parts.append(f"{component}: absent")
                continue
            http = " http" if component in self.plain_http else ""
            contents = {"registry": self.images, "apt": self.apt_repos, "rpm": self.rpm_repos,
                        "files": self.artifacts}[component]
            parts.append(f"{component}:{self.port(component)}{http} [{', '.join(sorted(contents))}]")
        parts.append("mirror clients [" + ", ".join(f"{h}/{k}" for h, k in sorted(self.mirror_clients)) + "]")
        parts.append("registry clients [" + ", ".join(f"{h}/{k}" for h, k in sorted(self.registry_clients)) + "]")
        return "; ".join(parts)


def _clients(flags: frozenset[tuple[str, str]], available: Mapping[str, bool]) -> list[dict]:
    """Client settings: a host per entry, with the kinds it asks for that the stack has."""
    by_host: dict[str, dict] = {}
    for host, kind in sorted(flags):
        if available[kind]:
            by_host.setdefault(host, {"host": host})[kind] = True
    return [by_host[host] for host in sorted(by_host)]


# --- edits -------------------------------------------------------------------------------------

Edit = tuple[str, Stack]


def _toggle(items: frozenset, item: Any) -> frozenset:
    return items - {item} if item in items else items | {item}


def _one_more_or_less(what: str, held: frozenset[str], pool: Iterable[str], rng: random.Random, *,
                      keep_one: bool) -> tuple[str, frozenset[str]]:
    """`held` with one of `pool` added, or one taken out (never the last when `keep_one`)."""
    choices = [("add", item) for item in sorted(set(pool) - held)]
    if len(held) > (1 if keep_one else 0):
        choices += [("remove", item) for item in sorted(held)]
    verb, item = rng.choice(choices)
    return f"{verb} {what} {item}", _toggle(held, item)


def edit_images(stack: Stack, rng: random.Random, _: str) -> Edit:
    what, images = _one_more_or_less("image", stack.images, IMAGES, rng, keep_one=False)
    return what, dataclasses.replace(stack, images=images)


def edit_apt_repos(stack: Stack, rng: random.Random, _: str) -> Edit:
    what, repos = _one_more_or_less("apt repository", stack.apt_repos, APT_REPOS, rng, keep_one=True)
    return what, dataclasses.replace(stack, apt_repos=repos)


def edit_rpm_repos(stack: Stack, rng: random.Random, _: str) -> Edit:
    what, repos = _one_more_or_less("rpm repository", stack.rpm_repos, RPM_REPOS, rng, keep_one=True)
    return what, dataclasses.replace(stack, rpm_repos=repos)


def edit_artifacts(stack: Stack, rng: random.Random, _: str) -> Edit:
    what, artifacts = _one_more_or_less("artifact", stack.artifacts, ARTIFACTS, rng, keep_one=False)
    return what, dataclasses.replace(stack, artifacts=artifacts)


def edit_mirror_clients(stack: Stack, rng: random.Random, _: str) -> Edit:
    flag = rng.choice(MIRROR_CLIENTS)
    verb = "remove" if flag in stack.mirror_clients else "add"
    return (f"{verb} mirror client {flag[0]}/{flag[1]}",
            dataclasses.replace(stack, mirror_clients=_toggle(stack.mirror_clients, flag)))


def edit_registry_clients(stack: Stack, rng: random.Random, _: str) -> Edit:
    flag = rng.choice(REGISTRY_CLIENTS)
    verb = "remove" if flag in stack.registry_clients else "add"
    return (f"{verb} registry client {flag[0]}/{flag[1]}",
            dataclasses.replace(stack, registry_clients=_toggle(stack.registry_clients, flag)))


def edit_component(stack: Stack, _: random.Random, component: str) -> Edit:
    verb = "remove" if stack.has(component) else "add back"
    return f"{verb} component {component}", dataclasses.replace(stack, present=_toggle(stack.present, component))


def edit_port(stack: Stack, _: random.Random, component: str) -> Edit:
    one, other = PORTS[component]
    port = other if stack.port(component) == one else one
    ports = tuple((c, port if c == component else p) for c, p in stack.ports)
    return f"port of {component} to {port}", dataclasses.replace(stack, ports=ports)


def edit_tls(stack: Stack, _: random.Random, component: str) -> Edit:
    mode = "generate" if component in stack.plain_http else "none"
    return f"tls of {component} to {mode}", dataclasses.replace(stack, plain_http=_toggle(stack.plain_http, component))


@dataclass(frozen=True)
class Card:
    """One kind of edit, on one component where it has one; it applies when that component is in
    the stack."""

    edit: Callable[[Stack, random.Random, str], Edit]
    on: str
    always: bool = False

    def applies(self, stack: Stack) -> bool:
        return self.always or stack.has(self.on)

    @property
    def name(self) -> str:
        return f"{self.edit.__name__}:{self.on}" if self.on else self.edit.__name__


# Every kind of edit, each on every component it concerns.
CARDS = (
    Card(edit_images, "registry"), Card(edit_apt_repos, "apt"), Card(edit_rpm_repos, "rpm"),
    Card(edit_artifacts, "files"), Card(edit_mirror_clients, "", always=True), Card(edit_registry_clients, "registry"),
    *(Card(edit_component, c, always=True) for c in COMPONENTS),
    *(Card(edit_port, c) for c in COMPONENTS),
    *(Card(edit_tls, c) for c in SERVED),
)


@dataclass(frozen=True)
class Sequence:
    index: int
    start: Stack
    edits: tuple[Edit, ...]
    cards: tuple[str, ...]
    """The card each edit was dealt from."""

    @property
    def final(self) -> Stack:
        return self.edits[-1][1]

    def describe(self, seed: int) -> str:
        steps = "\n".join(f"  {n}. {what}" for n, (what, _) in enumerate(self.edits, 1))
        return (f"sequence {self.index} of seed {seed} (replay it alone: CONVERGENCE_SEED={seed} "
                f"CONVERGENCE_ONLY={self.index})\n  from: {self.start.describe()}\n{steps}\n"
                f"  to:   {self.final.describe()}")


def sequences(seed: int, count: int, lengths: tuple[int, ...] = (2, 3)) -> list[Sequence]:
    """`count` sequences of random edits, the first from the default stack, each next one from where
    the one before ended; a pure function of `seed`. Edits are dealt from a shuffled deck holding
    every card once (a card that does not apply yet waits for its component), so that every kind of
    edit on every component comes up as often as the others."""
    rng = random.Random(seed)
    stack, drawn, deck = Stack(), [], list[Card]()
    for index in range(count):
        start, edits, cards = stack, [], []
        for _ in range(rng.choice(lengths)):
            card = next((card for card in deck if card.applies(stack)), None)
            if card is None:
                deck += rng.sample(CARDS, len(CARDS))
                card = next(card for card in deck if card.applies(stack))
            deck.remove(card)
            what, stack = card.edit(stack, rng, card.on)
            edits.append((what, stack))
            cards.append(card.name)
        drawn.append(Sequence(index, start, tuple(edits), tuple(cards)))
    return drawn


def dealt(plan: Iterable[Sequence]) -> dict[str, int]:
    """How many edits of each card `plan` makes."""
    counts = {card.name: 0 for card in CARDS}
    for sequence in plan:
        for name in sequence.cards:
            counts[name] += 1
    return counts


# --- observation -------------------------------------------------------------------------------

@dataclass
class Observation:
    files: dict[str, dict[str, str]] = field(default_factory=dict)
    """Host → path → what it holds (observe_host.py)."""
    units: dict[str, dict[str, str]] = field(default_factory=dict)
    """Host → unit → state."""
    catalogue: dict[str, str] = field(default_factory=dict)
    """`repository:tag` → manifest digest, in the private registry (empty when the stack has none)."""
    exports: dict[str, Any] = field(default_factory=dict)
    """The stack's outputs, update reports left out (they carry the time of the update)."""
    listening: list[str] = field(default_factory=list)
    """`address:port` of every TCP socket listening on the hosts' addresses."""


def observe(hosts: Iterable[SandboxHost], exports: Mapping[str, Any], password: str) -> Observation:
    """What the hosts hold, one SSH round trip each (in parallel), and the registry's catalogue."""
    seen: dict[str, dict] = {}
    errors: list[BaseException] = []

    def read(host: SandboxHost) -> None:
        try:
            seen[host.name] = json.loads(host.ssh("python3 -", input=OBSERVE_HOST).stdout)
        except BaseException as error:  # reported in the caller's thread
            errors.append(error)

    threads = [threading.Thread(target=read, args=(host,)) for host in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    observation = Observation(files={name: held["files"] for name, held in seen.items()},
                              units={name: held["units"] for name, held in seen.items()},
                              exports=without_reports(exports), listening=listening(host.address for host in hosts))
    if exports.get("registryEndpoint"):
        observation.catalogue = catalogue(exports["registryEndpoint"], exports["registryCaBundle"], password)
    return observation


def listening(addresses: Iterable[str]) -> list[str]:
    """`address:port` of the TCP sockets listening on `addresses`, sshd's left out. Sandbox hosts
    share this machine's network, so what they opened shows in its tables. (Services on every
    address, 0.0.0.0, are not told apart from the machine's own; the units they run are compared.)"""
    wanted = set(addresses)
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state != "0A":  # LISTEN
                continue
            hex_address, hex_port = local.split(":")
            raw = bytes.fromhex(hex_address)
            # The kernel prints each 32-bit word of the address in host (little-endian) order.
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            address, port = socket.inet_ntop(family, packed), int(hex_port, 16)
            if address in wanted and port != 22:
                found.add(f"{address}:{port}")
    return sorted(found)


def without_reports(exports: Mapping[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(dict(exports)))
    for mirror in ("aptMirror", "rpmMirror"):
        if isinstance(out.get(mirror), dict):
            out[mirror].pop("reports", None)
    return out


def catalogue(endpoint: str, ca_pem: str, password: str) -> dict[str, str]:
    """Every tag of every repository in the registry, with its manifest digest (through the API)."""
    context = ssl.create_default_context(cadata=ca_pem)
    basic = base64.b64encode(f"airgap:{password}".encode()).decode()
    host, _, port = endpoint.partition(":")

    def get(path: str) -> dict:
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
        try:
            connection.request("GET", path, headers={"Authorization": f"Basic {basic}"})
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        assert response.status == 200, f"{endpoint}{path}: {response.status} {body[:200]!r}"
        return json.loads(body)

    client = RegistryClient(endpoint, context, basic=basic)
    held = {}
    repositories = get("/v2/_catalog?n=1000")["repositories"]  # Distribution's largest page
    assert len(repositories) < 1000, "a catalogue this large needs paging"
    for repository in repositories:
        for tag in get(f"/v2/{repository}/tags/list").get("tags") or []:
            held[f"{repository}:{tag}"] = client.digest(repository, tag) or "none"
    return held


def locked(exports: Mapping[str, Any]) -> dict[str, str]:
    """The image lock as `repository:tag` → digest (the endpoint taken off)."""
    return {entry["private"].split("/", 1)[1]: entry["digest"] for entry in exports.get("imageLock") or []}


def private_name(image: str) -> str:
    ref = parse_image_ref(image)
    return f"{ref.private_path}:{ref.private_tag}"


ADDRESSES = {"registry": "127.0.0.11", "apt": "127.0.0.12", "rpm": "127.0.0.12", "files": "127.0.0.12"}
SERVED_TREES = {"apt": "/var/lib/airgap/apt-mirror/aptly/public/", "rpm": "/var/lib/airgap/rpm-mirror/public/",
                "files": "/var/lib/airgap/files/"}


def blind_spots(observation: Observation, stack: Stack) -> list[str]:
    """What an observation of hosts holding `stack` must see and does not (an observation that
    sees nothing would find every pair of hosts equal)."""
    missing = []
    for component in sorted(stack.present):
        if f"{ADDRESSES[component]}:{stack.port(component)}" not in observation.listening:
            missing.append(f"{component} does not listen on {ADDRESSES[component]}:{stack.port(component)}")
        if component in SERVED_TREES and not any(path.startswith(SERVED_TREES[component])
                                                 for path in observation.files.get("mirror", {})):
            missing.append(f"{component} serves nothing")
    if stack.has("registry") and not observation.catalogue:
        missing.append("the registry's catalogue is empty")
    return missing


# Where each component keeps what its removal leaves behind on purpose (`purge: false`): its
# stored data, and for the mirrors the configuration that reads it (aptly.conf, keyrings).
KEPT = {
    "registry": ("/var/lib/airgap/transfer/",),
    "apt": ("/var/lib/airgap/apt-mirror/", "/etc/airgap/apt-mirror/"),
    "rpm": ("/var/lib/airgap/rpm-mirror/", "/etc/airgap/rpm-mirror/"),
    "files": ("/var/lib/airgap/files/",),
}


def differences(converged: Observation, fresh: Observation, final: Stack, retained: Mapping[str, str]) -> list[str]:
    """What the converged hosts hold that a fresh apply of `final` does not, and the reverse.

    Allowed, and nothing else: the data a component absent from `final` kept when it was removed,
    and the images earlier stacks of the sequence put in the registry (`retained`: the registry
    never deletes, `storage.delete` is off), each with the digest it was filled with.
    """
    kept = tuple(prefix for component, prefixes in KEPT.items() if not final.has(component) for prefix in prefixes)
    found = []
    for host in sorted(set(converged.files) | set(fresh.files)):
        ours = {p: v for p, v in converged.files.get(host, {}).items() if not p.startswith(kept)}
        theirs = fresh.files.get(host, {})
        for path in sorted(set(ours) | set(theirs)):
            if ours.get(path) != theirs.get(path):
                found.append(f"{host}: {path}: converged {ours.get(path, 'absent')}, "
                             f"fresh {theirs.get(path, 'absent')}")
        for unit in sorted(set(converged.units.get(host, {})) | set(fresh.units.get(host, {}))):
            mine, other = converged.units.get(host, {}).get(unit), fresh.units.get(host, {}).get(unit)
            if mine != other:
                found.append(f"{host}: unit {unit}: converged {mine or 'absent'}, fresh {other or 'absent'}")
    expected = {**fresh.catalogue, **retained} if fresh.catalogue else {}
    for name in sorted(set(converged.catalogue) | set(expected)):
        if converged.catalogue.get(name) != expected.get(name):
            note = " (an earlier stack's image, kept)" if name in retained else ""
            found.append(f"registry: {name}: converged {converged.catalogue.get(name, 'absent')}, "
                         f"expected {expected.get(name, 'absent')}{note}")
    for address in sorted(set(converged.listening) ^ set(fresh.listening)):
        found.append(f"listening on {address}: converged {'yes' if address in converged.listening else 'no'}, "
                     f"fresh {'yes' if address in fresh.listening else 'no'}")
    for key in sorted(set(converged.exports) | set(fresh.exports)):
        if converged.exports.get(key) != fresh.exports.get(key):
            found.append(f"output {key}: converged {json.dumps(converged.exports.get(key))[:400]}, "
                         f"fresh {json.dumps(fresh.exports.get(key))[:400]}")
    return found
