"""Each format the program writes, read back by its own tool (or a parser that reads it as the
tool does) into plain data, so tests can ask: is the value one token, one field, one table key?

- nginx: `nginx -t` on the text, then a tokenizer with nginx's rules (quotes, `;`, braces, `#`);
- systemd units: sections of `Key=value` lines as systemd reads them (a line per setting);
- deb822: apt's own parser (`apt_pkg.TagSection`, from the system's python3-apt);
- `.repo`: dnf's own parser (`libdnf.conf.ConfigParser`, from the system's python3-libdnf);
- apt.conf: apt's own parser (`apt_pkg.read_config_file`);
- TOML, YAML, JSON: tomllib, PyYAML, json;
- Corefile: a tokenizer with CoreDNS's rules (blanks, braces, quotes, `#`);
- shell: bash itself (`declare -f` prints the commands of a function as bash parsed them).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

SYSTEM_PYTHON = "/usr/bin/python3"  # holds python3-apt and python3-libdnf; the venv does not


def _system_python(program: str, text: str) -> Any:
    result = subprocess.run([SYSTEM_PYTHON, "-c", textwrap.dedent(program)], input=text, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def deb822(text: str) -> list[dict[str, str]]:
    """Paragraphs as apt reads them."""
    return _system_python("""
        import apt_pkg, json, sys, tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".sources") as f:
            f.write(sys.stdin.read()); f.flush()
            with apt_pkg.TagFile(f.name) as tags:
                print(json.dumps([{key: section[key] for key in section.keys()} for section in tags]))
        """, text)


def repo_file(text: str) -> dict[str, dict[str, str]]:
    """Sections and their options as dnf reads a .repo file."""
    return _system_python("""
        import json, sys, tempfile, libdnf
        with tempfile.NamedTemporaryFile("w", suffix=".repo") as f:
            f.write(sys.stdin.read()); f.flush()
            parser = libdnf.conf.ConfigParser()
            parser.read(f.name)
            data = parser.getData()
            print(json.dumps({name: {option: data[name][option] for option in data[name]} for name in data}))
        """, text)


def apt_conf(text: str) -> dict[str, str]:
    """Every option apt reads from an apt.conf fragment, by its full name."""
    return _system_python("""
        import apt_pkg, json, sys, tempfile
        apt_pkg.init_config()
        with tempfile.NamedTemporaryFile("w") as f:
            f.write(sys.stdin.read()); f.flush()
            config = apt_pkg.Configuration()
            apt_pkg.read_config_file(config, f.name)
        print(json.dumps({key: config.find(key) for key in config.keys() if config.find(key)}))
        """, text)


def _tokens(text: str) -> list[str]:
    """Words, quoted strings, `;`, `{` and `}` (nginx and Corefile tokenisation)."""
    tokens, word, i = [], "", 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            end = text.index(c, i + 1)
            tokens.append(text[i + 1:end])
            i = end + 1
            continue
        if c == "#" and not word:
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        if c.isspace() or c in ";{}":
            if word:
                tokens.append(word)
                word = ""
            if c in ";{}":
                tokens.append(c)
        else:
            word += c
        i += 1
    if word:
        tokens.append(word)
    return tokens


def _blocks(tokens: list[str]) -> list[Any]:
    """[[name, args…, [block…]] …] from tokens."""
    out: list[Any] = []
    stack = [out]
    current: list[Any] = []
    for token in tokens:
        if token == ";":
            stack[-1].append(current)
            current = []
        elif token == "{":
            block: list[Any] = []
            current.append(block)
            stack[-1].append(current)
            stack.append(block)
            current = []
        elif token == "}":
            if current:
                stack[-1].append(current)
                current = []
            stack.pop()
        else:
            current.append(token)
    assert len(stack) == 1, "unbalanced braces"
    if current:
        out.append(current)
    return out


def nginx(text: str, tmp_path: Path | None = None) -> list[Any]:
    """The directives of an nginx fragment (`nginx -t` checks it first when given a directory)."""
    if tmp_path is not None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        # checked without its certificate, and listening on a socket of its own (nginx -t binds)
        checked = re.sub(r"ssl_certificate(_key)? [^;]*;", "", text).replace(" ssl;", ";")
        checked = re.sub(r"listen [^;]*;", f"listen unix:{tmp_path}/listen.sock;", checked)
        checked = re.sub(r"(access|error)_log /var/log/nginx/", rf"\1_log {tmp_path}/", checked)
        (tmp_path / "site.conf").write_text(checked)
        (tmp_path / "nginx.conf").write_text(
            f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
            f"http {{ access_log off; include {tmp_path}/site.conf; }}\n")
        result = subprocess.run(["nginx", "-t", "-q", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    return _blocks(_tokens(text))


def corefile(text: str) -> list[Any]:
    """Server blocks of a Corefile: a directive per line, blocks in braces."""
    lines = []
    for line in text.splitlines():
        words = _tokens(line)
        if words and words[-1] not in "{}":
            words.append(";")
        lines.extend(words)
    return _blocks(lines)


def systemd_unit(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section, [(key, value) …]) …], a setting per line, as systemd reads a unit."""
    assert not re.search(r"\\\n", text), "a continued line"
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            sections.append((line.strip("[]"), []))
        else:
            key, _, value = line.partition("=")
            sections[-1][1].append((key.strip(), value.strip()))
    return sections


def bash_commands(scripts: list[str]) -> list[list[str]]:
    """For each script, its commands as bash parsed them: the first word of each line bash prints
    for the script made a function body (`declare -f`), heredoc bodies left out."""
    definitions = "".join(f"__airgap_probe_{n} () {{\n{script}\n}}\n" for n, script in enumerate(scripts))
    names = " ".join(f"__airgap_probe_{n}" for n in range(len(scripts)))
    result = subprocess.run(["bash", "-s"], input=f"{definitions}\ndeclare -f {names}\n", capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    shapes: list[list[str]] = []
    heredoc: str | None = None
    for line in result.stdout.splitlines():
        if heredoc is not None:
            if line == heredoc:
                heredoc = None
            continue
        if line.startswith("__airgap_probe_"):
            shapes.append([])
            continue
        words = line.split()
        if words:  # a command's name, or the name an assignment sets (its value is data)
            assigned = re.match(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^]]*\])?\+?=", words[0])
            shapes[-1].append(assigned.group(0) if assigned else words[0])
        found = re.search(r"<<-?\s*'?([A-Za-z_][A-Za-z0-9_]*)'?\s*$", line)
        if found:
            heredoc = found.group(1)
    return shapes
