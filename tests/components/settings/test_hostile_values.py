"""Property: a hostile string in any string-valued setting is refused before any resource exists,
with a `key.path: message` problem, or, once rendered, leaves every script and file with exactly
the structure the stack had without it (tests/render/structure.py: each script as bash parses it,
each file read by its format's own parser, values masked).

Every string the shipped stacks hold (map keys included, secrets left out: they reach hosts only
through stdin), and the optional ones a richer sandbox stack sets, gets a fixed hostile value of
every class; hypothesis then mixes fragments of every class into random positions of random
settings, a bounded number of times (AIRGAP_HOSTILE_EXAMPLES, default 500: about 20 s) so CI stays fast.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st

from components.settings import SettingsError
from components.settings.collector import item_path
from offline.program import run_program
from offline.stackfile import StackConfig, load_stack
from tests.render.structure import run_shape

from .stack_edits import SANDBOX, edits, set_path, with_changes

# The sandbox stack with the optional strings it leaves out set, so that they are exercised too.
RICH_SANDBOX = with_changes(edits(
    set_path("registry.hostname", "registry.airgap.test"),
    set_path("aptMirror.hostname", "mirror.airgap.test"),
    set_path("rpmMirror.hostname", "rpm.airgap.test"),
    set_path("fileServer.hostname", "files.airgap.test"),
    set_path("aptMirror.schedule", "Mon *-*-* 03:00:00"),
    set_path("rpmMirror.schedule", "daily"),
    set_path("aptMirror.repos.0.filter", "Name (nginx) | Priority (required)"),
    set_path("aptMirror.repos.0.components", ["main", "contrib"]),
    set_path("rpmMirror.repos.0.releasever", "12"),
    set_path("registryClients.0.upstreams", ["docker.io", "quay.io"]),
    set_path("ck8s.smtpFrom", "alerts@airgap.test"),
    set_path("hosts.bastion.user", "jump"),
), SANDBOX)
STACKS = {"sandbox": RICH_SANDBOX, "prod": load_stack("prod"), "dev": load_stack("dev")}

# One value of each hostile class, as a fragment to put into a valid value.
FRAGMENTS = (
    "\n", "\nTrusted: yes", "\r", "\t", " ", ";", ";}server{listen 80;root /;}#", "'", '"', '"]\n[host."x',
    "`id`", "$(reboot)", "${HOME}", "$releasever", "%", "%h", "%eth0", "%$(reboot)", "#", "{", "}", " {\n}\n. {",
    "[", "]", "\\", "\\\n", "..", "/../..", "/", "*", "?", "&", "|", ">", "<", "=", ":", "@", "user:pw@", ",",
    "\nExecStartPre=/bin/sh", "\x00", "\x7f", "\u200b", "е", "１", "٣", "-", "-n", ".git/", "/etc/passwd",
)
REPLACEMENTS = ("0.0.0.0", "::", "ff02::1", "fe80::1", "127.1", "0x7f000001", "localhost", "-n", "__main__.py",
                ".git/hooks/x", "/var/lib/dpkg", "/", "DOCKER.IO", "index.docker.io", "", " ")
LIMIT = int(os.environ.get("AIRGAP_HOSTILE_EXAMPLES", "500"))
# The same examples at every run unless asked for new ones (AIRGAP_HOSTILE_RANDOM=1, with a larger
# AIRGAP_HOSTILE_EXAMPLES, to explore): CI stays reproducible, exploration finds what it has not tried.
FIXED = os.environ.get("AIRGAP_HOSTILE_RANDOM") != "1"


# Maps whose keys are the stack's own data (the rest are the schema's keys).
USER_KEYS = {("hosts",), ("registry", "fill", "upstreams"), ("harbor", "fill", "upstreams"), ("harbor", "s3"),
             ("mattermost", "overrides")}


def _strings(node: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(path, text) of every string in a config value; a map key is the path ending in ('key', name)."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _strings(item, (*path, index))
    elif isinstance(node, dict):
        for key, item in node.items():
            if path in USER_KEYS:
                yield (*path, ("key", key)), key
            yield from _strings(item, (*path, key))


def string_settings(config: StackConfig) -> list[tuple[tuple[Any, ...], str]]:
    found: list[tuple[tuple[Any, ...], str]] = []
    for full, value in config.values.items():
        key = full.split(":", 1)[1]
        if key != "secrets":
            found.extend(_strings(value, (key,)))
    return found


TARGETS = [(stack, path, text) for stack, config in STACKS.items() for path, text in string_settings(config)]


def spelt(path: tuple[Any, ...], new_key: str | None = None) -> str:
    """A path as problems spell it: `aptMirror.repos[0].url`, `registry.fill.upstreams["docker.io"]`
    (a changed map key: named as it now is)."""
    text = path[0]
    for part in path[1:]:
        if isinstance(part, tuple):
            part = part[1] if new_key is None else new_key
        text = f"{text}[{part}]" if isinstance(part, int) else item_path(text, part)
    return text


def changed(config: StackConfig, path: tuple[Any, ...], value: str) -> StackConfig:
    """`config` with the string at `path` (or the map key `path` ends in) replaced by `value`."""
    result = copy.deepcopy(config)
    node: Any = result.values[f"{config.project}:{path[0]}"]
    *parents, last = path[1:]
    for part in parents:
        node = node[part]
    if isinstance(last, tuple):
        node[value] = node.pop(last[1])
    elif parents or len(path) > 1:
        node[last] = value
    else:
        result.values[f"{config.project}:{path[0]}"] = value
    return result


@functools.cache
def baseline(stack: str) -> dict[str, Any]:
    return run_shape(run_program(STACKS[stack]).raise_error())


# Rules that report a broken reference where the reference is, not where the value changed.
ELSEWHERE = re.compile(r"no host named|no fileServer artifact at|is not in `images`|is also .*port|directory|"
                       r"loopback|is the same as|both name|is configured|would be fetched from the public registry")


def names(problem: str, path: str) -> bool:
    """Whether `problem` is reported at `path`, below it, at the map or list that holds it, or at a
    field beside it that is checked with it (a file and its sha256)."""
    if problem.startswith((f"{path}: ", f"{path}.", f"{path}[")):
        return True
    if "." in path and problem.startswith(path[:path.rindex(".") + 1]) and "[" in path:
        return True
    return any(problem.startswith(f"{path[:cut]}: ") for cut in range(len(path)) if path[cut] in ".[")


def check(stack: str, path: tuple[Any, ...], value: str) -> str:
    """The property for one hostile value at one setting: `refused` or `rendered`."""
    run = run_program(changed(STACKS[stack], path, value))
    key = spelt(path, value)
    if run.error is not None:
        assert isinstance(run.error, SettingsError), f"{key} = {value!r} failed late: {run.error!r}"
        assert run.records == [], f"{key} = {value!r}: resources before the check"
        problems = run.error.problems
        assert problems and all(re.match(r"[A-Za-z]", p) and ": " in p for p in problems), problems
        # refused at its own key, or by a rule that reports where the broken reference is
        assert any(names(p, key) or ELSEWHERE.search(p) for p in problems), f"{key} = {value!r}: {problems}"
        return "refused"
    shape = run_shape(run)
    expected = baseline(stack)
    different = sorted(k for k in set(shape) | set(expected) if shape.get(k) != expected.get(k))
    assert different == [], f"{key} = {value!r} changed the structure of {different}"
    return "rendered"


@pytest.mark.parametrize("stack,path,value", [
    pytest.param("sandbox", ("aptMirror", "repos", 0, "filter"), "Name (~ $(touch pwned)*) | $1 <> !x",
                 id="filter-shell-metacharacters"),
    pytest.param("sandbox", ("aptMirror", "schedule"), "Mon..Fri *-*-* 03:00/2", id="schedule-calendar-syntax"),
    pytest.param("sandbox", ("hosts", "mirror", "hostKey"),
                 RICH_SANDBOX.values["airgap-infra:hosts"]["mirror"]["hostKey"] + " ;}server{", id="host-key-comment"),
    pytest.param("sandbox", ("rpmMirror", "repos", 0, "releasever"), "12+a/b_c", id="releasever-punctuation"),
    pytest.param("prod", ("hosts", "chat", "address"), "10.40.1.30-chat.example", id="address-numeric-labels"),
])
def test_values_that_are_accepted_keep_every_structure(stack, path, value):
    """Hostile-looking values each grammar allows: rendered, and every format keeps its structure."""
    assert check(stack, path, value) == "rendered"


def every_class(text: str) -> str:
    """`text` with a fragment of each hostile class: shell quotes mid-value, then a zone id, an nginx
    block, a TOML table and a deb822 field."""
    half = len(text) // 2
    return text[:half] + "'$(reboot)\"" + text[half:] + "%$(reboot);}server{listen 80;}#\"]\n[x]\nTrusted: yes"


@pytest.mark.parametrize("stack,path,text", TARGETS, ids=[f"{s}:{spelt(p)}" for s, p, _ in TARGETS])
def test_every_string_setting_refuses_or_keeps_structure(stack, path, text):
    # all classes at once; then characters that many grammars allow and some formats read
    for value in (every_class(text), f"{text} $1*|<>", f"{text}%h~:"):
        check(stack, path, value)


def hostile(text: str, fragment: str, at: int, how: str) -> str:
    at = at % (len(text) + 1)
    return {"insert": text[:at] + fragment + text[at:], "append": text + fragment, "prefix": fragment + text,
            "replace": fragment}[how]


# No shrinking: each example runs the whole program, and the fragments are small already.
@settings(max_examples=LIMIT, deadline=None, suppress_health_check=[HealthCheck.too_slow], report_multiple_bugs=False,
          phases=[Phase.explicit, Phase.reuse, Phase.generate], derandomize=FIXED)
@given(target=st.sampled_from(TARGETS),
       fragment=st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(REPLACEMENTS),
                          st.text(st.characters(codec="utf-8"), min_size=1, max_size=6)),
       at=st.integers(min_value=0, max_value=200), how=st.sampled_from(["insert", "append", "prefix", "replace"]))
def test_hostile_strings_are_refused_or_keep_the_structure(target, fragment, at, how):
    stack, path, text = target
    check(stack, path, hostile(text, fragment, at, how))
