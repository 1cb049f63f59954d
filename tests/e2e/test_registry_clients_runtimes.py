"""The registry client configuration the project renders, run on a node and used by real
container runtimes: dockerd pulls over TLS trusting only the rendered `certs.d`, and containerd
(`ctr --hosts-dir`) resolves `docker.io/…` and `registry.k8s.io/…` through the rendered
`hosts.toml` to the private registry, with the source digests. Each pull fails once the
rendered CA is removed.

The registry is reached on 10.231.0.2 inside a network namespace, with both runtimes in the same
namespace: Docker treats 127.0.0.0/8 registries as insecure, so loopback would prove nothing.
The rendered step runs inside the namespace, where /etc/docker and /etc/containerd are the
namespace's own (tests/harness/netns.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.images import registry_prefix
from components.render import registry_clients
from components.render.shell import step_script
from sandbox.oci_images import Catalog, generate
from tests.harness.netns import NetNamespace
from tests.harness.runtimes import Containerd, Dockerd, NamespacedRegistry

TOOLS = ("ip", "dockerd", "docker", "containerd", "ctr", "skopeo", "docker-registry", "python3")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
MISSING += [f"/etc/{d}" for d in ("docker", "containerd") if not Path("/etc", d).is_dir()]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces and dockerd need root"),
    pytest.mark.skipif(bool(MISSING), reason=f"missing: {', '.join(MISSING)}"),
]

UNTRUSTED = "x509: certificate signed by unknown authority"
USER_DAEMON_JSON = {"labels": ["owner=ops"], "max-concurrent-downloads": 3}


@dataclass(frozen=True)
class Env:
    ns: NetNamespace
    catalog: Catalog
    registry: NamespacedRegistry
    dockerd: Dockerd
    containerd: Containerd


@pytest.fixture(scope="module")
def env(work: Path) -> Iterator[Env]:
    """The registry, then the rendered client step run on the node, then both runtimes started."""
    catalog = generate(work / "layout", "test")
    with NetNamespace("clients") as ns:
        with contextlib.ExitStack() as services:  # closed (newest first) before the namespace is
            registry = services.enter_context(NamespacedRegistry(ns, catalog))
            dockerd = services.enter_context(contextlib.closing(Dockerd(ns)))
            containerd = services.enter_context(contextlib.closing(Containerd(ns)))
            # the node as it was: a daemon.json of its own, containerd's stock configuration
            dockerd.etc_dir.mkdir(parents=True, exist_ok=True)
            dockerd.config_file.write_text(json.dumps(USER_DAEMON_JSON))
            containerd.etc_dir.mkdir(parents=True, exist_ok=True)
            containerd.config_file.write_text(containerd.default_config())
            body = "\n".join([
                registry_clients.docker_lines(registry.endpoint, registry.ca_pem, insecure=False),
                registry_clients.containerd_lines(registry.endpoint, registry.ca_pem, ("docker.io", "registry.k8s.io"),
                                                  prefix_of=registry_prefix),
            ])
            for _ in range(2):  # rendered step, run twice: the second run changes nothing
                result = ns.run(["sh", "-c", step_script(body)], capture_output=True, text=True)
                assert result.returncode == 0, result.stderr
            dockerd.start(dockerd.config_file.read_text())
            containerd.start(containerd.config_file.read_text())
            ns.pids()  # remember every process inside (dockerd's containerd too) for leftovers()
            yield Env(ns, catalog, registry, dockerd, containerd)
    assert ns.leftovers() == []


def test_daemon_json_is_merged_and_the_registry_is_not_insecure(env: Env) -> None:
    dockerd = env.dockerd
    merged = json.loads(dockerd.config_file.read_text())
    assert merged == USER_DAEMON_JSON, "the node's own settings are kept; nothing insecure added"
    info = dockerd.info()
    assert "owner=ops" in info["Labels"]
    assert info["RegistryConfig"]["InsecureRegistryCIDRs"] == ["127.0.0.0/8"]


def test_docker_pulls_through_the_rendered_certs_d_and_not_without_it(env: Env) -> None:
    dockerd, registry, catalog = env.dockerd, env.registry, env.catalog
    ref = "docker.io/library/alpine:3.19"
    served = registry.served_ref(ref)
    pulled = dockerd.pull(served)
    assert pulled.returncode == 0, pulled.stderr
    assert dockerd.image_digest(served) == catalog.image(ref).digest
    ca = dockerd.certs_dir / registry.endpoint / "ca.crt"
    saved = ca.read_text()
    ca.unlink()
    try:
        dockerd.remove_image(served)
        refused = dockerd.pull(served)
        assert refused.returncode != 0 and UNTRUSTED in refused.stderr
    finally:
        ca.write_text(saved)


@pytest.mark.parametrize("ref", ["docker.io/library/alpine:3.19", "registry.k8s.io/pause:3.9"])
def test_containerd_resolves_public_names_through_the_private_registry(env: Env, ref: str) -> None:
    containerd, catalog = env.containerd, env.catalog
    pulled = containerd.pull(ref)
    assert pulled.returncode == 0, pulled.stderr
    assert containerd.image_digest(ref) == catalog.image(ref).digest
    containerd.remove_image(ref)


def test_containerd_refuses_without_the_rendered_ca(env: Env) -> None:
    containerd, registry = env.containerd, env.registry
    ca = containerd.hosts_dir / registry.endpoint / "ca.crt"
    saved = ca.read_text()
    ca.unlink()
    try:
        refused = containerd.pull("docker.io/library/alpine:3.19")
        assert refused.returncode != 0
    finally:
        ca.write_text(saved)


def test_containerd_loaded_the_rendered_drop_in(env: Env) -> None:
    containerd = env.containerd
    config = containerd.config_file.read_text()
    assert config.startswith('imports = ["/etc/containerd/conf.d/*.toml"]')
    dumped = env.ns.run(["containerd", "--config", "/etc/containerd/config.toml", "config", "dump"],
                           capture_output=True, text=True)
    # containerd read the drop-in (its CRI plugin, which would use config_path, is off here;
    # tests/render checks config_path with CRI on)
    assert "/etc/containerd/conf.d/airgap-registry.toml" in dumped.stdout, dumped.stderr
