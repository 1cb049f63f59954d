"""The processes fixtures start and stop: named by PID and start time, every wait bounded.

`ManagedProcess` is the base of every long-running service the harness runs (the upstream
registry and package server, the private registry, dockerd and containerd in a network
namespace, a sandbox host's namespace). It starts one command with its output appended to a
log file, waits until the service answers (a predicate polled against a deadline, failing at
once if the command exits), and stops it by PID: TERM, a bounded wait, KILL, a bounded wait,
then the same for each child it leaves running. `close()` also removes what the service keeps
on disk; it is safe to call again, and leaving a `with` block calls it.

    class StaticFiles(ManagedProcess):
        def _start(self) -> None:
            self._launch([sys.executable, "-m", "http.server", "--bind", "127.0.0.9", "8000"],
                         output=Path("http.log"), env={"PATH": "/usr/bin:/bin"})
            self._wait_ready(lambda: http_status("127.0.0.9", 8000, "/") == 200, timeout=5)

    with StaticFiles() as files:
        ...

A process is named by its PID *and* its start time (`Pid`), so a PID the kernel has given to
another process since is never signalled.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

POLL_S = 0.05
STOP_GRACE_S = 10.0
KILL_WAIT_S = 5.0


class ProcessError(RuntimeError):
    """A managed process did not start, answer or stop in time."""


def polls(seconds: float) -> Iterator[None]:
    """Rounds of a wait, bounded in count and in time, with a short sleep between them."""
    deadline = time.monotonic() + seconds
    for _ in range(max(1, round(seconds / POLL_S))):
        yield
        if time.monotonic() > deadline:
            return
        time.sleep(POLL_S)


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from the state field on (the command name may hold spaces); None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """The direct children of `pid` (of any of its threads), read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


@dataclass(frozen=True)
class Pid:
    """A process by PID and start time (clock ticks after boot), so a reused PID is never signalled."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> Pid | None:
        """The process that has `pid` now, or None if none has."""
        fields = _stat(pid)
        return None if fields is None else cls(pid, int(fields[19]))

    def alive(self) -> bool:
        """Running (a zombie has exited: its PID stays taken until it is reaped, so it is still this one)."""
        fields = _stat(self.pid)
        return fields is not None and int(fields[19]) == self.start and fields[0] != "Z"

    def handles(self, sig: int) -> bool:
        """Whether the process has a handler for `sig` (SigCgt in /proc/PID/status)."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
        return False

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait_gone(self, seconds: float) -> bool:
        """Whether the process has ended within `seconds`."""
        for _ in polls(seconds):
            if not self.alive():
                return True
        return not self.alive()

    def stop(self, *, grace: float = STOP_GRACE_S, term_sent: bool = False) -> None:
        """TERM (unless it was sent already), a bounded wait, KILL, a bounded wait."""
        if not term_sent:
            self.signal(signal.SIGTERM)
        if self.wait_gone(grace):
            return
        self.signal(signal.SIGKILL)
        if not self.wait_gone(KILL_WAIT_S):
            raise ProcessError(f"pid {self.pid} still alive {KILL_WAIT_S:.0f} s after SIGKILL")


