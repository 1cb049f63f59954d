"""Container runtimes on client nodes: trust the private registry through its CA, and (for
containerd) resolve public registry names through it.

- Docker: `/etc/docker/certs.d/<registry>/ca.crt`; `daemon.json` merged with python3 (keys
  the stack does not own are kept); `insecure-registries` holds the registry only when the stack
  allows it. Docker reloads (SIGHUP) only when daemon.json changed.
- containerd: `/etc/containerd/certs.d/<upstream>/hosts.toml` for each public registry, each
  sending pulls to `https://<private>/v2/<upstream>` (`override_path`: the private registry keeps
  the source registry as a path prefix); its `server` is the private registry too, so a failed
  pull never falls back to the internet. `config_path` comes from a drop-in imported by
  config.toml; containerd restarts only when that changed.

Every run converges the node: a runtime the stack no longer lists for it loses what was written
for it (daemon.json keeps the keys the stack does not own; a config.toml that only held our
import goes), and when the registry moves to another endpoint, what the old one left goes.
"""

from __future__ import annotations

import json

from . import programs
from .formats import FormatError, toml
from .formats.hosts import parse_host
from .shell import put_file, q

DOCKER_CERTS = "/etc/docker/certs.d"
CONTAINERD_CERTS = "/etc/containerd/certs.d"
CONTAINERD_DROPIN_DIR = "/etc/containerd/conf.d"
CONTAINERD_DROPIN = f"{CONTAINERD_DROPIN_DIR}/airgap-registry.toml"
CONTAINERD_CONFIG = "/etc/containerd/config.toml"


def registry_dir(registry: str) -> str:
    """`registry` (host or host:port) as the name of its directory under certs.d; FormatError for
    anything else (a path, '..', blanks)."""
    host, _, port = registry.rpartition(":") if registry.count(":") == 1 else (registry, "", "")
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise FormatError(f"{registry!r} is not a registry host[:port]")
    parse_host(host)
    return registry


def hosts_toml(upstream: str, endpoint: str, ca_path: str, path_prefix: str) -> str:
    """containerd's hosts.toml for one public registry namespace (serialised by formats/toml.py:
    the endpoint stays one string, the mirror one table key)."""
    mirror = f"https://{endpoint}/v2/{path_prefix}"
    return toml.dumps({
        "server": f"https://{endpoint}",
        "host": {mirror: {"capabilities": ["pull", "resolve"], "ca": ca_path, "override_path": True}},
    }, comment=f"{registry_dir(upstream)} is pulled from the private registry only (airgap-infra).")


def containerd_dropin() -> str:
    return toml.dumps({"version": 2, "plugins": {"io.containerd.grpc.v1.cri": {"registry": {
        "config_path": CONTAINERD_CERTS}}}})


DOCKER = programs.load("registry_clients/docker.sh")
CONTAINERD = programs.load("registry_clients/containerd.sh")
ENDPOINT = programs.load("registry_clients/endpoint.sh")
DAEMON_JSON = "/etc/docker/daemon.json"
ENDPOINT_RECORD = "/var/lib/airgap/registry-clients/endpoint"
"""The endpoint a node was last pointed at: when the registry moves, what the old one left goes."""


def _docker_calls(endpoint: str, ca_pem: str, *, insecure: bool, daemon_json: str) -> str:
    return "\n".join([
        put_file(f"{DOCKER_CERTS}/{endpoint}/ca.crt", ca_pem, tag="docker-ca"),
        f"airgap_docker_daemon_json {q(daemon_json)} {q(endpoint)} {'yes' if insecure else 'no'}",
    ])


def docker_lines(endpoint: str, ca_pem: str, *, insecure: bool, daemon_json: str = DAEMON_JSON) -> str:
    """Docker trusts the registry's CA; daemon.json merged (programs/registry_clients/docker.sh)."""
    return DOCKER + "\n" + _docker_calls(endpoint, ca_pem, insecure=insecure, daemon_json=daemon_json)


