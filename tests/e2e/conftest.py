"""What the end-to-end modules share: a work directory, the module's sandbox hosts, and the upstream
fixtures on 127.0.0.2 (the signed package repositories on :8080, the public registries on :5000).

Every fixture here is module-scoped: a module's hosts and services start once, serve all of its
tests, and stop at its end, leaving no mount or process behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.hosts import Sandbox, leftovers
from sandbox.upstream import UpstreamRegistry, start_upstream
from sandbox.upstream_repos import UpstreamRepos

UPSTREAM_ADDRESS = "127.0.0.2"
UPSTREAM_REPOS_PORT = 8080
UPSTREAM_REGISTRY_PORT = 5000


@pytest.fixture(scope="module")
def work(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of the module's own: the executor's local files, bundles, client files."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """The module's sandbox hosts (`sandbox.up(...)`), all stopped at its end."""
    if os.geteuid() != 0:
        pytest.skip("sandbox hosts need root (namespaces, mounts)")
    with Sandbox() as hosts:
        yield hosts
    assert leftovers() == []


@pytest.fixture(scope="module")
def upstream_repos() -> Iterator[UpstreamRepos]:
    """The signed Debian archive and RPM repository, revision 0, on 127.0.0.2:8080."""
    with UpstreamRepos(revision=0, address=UPSTREAM_ADDRESS, port=UPSTREAM_REPOS_PORT) as repos:
        yield repos


@pytest.fixture(scope="module")
def upstream_registry() -> Iterator[UpstreamRegistry]:
    """The public registries' images (test scale) on 127.0.0.2:5000, over TLS from a CA of its own."""
    with contextlib.closing(start_upstream("test", address=UPSTREAM_ADDRESS, port=UPSTREAM_REGISTRY_PORT)) as upstream:
        yield upstream
