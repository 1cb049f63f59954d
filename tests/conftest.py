"""Shared test setup."""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

# Import hypothesis before any test starts threads: its pytest plugin otherwise imports it at
# session end, and CPython 3.11.7 can then fail compiling it ("AST constructor recursion depth
# mismatch") after the mock runtime's threads have run.
import hypothesis  # noqa: F401
import pytest

# Test hosts and services use fixed loopback addresses and one sandbox cache per machine, and the
# end-to-end fixtures check that nothing under that cache outlives them: two sessions at once
# would take each other's addresses and see each other's hosts. One session runs at a time.
SESSION_LOCK = Path(tempfile.gettempdir()) / "airgap-infra-test-session.lock"
_LOCK_KEY = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    if config.option.collectonly:
        return
    descriptor = os.open(SESSION_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # Straight to the terminal: pytest's capture is already on.
        os.write(2, f"waiting for the test session that holds {SESSION_LOCK} to end\n".encode())
        fcntl.flock(descriptor, fcntl.LOCK_EX)
    # Held, through this descriptor, until the session's process exits.
    config.stash[_LOCK_KEY] = descriptor

