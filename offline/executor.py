"""Run `pulumi-command` resources for real: remote commands over SSH, copies over SFTP, local
commands in a shell. Used by the mock runtime (program.py) in place of the provider plugin.

It honours what the provider would: the pinned `hostKey` (any other key is refused), the
`proxy` (bastion) hop, `stdin`, and `create` failing the resource on a non-zero exit. Every
command has a time limit. Connections are reused per host and closed by `close()`.
"""

from __future__ import annotations

import base64
import io
import json
import os
import posixpath
import select
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko


class StepFailed(RuntimeError):
    pass


@dataclass
class StepLog:
    name: str
    kind: str
    seconds: float
    exit_status: int
    stdout: str = ""
    stderr: str = ""


def _pkey(pem: str) -> paramiko.PKey:
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(pem))
        except (paramiko.SSHException, ValueError):
            continue
    raise StepFailed("private key is not an Ed25519, ECDSA or RSA key")


class _PinnedKey(paramiko.MissingHostKeyPolicy):
    """Accept exactly the pinned key; paramiko's known-hosts lookups are bypassed on purpose."""

    def __init__(self, pinned: str):
        self.kind, self.blob = pinned.split()[:2]

    def missing_host_key(self, client, hostname, key):
        if key.get_name() != self.kind or key.get_base64() != self.blob:
            raise paramiko.BadHostKeyException(hostname, key, paramiko.PKey.from_type_string(
                self.kind, base64.b64decode(self.blob)))


@dataclass
class Executor:
    local_dir: Path
    """Working directory for local commands (stands in for the project directory)."""
    timeout: float = 1800
    """Longest any one command may run, in seconds."""
    log: list[StepLog] = field(default_factory=list)
    engine_state: dict | None = None
    """When given (and kept across runs), a command whose inputs are those it last ran with does
    not run again and returns its recorded outputs, as `pulumi up` would; without it every
    command runs at every evaluation (which shows re-running each step is harmless)."""
    _clients: dict[tuple, paramiko.SSHClient] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)  # re-entered for a bastion

    # --- connections ------------------------------------------------------------------------
    def _client(self, connection: dict[str, Any]) -> paramiko.SSHClient:
        if not connection.get("hostKey"):
            raise StepFailed(f"{connection['host']}: no pinned hostKey; refusing to connect")
        proxy = connection.get("proxy")
        key = (connection["host"], int(connection.get("port", 22)), connection.get("user", "root"),
               connection["hostKey"], None if not proxy else (proxy["host"], int(proxy.get("port", 22))))
        with self._lock:
            client = self._clients.get(key)
            if client is not None and client.get_transport() and client.get_transport().is_active():
                return client
            sock = None
            if proxy:
                jump = self._client({**proxy, "proxy": None})
                sock = jump.get_transport().open_channel(
                    "direct-tcpip", (connection["host"], int(connection.get("port", 22))), ("127.0.0.1", 0))
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(_PinnedKey(connection["hostKey"]))
            client.connect(
                connection["host"], port=int(connection.get("port", 22)), username=connection.get("user", "root"),
                pkey=_pkey(connection["privateKey"]), sock=sock, look_for_keys=False, allow_agent=False,
                timeout=15, banner_timeout=15, auth_timeout=15,
            )
            self._clients[key] = client
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    # --- commands ---------------------------------------------------------------------------
    def run(self, typ: str, name: str, inputs: dict[str, Any]) -> dict[str, str]:
        key = f"{typ}::{name}"
        fingerprint = json.dumps(inputs, sort_keys=True, default=str)
        if self.engine_state is not None and name != "local-run":
            recorded = self.engine_state.get(key)
            if recorded and recorded[0] == fingerprint:
                return recorded[1]
        outputs = self.run_command(typ, name, inputs, inputs.get("create") or "")
        if self.engine_state is not None:
            self.engine_state[key] = (fingerprint, outputs)
        return outputs

    def run_command(self, typ: str, name: str, inputs: dict[str, Any], command: str) -> dict[str, str]:
        """Run `command` (a resource's create, update or delete) with the resource's connection,
        interpreter and stdin; fail on a non-zero exit."""
        started = time.monotonic()
        stdin = (inputs.get("stdin") or "").encode()
        if typ == "command:local:Command":
            status, out, err = self._run_local(command, stdin, inputs.get("interpreter"))
        else:
            status, out, err = self._run_remote(inputs["connection"], command, stdin)
        self.log.append(StepLog(name, typ.rsplit(":", 1)[-1], time.monotonic() - started, status, out, err))
        if status != 0:
            raise StepFailed(f"{name}: exited with status {status}\n--- stderr (tail) ---\n{err[-1500:]}")
        return {"stdout": out, "stderr": err}

    def read(self, connection: dict[str, Any], command: str) -> str:
        """Run a read-only `command` over `connection` and return its stdout (not a step: not
        logged); fail on a non-zero exit."""
        status, out, err = self._run_remote(connection, command, b"")
        if status != 0:
            raise StepFailed(f"{connection.get('host')}: read-only check exited with status {status}\n{err[-1500:]}")
        return out

    def _run_local(self, command: str, stdin: bytes, interpreter: list[str] | None):
        argv = [*(interpreter or ["/bin/sh", "-c"]), command]
        result = subprocess.run(argv, input=stdin, capture_output=True, cwd=self.local_dir, timeout=self.timeout)
        return result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")

    def _run_remote(self, connection: dict[str, Any], command: str, stdin: bytes):
        channel = self._client(connection).get_transport().open_session(timeout=30)
        try:
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + self.timeout
            while True:
                if time.monotonic() > deadline:
                    raise StepFailed(f"command did not finish within {self.timeout:.0f}s")
                readable, _, _ = select.select([channel], [], [], 1.0)
                while channel.recv_ready():
                    out += channel.recv(65536)
                while channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                    break
            return channel.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
        finally:
            channel.close()

    # --- copies -----------------------------------------------------------------------------
    def copy(self, name: str, inputs: dict[str, Any]) -> None:
        """CopyToRemote: a file or directory; into `remotePath` when that is an existing directory."""
        started = time.monotonic()
        source = inputs["source"]
        local = Path(getattr(source, "path", None) or source)
        sftp = self._client(inputs["connection"]).open_sftp()
        try:
            target = inputs["remotePath"]
            try:
                if stat.S_ISDIR(sftp.stat(target).st_mode):
                    target = posixpath.join(target, local.name)
            except FileNotFoundError:
                pass
            _sftp_makedirs(sftp, posixpath.dirname(target))
            if local.is_dir():
                for root, _dirs, files in os.walk(local):
                    relative = Path(root).relative_to(local)
                    remote_root = posixpath.join(target, *relative.parts) if relative.parts else target
                    _sftp_makedirs(sftp, remote_root)
                    for file in sorted(files):
                        sftp.put(str(Path(root) / file), posixpath.join(remote_root, file))
            else:
                sftp.put(str(local), target)
        finally:
            sftp.close()
        self.log.append(StepLog(name, "CopyToRemote", time.monotonic() - started, 0))


def _sftp_makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    parts = [p for p in path.split("/") if p]
    current = "/"
    for part in parts:
        current = posixpath.join(current, part)
        try:
            sftp.stat(current)
        except FileNotFoundError:
            try:
                sftp.mkdir(current)
            except OSError:
                sftp.stat(current)  # a parallel copy made it first; anything else fails here
