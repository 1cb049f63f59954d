"""Real container runtimes trust the private registry through the CA files a node has, and only so.

A registry on 10.231.0.2 (`registry.airgap.test:5443`) inside a network namespace, with dockerd
and containerd in the same namespace. Docker treats 127.0.0.0/8 as insecure, so only an address
like this one shows what the CA files do. The client files are written by hand as a node has
them (`/etc/docker/daemon.json`, `/etc/docker/certs.d/<host:port>/ca.crt`,
`/etc/containerd/certs.d/<upstream>/hosts.toml`); the project's renderers will produce them.
Each pull is shown to pass with the CA and to fail without it, with the source's digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.oci_images import Catalog, generate
from tests.harness.netns import NetNamespace
from tests.harness.runtimes import Containerd, Dockerd, NamespacedRegistry

TOOLS = ("ip", "dockerd", "docker", "containerd", "ctr", "skopeo", "docker-registry")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
MISSING += [f"/etc/{d}" for d in ("docker", "containerd") if not Path("/etc", d).is_dir()]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and dockerd need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"missing: {', '.join(MISSING)}"),
]

UNTRUSTED = "x509: certificate signed by unknown authority"
LABEL = "airgap.test/daemon-json=hand-written"
DAEMON_JSON = {
    # Explicitly empty: the private registry is trusted through certs.d, never made insecure.
    "insecure-registries": [],
    "labels": [LABEL],
    "max-concurrent-downloads": 3,
}
CONTAINERD_CONFIG = """\
version = 2
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
"""
# What the daemons would write on the machine if they escaped their own roots.
MACHINE_PATHS = ("/run/docker", "/run/containerd", "/opt/containerd", "/var/lib/docker",
                 "/var/lib/containerd", "/etc/docker", "/etc/containerd", "/run/netns", "/etc/netns")


@dataclass(frozen=True)
class Env:
    ns: NetNamespace
    catalog: Catalog
    registry: NamespacedRegistry
    dockerd: Dockerd
    containerd: Containerd


def machine_state() -> dict[str, str]:
    """Each path's files and their hashes (or 'absent'), and the mount points below them."""
    state = {}
    for top in MACHINE_PATHS:
        root = Path(top)
        if not root.exists():
            state[top] = "absent"
            continue
        for path in sorted([root, *root.rglob("*")]):
            state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4]
            if point.startswith(MACHINE_PATHS):
                state[f"mount {point}"] = "mounted"
    return state


@pytest.fixture(scope="module")
def env(work: Path) -> Iterator[Env]:
    before = machine_state()
    catalog = generate(work / "layout", "test")
    with NetNamespace("runtimes") as ns:
        with contextlib.ExitStack() as services:  # closed (newest first) before the namespace is
            registry = services.enter_context(NamespacedRegistry(ns, catalog))
            dockerd = services.enter_context(contextlib.closing(Dockerd(ns)))
            dockerd.start(json.dumps(DAEMON_JSON, indent=2) + "\n")
            containerd = services.enter_context(contextlib.closing(Containerd(ns)))
            containerd.start(CONTAINERD_CONFIG)
            ns.pids()  # remember every process inside (dockerd's containerd too) for leftovers()
            yield Env(ns, catalog, registry, dockerd, containerd)
    state_dirs = [str(service.state_dir) for service in (registry, dockerd, containerd)]
    assert ns.leftovers() == []
    assert [d for d in state_dirs if Path(d).exists()] == []
    with open("/proc/self/mountinfo") as mountinfo:
        assert [line for line in mountinfo if any(d in line for d in state_dirs)] == []
    assert machine_state() == before


@contextlib.contextmanager
def docker_trusts(dockerd: Dockerd, registry: NamespacedRegistry) -> Iterator[None]:
    """/etc/docker/certs.d/<host:port>/ca.crt for the registry, removed afterwards."""
    directory = dockerd.certs_dir / registry.endpoint
    directory.mkdir(parents=True)
    (directory / "ca.crt").write_text(registry.ca_pem)
    try:
        yield
    finally:
        shutil.rmtree(directory)


def write_hosts_toml(env: Env, hosts_dir: Path, upstream: str, *, ca: str | None) -> None:
    """`<hosts_dir>/<upstream>/hosts.toml` pointing `upstream` at the private registry's prefix."""
    ca_line = f'  ca = "{ca}"\n' if ca else ""
    directory = hosts_dir / upstream
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.toml").write_text(
        f'server = "https://{upstream if upstream != "docker.io" else "registry-1.docker.io"}"\n'
        f'\n[host."{env.registry.mirror_url(upstream)}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
        f"{ca_line}"
        "  override_path = true\n")


