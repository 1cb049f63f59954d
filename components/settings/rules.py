"""Cross-field rules: declared once next to each model, in the spirit of Ansible's argument specs.

A settings model lists its rules in a `RULES` class attribute, next to its fields:

    RULES: ClassVar[Rules] = (host_exists("host"), required_if("cert_file", when={"mode": "files"}))

Rules on the model's own fields (`required_if`, `only_with`, `exactly_one`, `mutually_exclusive`,
`at_least_one_on`, `required_together`, `unique`) come first; then the rules that look beyond it,
at hosts, secrets, other sections, files and images. Every message reads
`key.path: what is wrong; what is allowed`; the collector (collector.py) runs them all.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

from ..images import parse_image_ref
from .collector import GIVEN, Condition, Root, Rule, Rules, collect, given, holds, key_path, matches, resolve, value_at

__all__ = [
    "GIVEN", "Root", "Rule", "Rules", "SecretKind", "at_least_one_on", "collect", "digest_matches", "distinct_ports",
    "exactly_one", "host_exists", "image_listed", "machine", "mutually_exclusive", "needs", "only_with", "refers_to",
    "required_if", "required_together", "secret_exists", "unique",
]


def _show(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _condition(when: Condition) -> str:
    return " and ".join(key_path("", field) if expected is GIVEN else f"{key_path('', field)}: {_show(expected)}"
                        for field, expected in when.items())


def _names(fields: tuple[str, ...], last: str) -> str:
    spelt = [key_path("", field) for field in fields]
    return f"{', '.join(spelt[:-1])} {last} {spelt[-1]}" if len(spelt) > 1 else spelt[0]


def _why(why: str) -> str:
    return f"; {why}" if why else ""


@dataclasses.dataclass(frozen=True)
class _RequiredIf:
    field: str
    when: Condition
    why: str

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        if holds(model, self.when):
            condition = f" with {_condition(self.when)}" if self.when else ""
            for where, value in resolve(model, path, self.field):
                if not given(value):
                    yield f"{where}: required{condition}{_why(self.why)}"


def required_if(field: str, *, when: Condition | None = None, why: str = "") -> Rule:
    """`field` must be given when every field in `when` has its value (always, without `when`)."""
    return _RequiredIf(field, when or {}, why)


@dataclasses.dataclass(frozen=True)
class _OnlyWith:
    fields: tuple[str, ...]
    when: Condition
    why: str

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        if not holds(model, self.when):
            for field in self.fields:
                for where, value in resolve(model, path, field):
                    if given(value):
                        yield f"{where}: applies only with {_condition(self.when)}{_why(self.why)}"


def only_with(*fields: str, when: Condition, why: str = "") -> Rule:
    """Each of `fields` may be given only when the condition holds."""
    return _OnlyWith(fields, when, why)


@dataclasses.dataclass(frozen=True)
class _Count:
    fields: tuple[str, ...]
    allowed: Callable[[int], bool]
    message: str
    why: str

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        if not self.allowed(sum(given(value_at(model, field)) for field in self.fields)):
            yield f"{path}: {self.message}{_why(self.why)}"


def exactly_one(*fields: str, why: str = "") -> Rule:
    """Exactly one of `fields` is given."""
    return _Count(fields, lambda n: n == 1, f"give exactly one of {_names(fields, 'and')}", why)


def mutually_exclusive(*fields: str, why: str = "") -> Rule:
    """At most one of `fields` is given."""
    both = "not both" if len(fields) == 2 else "not more than one"
    return _Count(fields, lambda n: n <= 1, f"give {_names(fields, 'or')}, {both}", why)


def at_least_one_on(*flags: str, why: str = "") -> Rule:
    """At least one of the switches `flags` is true."""
    return _Count(flags, lambda n: n >= 1, "set " + " and/or ".join(f"{key_path('', f)}: true" for f in flags), why)


@dataclasses.dataclass(frozen=True)
class _RequiredTogether:
    fields: tuple[str, ...]
    why: str

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        present = [given(value_at(model, field)) for field in self.fields]
        if any(present) and not all(present):
            for field, there in zip(self.fields, present, strict=True):
                if not there:
                    yield f"{key_path(path, field)}: give {_names(self.fields, 'and')} together{_why(self.why)}"


def required_together(*fields: str, why: str = "") -> Rule:
    """`fields` are given all together or not at all."""
    return _RequiredTogether(fields, why)


@dataclasses.dataclass(frozen=True)
class _Unique:
    field: str
    why: str

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        first: dict[object, str] = {}
        for where, value in resolve(model, path, self.field):
            if value in first:
                yield f"{where}: {str(value)!r} is the same as {first[value]}; each must be unique{_why(self.why)}"
            else:
                first[value] = where


def unique(field: str, why: str = "") -> Rule:
    """No two values `field` names (`items[*].name`) are equal."""
    return _Unique(field, why)


@dataclasses.dataclass(frozen=True)
class _RefersTo:
    field: str
    among: Callable[[Root], Collection[str] | None]
    noun: str

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        known = self.among(root)
        if known is None:  # what it refers to is not configured; a `needs` rule says so
            return
        for where, value in resolve(model, path, self.field):
            if value is not None and value not in known:
                yield f"{where}: no {self.noun} {value!r}; known: {', '.join(sorted(known)) or 'none'}"


def refers_to(field: str, among: Callable[[Root], Collection[str] | None], noun: str) -> Rule:
    """Each value `field` names is one of `among(settings)` (skipped when that is None)."""
    return _RefersTo(field, among, noun)


def host_exists(field: str) -> Rule:
    """`field` names a host under `hosts`."""
    return _RefersTo(field, lambda root: root.hosts, "host named")


@dataclasses.dataclass(frozen=True)
class SecretKind:
    """What a secret must hold, beyond being set and not empty."""

    marker: str
    """Text every such secret contains."""
    what: str
    """Its name in a message: `an armored GPG private key`."""
    command: str = "pulumi config set --secret --path secrets.{name} …"
    """How to set one; `{name}` is the secret's name."""


