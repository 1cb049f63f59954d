"""One test session per machine: this session holds the lock that a second one waits for."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import SESSION_LOCK


def test_a_second_session_cannot_take_the_lock_while_this_one_runs() -> None:
    # Another process, as a second `pytest` would be: flock's exclusive lock is refused to it.
    probe = ("import fcntl, os, sys\n"
             "fd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
             "except BlockingIOError:\n    sys.exit(3)\n")
    result = subprocess.run([sys.executable, "-c", probe, str(SESSION_LOCK)], timeout=30)
    assert result.returncode == 3, "the session lock is free while tests run"