def port_is_free(address: str, port: int) -> bool:
    """True if nothing listens on address:port (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As Go's listeners do: without it, TIME_WAIT from the last run looks like a listener.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def http_status(address: str, port: int, path: str, *, context: ssl.SSLContext | None = None) -> int | None:
    """The status a GET of `path` answers with (over TLS verified by `context` if given), or None
    while nothing answers within a second."""
    connection = (http.client.HTTPSConnection(address, port, context=context, timeout=1) if context
                  else http.client.HTTPConnection(address, port, timeout=1))
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


class ManagedProcess:
    """A service run as one command: started with its log, awaited until it answers, stopped by PID.

    A subclass starts its command in `_start` (writing what the command reads, then `_launch`
    and `_wait_ready`) and names itself for messages with `__str__`. Its files live in a state
    directory (`_use_state_dir`) that `close` removes if it was made here. `start` refuses a
    second start while running and stops what it started when it fails; `stop` keeps the state,
    so a stopped service can start again.
    """

    stop_grace = STOP_GRACE_S
    """How long TERM may take before KILL."""

    def __init__(self) -> None:
        self._command: Pid | None = None  # the command started, or one adopted from a record
        self._process: subprocess.Popen | None = None  # its Popen, when this process started it
        self._output: Path | None = None
        self._children: list[Pid] = []
        self._terminated = False
        self._state_to_remove: Path | None = None

    def _use_state_dir(self, state_dir: Path | None, prefix: str, remove_on_close: bool | None = None) -> Path:
        """`state_dir` (made if missing), or a new temporary directory named `prefix…`; `close`
        removes it if `remove_on_close` (default: only if it was made here)."""
        directory = state_dir or Path(tempfile.mkdtemp(prefix=prefix))
        directory.mkdir(parents=True, exist_ok=True)
        if remove_on_close is None:
            remove_on_close = state_dir is None
        if remove_on_close:
            self._state_to_remove = directory
        return directory

    def __str__(self) -> str:
        return type(self).__name__

    @property
    def pid(self) -> int | None:
        return self._command.pid if self._command else None

    # -- starting --------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._command is not None:
            raise ProcessError(f"{self} already running (pid {self.pid})")
        try:
            self._start()
        except BaseException:
            # The first error is the one worth reading; a failed stop shows in the caller's checks.
            with contextlib.suppress(ProcessError):
                self.stop()
            raise
        return self

    def _start(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not say how it starts")

    def _launch(self, argv: list[str], *, output: Path, env: dict[str, str],
                spawn: Callable[..., subprocess.Popen] = subprocess.Popen, **options: Any) -> None:
        """Start `argv` (through `spawn`, e.g. into a namespace), stdin closed, output appended to `output`.

        `env` is the whole environment: services read settings from theirs (REGISTRY_* overrides
        a registry's config file), so none inherits the test run's.
        """
        self._output = output
        with output.open("ab") as log:
            self._process = spawn(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                **options)
        # Not reaped yet, so /proc still has it even if it has exited already.
        command = Pid.of(self._process.pid)
        if command is None:
            raise ProcessError(f"{self}: pid {self._process.pid} is not in /proc")
        self._command = command
        self._terminated = False

    def _wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready()` until it is true; fail at once if the command exits, and after `timeout` in any case."""
        for _ in polls(timeout):
            if self._process is not None and self._process.poll() is not None:
                raise ProcessError(f"{self} exited with {self._process.returncode}\n{self.log_tail()}")
            if ready():
                return
        raise ProcessError(f"{self} not ready after {timeout:.0f} s\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the command's output, for error messages."""
        if self._output is None:
            return "(not started)"
        try:
            return "\n".join(self._output.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return f"({self._output}: no output)"

    # -- stopping --------------------------------------------------------------------------------

    def _signal_target(self) -> Pid | None:
        """Where TERM and KILL go: the command itself, unless a subclass names another process."""
        return self._command

    def terminate(self) -> None:
        """Send TERM once and return: services stopped together then stop in parallel (`stop` waits)."""
        target = self._signal_target()
        if self._command is None or target is None or self._terminated:
            return
        # Noted before TERM: once the command has exited, its children belong to someone else.
        self._children = [child for child in map(Pid.of, children(self._command.pid)) if child]
        target.signal(signal.SIGTERM)
        self._terminated = True

    def stop(self) -> None:
        """TERM, a bounded wait, KILL, a bounded wait; then the same for each child left running."""
        command = self._command
        if command is None:
            return
        self.terminate()
        target = self._signal_target() or command
        try:
            target.stop(grace=self.stop_grace, term_sent=True)
            # The command, when the signals went to another process: it ends with that one.
            if target != command and not command.wait_gone(KILL_WAIT_S):
                command.stop()
            for child in self._children:
                child.stop()
        except ProcessError as error:
            raise ProcessError(f"{self}: {error}") from None
        if self._process is not None:
            self._process.wait(KILL_WAIT_S)  # gone or a zombie by now: this reaps it
        self._command, self._process, self._children, self._terminated = None, None, [], False

    def close(self) -> None:
        """Stop, then remove what the service keeps on disk; safe to call again."""
        self.stop()
        self._remove_state()

    def _remove_state(self) -> None:
        """The state directory, if `_use_state_dir` made it (or was told to remove it)."""
        if self._state_to_remove is not None:
            shutil.rmtree(self._state_to_remove, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:  # __exit__ will not run: clean up here
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()
