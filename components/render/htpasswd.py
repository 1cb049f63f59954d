"""htpasswd files with bcrypt hashes, rendered deterministically.

A random salt would give a different file at every `pulumi up` and re-run the step each time.
The salt is instead derived from a per-stack seed, the user and the password, so an unchanged
password renders the same line and a changed one a new line with a new salt.
"""

from __future__ import annotations

import base64
import hashlib

import bcrypt

# Docker Distribution checks the bcrypt hash on *every* request (no sessions, no cache): at cost
# 10 a fill of a few dozen images spends most of its time hashing (measured 34 s against 7 s at
# cost 5 for the same copy). 5 is the cost `htpasswd -B` uses by default.
BCRYPT_COST = 5
_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _salt(seed: str, user: str, password: str) -> bytes:
    raw = hashlib.sha256(f"{seed}\0{user}\0{password}".encode()).digest()[:16]
    encoded = base64.b64encode(raw).decode()[:22].translate(str.maketrans(_STD, _BCRYPT))
    return f"$2y${BCRYPT_COST:02d}${encoded}".encode()


def htpasswd_line(user: str, password: str, *, seed: str) -> str:
    if ":" in user or "\n" in user:
        raise ValueError(f"htpasswd user {user!r} may not contain ':' or a newline")
    hashed = bcrypt.hashpw(password.encode(), _salt(seed, user, password)).decode()
    return f"{user}:{hashed}"


def htpasswd_file(users: list[tuple[str, str]], *, seed: str) -> str:
    """Lines sorted by user, so the order in the stack does not matter."""
    return "".join(htpasswd_line(user, password, seed=seed) + "\n" for user, password in sorted(users))


def curl_user_config(user: str, password: str) -> str:
    """A curl config file (`curl -K`) carrying basic-auth credentials, escaped for its syntax."""
    escaped = (
        f"{user}:{password}".replace("\\", "\\\\").replace('"', '\\"')
        .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    )
    return f'user = "{escaped}"\n'