@pytest.fixture
def hosts_dir(env: Env) -> Iterator[Path]:
    """The node's layout, /etc/containerd/certs.d, with the CA next to the hosts files."""
    hosts_dir = env.containerd.hosts_dir
    ca_file = hosts_dir / env.registry.endpoint / "ca.crt"
    ca_file.parent.mkdir(parents=True)
    ca_file.write_text(env.registry.ca_pem)
    for upstream in ("docker.io", "registry.k8s.io"):
        write_hosts_toml(env, hosts_dir, upstream, ca=env.ns.inside(ca_file))
    yield hosts_dir
    for entry in hosts_dir.iterdir():
        shutil.rmtree(entry)


# --- Docker ----------------------------------------------------------------------------------


def test_dockerd_reads_the_hand_written_daemon_json_and_trusts_no_registry_blindly(env: Env):
    info = env.dockerd.info()
    assert LABEL in info["Labels"]
    # Only Docker's default: the namespace's address is not in it, so TLS is verified.
    assert info["RegistryConfig"]["InsecureRegistryCIDRs"] == ["127.0.0.0/8"]
    assert env.registry.endpoint not in (info["RegistryConfig"]["IndexConfigs"] or {})


def test_docker_pull_passes_with_the_ca_in_certs_d_and_fails_without_it(env: Env):
    ref = "docker.io/library/alpine:3.19"
    served = env.registry.served_ref(ref)

    refused = env.dockerd.pull(served)
    assert refused.returncode != 0
    assert UNTRUSTED in refused.stderr

    with docker_trusts(env.dockerd, env.registry):
        pulled = env.dockerd.pull(served)
        assert pulled.returncode == 0, pulled.stderr
        assert env.dockerd.image_digest(served) == env.catalog.image(ref).digest

    # Same daemon, same image already local: the tag is resolved remotely, and without ca.crt
    # the registry is not trusted any more.
    env.dockerd.remove_image(served)
    refused_again = env.dockerd.pull(served)
    assert refused_again.returncode != 0
    assert UNTRUSTED in refused_again.stderr
    assert env.dockerd.image_digest(served) is None


def test_docker_pulls_every_image_with_the_source_digest(env: Env):
    with docker_trusts(env.dockerd, env.registry):
        for ref, digest in env.registry.digests.items():
            served = env.registry.served_ref(ref)
            result = env.dockerd.pull(served)
            assert result.returncode == 0, result.stderr
            assert env.dockerd.image_digest(served) == digest


# --- containerd ------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", ["docker.io/library/alpine:3.19", "registry.k8s.io/pause:3.9"])
def test_ctr_pulls_the_upstream_name_through_hosts_toml(env: Env, hosts_dir: Path, ref: str):
    env.containerd.remove_image(ref)
    result = env.containerd.pull(ref, hosts_dir)
    assert result.returncode == 0, result.stderr
    assert env.containerd.image_digest(ref) == env.catalog.image(ref).digest
    # The image is known by its upstream name: the mirror is invisible to what runs it.
    assert env.registry.endpoint not in env.containerd.ctr("images", "ls", "-q").stdout


def test_ctr_pull_fails_without_the_ca_line(env: Env, hosts_dir: Path):
    ref = "docker.io/library/alpine:3.19"
    write_hosts_toml(env, hosts_dir, "docker.io", ca=None)
    env.containerd.remove_image(ref)
    result = env.containerd.pull(ref, hosts_dir)
    assert result.returncode != 0
    # ctr then tries `server` (registry-1.docker.io), which the namespace cannot even resolve,
    # and reports the first host's error.
    reported = result.stderr.strip().splitlines()[-1]
    assert reported.startswith(f'ctr: failed to resolve reference "{ref}"')
    assert UNTRUSTED in reported
    assert env.registry.mirror_url("docker.io") in reported
    assert env.containerd.image_digest(ref) is None


def test_ctr_pull_fails_when_the_ca_file_is_gone(env: Env, hosts_dir: Path):
    ref = "registry.k8s.io/pause:3.9"
    ca_file = hosts_dir / env.registry.endpoint / "ca.crt"
    ca_file.unlink()
    env.containerd.remove_image(ref)
    result = env.containerd.pull(ref, hosts_dir)
    assert result.returncode != 0
    assert env.ns.inside(ca_file) in result.stderr
    assert env.containerd.image_digest(ref) is None
