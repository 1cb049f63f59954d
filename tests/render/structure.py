"""The structure of everything a program run renders: every step script as bash parses it, every
file it writes (nginx sites, units, sources, .repo files, TOML, YAML, JSON, apt.conf, SHA256SUMS)
and every export, each read by its format's parser (tests/render/parsers.py) with its values
masked. Two runs whose stacks differ only in a value must have equal structures: the value may
change a token, a field or a key, never add one or take one away.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import yaml

from offline.program import ProgramRun, reveal
from tests.render import parsers

STEP = re.compile(r"cat > \"\$step\" <<'(AIRGAP_STEP\w*)'\n(.*?)\n\1\n", re.S)
FILE = re.compile(r"^(airgap_install_file|airgap_httpd_site) ([^\n]*?) <<'(\w+)'\n(.*?)\n\3$", re.S | re.M)
PLAN = re.compile(r"^cat > \"\$work/plan\.json\" <<'(\w+)'\n(.*?)\n\1$", re.S | re.M)


def shape(value: Any, keys: bool = False, lengths: bool = True) -> Any:
    """`value` with every leaf masked; map keys kept only when `keys` (they are field names), lists
    only when `lengths` (in a resource's typed inputs a list is data: the names a certificate holds)."""
    if isinstance(value, dict):
        items = [(key if keys else "k", shape(item, keys, lengths)) for key, item in value.items()]
        return ("map", sorted(items, key=repr))
    if isinstance(value, (list, tuple)):
        return ("list", [shape(item, keys, lengths) for item in value]) if lengths else "list"
    return type(value).__name__


@functools.cache
def _nginx(text: str) -> Any:
    with tempfile.TemporaryDirectory(prefix="airgap-nginx-") as directory:
        parsed = parsers.nginx(text, Path(directory))

    def directives(block: list) -> list:
        return [[d[0], *("a" if isinstance(a, str) else directives(a) for a in d[1:])] for d in block]
    return directives(parsed)


@functools.cache
def _program(text: str) -> Any:
    (commands,) = parsers.bash_commands([text])
    return commands


@functools.cache
def _deb822(text: str) -> Any:
    return [{field: len(value.split()) for field, value in paragraph.items()} for paragraph in parsers.deb822(text)]


@functools.cache
def _repo(text: str) -> Any:
    return [sorted(options) for options in parsers.repo_file(text).values()]


@functools.cache
def _apt_conf(text: str) -> Any:
    return len(parsers.apt_conf(text))


def _unit(text: str) -> Any:
    return [(section, [(key, len(value.split()) if key.startswith("Exec") else "v") for key, value in settings])
            for section, settings in parsers.systemd_unit(text)]


def _sums(text: str) -> Any:
    lines = text.splitlines()
    assert all(re.fullmatch(r"[0-9a-f]{64}  [^\\\n]+", line) for line in lines if line), text
    return len(lines)


def _corefile(text: str) -> Any:
    """Server blocks with their zones and arguments masked, directive names kept."""
    def masked(block: list) -> list:
        return [[d[0], *("a" if isinstance(a, str) else masked(a) for a in d[1:])] for d in block]
    return [["zone", *(masked(part) for part in server[1:])] for server in parsers.corefile(text)]


def _yaml(text: str) -> Any:
    """A YAML file parses to a mapping (PyYAML wrote it: no value can add a key; which keys it holds
    depends on the values, a NetworkPolicy only for an IP address); the Corefile written inside it is
    compared in full."""
    document = yaml.safe_load(text)
    assert isinstance(document, dict), text
    custom = document.get("nodeLocalDns", {}).get("customConfig")
    return "mapping", _corefile(custom) if custom else None


def _nft(text: str) -> Any:
    """An nftables rule set's tables, sets, chains and rules, comments dropped; a set's elements are
    data (destinations the stack lists), so each element block counts as one, whatever it holds."""
    lines, inside = [], False
    for line in text.splitlines():
        line = line.strip()
        if inside:
            inside = not line.startswith("}")
            continue
        if line.startswith("elements = {"):  # an empty set and a full one have the same structure
            inside = not line.endswith("}")
        elif line and not line.startswith("#"):
            lines.append(re.sub(r'comment "[^"]*"', 'comment ""', line))
    return lines


def file_shape(path: str, content: str) -> Any:
    """The structure of a file the step writes, by where it goes."""
    if path.endswith(".nft"):
        return "nft", _nft(content)
    if path.startswith("/etc/airgap/firewall/names"):  # destinations by name: data, one per line
        return "names", "lines"
    if path.startswith("/usr/local/sbin/"):
        return "program", _program(content)
    if path.startswith("/etc/nginx/sites-enabled/"):
        return "nginx", _nginx(content)
    if path.endswith((".service", ".timer")):
        return "unit", _unit(content)
    if path.endswith(".sources"):
        return "deb822", _deb822(content)
    if path.endswith(".repo"):
        return "repo", _repo(content)
    if path.endswith(".toml"):
        return "toml", shape(tomllib.loads(content))
    if path.endswith((".yml", ".yaml")):
        return "yaml", _yaml(content)
    if path.endswith((".json", ".conf")) and content.lstrip().startswith("{"):
        return "json", type(json.loads(content)).__name__
    if path.startswith("/etc/apt/apt.conf.d/"):
        return "apt.conf", _apt_conf(content)
    if path.endswith("SHA256SUMS"):
        return "sha256sums", _sums(content)
    if content.startswith("-----BEGIN "):
        return "pem", re.findall(r"^-----BEGIN ([A-Z0-9 ]+)-----$", content, re.M)
    return "text", content.count("\n")  # other keys and programs: their line count


def script_shape(script: str) -> Any:
    """A step's commands as bash parses them, and the structure of each file it writes."""
    found = STEP.search(script)
    inner = found.group(2) if found else script
    files = []
    for match in FILE.finditer(inner):
        words = shlex.split(match.group(2))
        path = words[0] if match.group(1) == "airgap_install_file" else "/etc/httpd/site.conf"
        files.append(file_shape(path, match.group(4)))
    for match in PLAN.finditer(inner):  # its images are a set, in the order of their names
        plan = json.loads(match.group(2))
        files.append(("fill plan", shape({**plan, "images": None}, keys=True),
                      sorted((shape(image, keys=True) for image in plan["images"]), key=repr)))
    return inner, files


def run_shape(run: ProgramRun) -> dict[str, Any]:
    """Every rendered text of `run` by resource and input, and every export, as structure."""
    scripts: dict[str, str] = {}
    shapes: dict[str, Any] = {}
    for record in sorted(run.records, key=lambda r: r.urn):
        inputs = reveal(record.inputs)
        for key in ("create", "update", "delete"):
            if isinstance(inputs.get(key), str):
                inner, files = script_shape(inputs[key])
                scripts[f"{record.name}.{key}"] = inner
                shapes[f"{record.name}.{key}.files"] = files
        if record.type == "command:local:Command" and isinstance(inputs.get("stdin"), str):
            stdin = inputs["stdin"]
            shapes[f"{record.name}.stdin"] = (_yaml(stdin) if record.name.startswith("ck8s-")
                                              else stdin.count("\n"))
        typed = {k: v for k, v in inputs.items() if k not in ("create", "update", "delete", "stdin")}
        shapes[f"{record.name}.inputs"] = shape(typed, keys=True, lengths=False)
    names = sorted(scripts)
    for name, commands in zip(names, parsers.bash_commands([scripts[n] for n in names]), strict=True):
        shapes[f"{name}.bash"] = commands
    exports = reveal(run.exports)
    for upstream_toml in (exports.get("containerdHostsToml") or {}).values():
        shapes.setdefault("export.hostsToml", []).append(shape(tomllib.loads(upstream_toml)))
    for text in (exports.get("ck8sOverrides") or {}).values():
        shapes.setdefault("export.ck8s", []).append(_yaml(text))
    for text in ((exports.get("aptMirror") or {}).get("sources") or {}).values():
        shapes.setdefault("export.sources", []).append(_deb822(text))
    for text in ((exports.get("rpmMirror") or {}).get("repoFiles") or {}).values():
        shapes.setdefault("export.repoFiles", []).append(_repo(text))
    # export names are structure; the keys inside them name repositories, artifacts, registries
    shapes["exports"] = {name: shape(value) for name, value in exports.items()}
    return shapes
