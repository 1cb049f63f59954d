"""One safe writer (or validator) per format the program writes into.

A value that reaches a file reaches it through the writer of that file's format, which either
writes it as exactly one token, field or table key, or refuses it with `FormatError`: shell
(`render/shell.py`), nginx and Apache directives, systemd units, deb822 and `.repo` files, apt.conf,
TOML, CoreDNS server blocks, SSH options and `known_hosts`, URLs and `host:port`. YAML and JSON are
written by their libraries (`yaml.safe_dump`, `json.dumps`), which quote whatever they are given.
The settings refuse hostile values long before; these writers hold even when they do not.
"""


class FormatError(ValueError):
    """A value that would change the structure of the file it is written into."""