def _containerd_calls(endpoint: str, ca_pem: str, upstreams: tuple[str, ...], *, prefix_of) -> str:
    ca_path = f"{CONTAINERD_CERTS}/{endpoint}/ca.crt"
    lines = [put_file(ca_path, ca_pem, tag="containerd-hosts")]
    for upstream in upstreams:
        lines.append(put_file(f"{CONTAINERD_CERTS}/{upstream}/hosts.toml",
                              hosts_toml(upstream, endpoint, ca_path, prefix_of(upstream)), tag="containerd-hosts"))
    lines += [
        put_file(CONTAINERD_DROPIN, containerd_dropin(), tag="containerd-config"),
        f"airgap_containerd_imports {q(CONTAINERD_CONFIG)} {q(CONTAINERD_DROPIN_DIR)} containerd-config",
        RESTART_CONTAINERD,
    ]
    return "\n".join(lines)


RESTART_CONTAINERD = ("if airgap_changed containerd-config && systemctl is-active containerd >/dev/null 2>&1; then "
                      "systemctl restart containerd; fi")


def containerd_lines(endpoint: str, ca_pem: str, upstreams: tuple[str, ...], *, prefix_of) -> str:
    """`prefix_of(upstream)` is the path element the private registry keeps for that registry
    (programs/registry_clients/containerd.sh)."""
    return CONTAINERD + "\n" + _containerd_calls(endpoint, ca_pem, upstreams, prefix_of=prefix_of)


def _docker_removal(endpoint: str, daemon_json: str) -> str:
    return f"airgap_docker_forget {q(DOCKER_CERTS)} {q(endpoint)} {q(daemon_json)}"


def _containerd_removal(endpoint: str, upstreams: tuple[str, ...]) -> str:
    words = (CONTAINERD_CERTS, endpoint, CONTAINERD_DROPIN, CONTAINERD_CONFIG, "containerd-config", *upstreams)
    return "airgap_containerd_forget " + " ".join(q(word) for word in words) + "\n" + RESTART_CONTAINERD


def client_lines(endpoint: str, ca_pem: str, upstreams: tuple[str, ...], *, docker: bool, containerd: bool,
                 insecure: bool, prefix_of, daemon_json: str = DAEMON_JSON) -> str:
    """Everything a node holds of the registry, converged at every run: what the stack asks for is
    written, what it no longer asks for (a runtime turned off) is taken away, and what an earlier
    endpoint of the registry (another port or name) left goes (programs/registry_clients/)."""
    return "\n".join([
        DOCKER, CONTAINERD, ENDPOINT,
        "airgap_registry_clients_moved " + " ".join(q(word) for word in (
            ENDPOINT_RECORD, endpoint, DOCKER_CERTS, CONTAINERD_CERTS, daemon_json)),
        _docker_calls(endpoint, ca_pem, insecure=insecure, daemon_json=daemon_json) if docker
        else _docker_removal(endpoint, daemon_json),
        _containerd_calls(endpoint, ca_pem, upstreams, prefix_of=prefix_of) if containerd
        else _containerd_removal(endpoint, upstreams),
        put_file(ENDPOINT_RECORD, endpoint, tag="endpoint"),
    ])


def remove_lines(endpoint: str, upstreams: tuple[str, ...], *, docker: bool, containerd: bool,
                 daemon_json: str = DAEMON_JSON) -> str:
    """The node leaves the stack: everything `client_lines` wrote for the runtimes it had goes."""
    lines = [DOCKER, CONTAINERD]
    if docker:
        lines.append(_docker_removal(endpoint, daemon_json))
    if containerd:
        lines.append(_containerd_removal(endpoint, upstreams))
    lines.append(f"rm -f {q(ENDPOINT_RECORD)}")
    return "\n".join(lines)


def daemon_json_example(endpoint: str, insecure: bool) -> str:
    """What the merge writes into an empty daemon.json (for outputs and reviews)."""
    return json.dumps({"insecure-registries": [endpoint]} if insecure else {}, indent=2, sort_keys=True)