ANY_SECRET = SecretKind(marker="", what="a secret")


@dataclasses.dataclass(frozen=True)
class _SecretExists:
    fields: tuple[str, ...]
    when: Condition
    kind: SecretKind

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        if not holds(model, self.when):
            return
        for where, name in (found for field in self.fields for found in resolve(model, path, field)):
            if name is None:
                continue
            value = root.secret_values.get(name)
            problem = ("is not set" if value is None else "is empty" if not value
                       else None if self.kind.marker in value else f"is not {self.kind.what}")
            if problem:  # never quote the value: it is a secret
                yield (f"{where}: secret {name!r} {problem}; set it with "
                       f"`{self.kind.command.format(name=name)}`")


def secret_exists(*fields: str, when: Condition | None = None, holds: SecretKind = ANY_SECRET) -> Rule:
    """Each of `fields` names a secret that is set, not empty and holds `holds` (when the condition holds)."""
    return _SecretExists(fields, when or {}, holds)


@dataclasses.dataclass(frozen=True)
class _Needs:
    sections: tuple[str, ...]
    field: str | None
    equals: object
    why: str

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        if self.field is not None and not matches(value_at(model, self.field), self.equals):
            return
        if all(getattr(root, section) is None for section in self.sections):
            where = key_path(path, self.field) if self.field else path
            yield f"{where}: no {_names(self.sections, 'or')} is configured{_why(self.why)}"


def needs(*sections: str, field: str | None = None, equals: object = GIVEN, why: str = "") -> Rule:
    """One of the top-level `sections` is configured (when `field` equals `equals`, given one)."""
    return _Needs(sections, field, equals, why)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclasses.dataclass(frozen=True)
class _DigestMatches:
    file: str
    digest: str

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        file, expected = getattr(model, self.file), getattr(model, self.digest)
        if file is not None and (actual := _sha256(file)) != expected:
            yield (f"{key_path(path, self.digest)}: {file} has sha256 {actual}; the stack says {expected}; "
                   "give the file's own digest")


def digest_matches(file: str, digest: str) -> Rule:
    """The sha256 of the file `file` names is `digest`'s value."""
    return _DigestMatches(file, digest)


@dataclasses.dataclass(frozen=True)
class _ImageListed:
    field: str

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        text = getattr(model, self.field)
        if parse_image_ref(text) not in root.images:
            yield (f"{key_path(path, self.field)}: {text!r} is not in `images`; "
                   "list it so it is in the private registry")


def image_listed(field: str) -> Rule:
    """The image `field` names is one of the top-level `images`."""
    return _ImageListed(field)


def machine(root: Root, host_name: str) -> tuple[str, ...]:
    """A host's address (with its bastion's), so that two names for one machine are one; its name
    when it is not configured."""
    host = root.hosts.get(host_name)
    if host is None:
        return ("name", host_name)
    via = root.hosts.get(host.bastion) if host.bastion else None
    return ("address", host.address, f"{via.address}:{via.port}" if via is not None else "")


@dataclasses.dataclass(frozen=True)
class _DistinctPorts:
    sections: tuple[str, ...]
    host_fields: tuple[tuple[str, str], ...]

    def check(self, model: Any, path: str, root: Root) -> Iterator[str]:
        taken: dict[tuple[tuple[str, ...], int], tuple[str, str]] = {}
        for name, host in sorted(root.hosts.items()):  # each host's sshd
            if host is not None:
                taken.setdefault((machine(root, name), host.port), (f"{key_path('hosts', name)}.port (SSH)", name))
        fields = dict(self.host_fields)
        for section in self.sections:
            service = getattr(model, section)
            host_name = getattr(service, fields.get(section, "host"), None) if service is not None else None
            if host_name is None:
                continue
            where, place = key_path(path, section), machine(root, host_name)
            other = taken.get((place, service.port))
            if other is None:
                taken[(place, service.port)] = (f"{where}.port", host_name)
                continue
            same = "" if other[1] == host_name else f" (the same machine as host {other[1]!r})"
            yield (f"{where}.port: {service.port} is also {other[0]} on host {host_name!r}{same}; "
                   "give each service its own port")


def distinct_ports(*sections: str, host_fields: Mapping[str, str] | None = None) -> Rule:
    """No two listeners on one machine's port: each host's SSH and the services `sections` (each on
    its `host`, or the field `host_fields` names). Machines are told apart by address."""
    return _DistinctPorts(sections, tuple(sorted((host_fields or {}).items())))
