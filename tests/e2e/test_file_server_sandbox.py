"""The file server applied for real on a sandbox host: artifacts from the admin machine and from
a URL, verified by sha256 on arrival; a client fetches each over TLS and checks it; a wrong
checksum fails the step and the previous file stays served."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pytest

from offline.program import ProgramRun
from offline.stackfile import StackConfig, load_stack
from sandbox.hosts import Sandbox, SandboxHost
from sandbox.upstream_repos import UpstreamRepos
from tests.e2e.stack import apply

pytestmark = pytest.mark.e2e

SERVER, CLIENT = "127.0.0.12", "127.0.0.13"


def files_only(config: StackConfig) -> StackConfig:
    config = copy.deepcopy(config)
    for key in ("registry", "aptMirror", "rpmMirror", "trivyDb", "ck8s"):
        config.values[f"airgap-infra:{key}"] = {}
    config.values["airgap-infra:images"] = []
    config.values["airgap-infra:mirrorClients"] = []
    config.values["airgap-infra:registryClients"] = []
    return config


@dataclass(frozen=True)
class Env:
    work: Path
    server: SandboxHost
    client: SandboxHost
    config: StackConfig
    first: ProgramRun


@pytest.fixture(scope="module")
def env(work: Path, upstream_repos: UpstreamRepos, sandbox: Sandbox) -> Env:
    """The file server applied once; one artifact comes from a URL on the upstream fixture."""
    server = sandbox.up("mirror", SERVER)
    client = sandbox.up("client", CLIENT)
    config = files_only(load_stack("sandbox"))
    run, _ = apply(config, work)
    return Env(work, server, client, config, run)


def test_every_artifact_downloads_over_tls_with_its_checksum(env: Env) -> None:
    run, client = env.first, env.client
    assert run.error is None, run.error
    client.ssh("cat > /root/files-ca.crt", input=run.exports["caCertificate"])
    artifacts = run.exports["fileServer"]["artifacts"]
    assert len(artifacts) == 4
    for path, artifact in artifacts.items():
        assert artifact["url"].startswith("https://")
        got = client.ssh(f"curl -fsS --cacert /root/files-ca.crt {artifact['url']} | sha256sum").stdout.split()[0]
        assert got == artifact["sha256"], path
    sums = client.ssh(f"curl -fsS --cacert /root/files-ca.crt {run.exports['fileServer']['baseUrl']}/SHA256SUMS").stdout
    assert sorted(line.split()[1] for line in sums.splitlines()) == sorted(artifacts)
    untrusted = client.ssh(f"curl -fsS {run.exports['fileServer']['baseUrl']}/SHA256SUMS", check=False)
    assert untrusted.returncode != 0, "the server's certificate is only trusted through the stack CA"
    hidden = client.ssh(f"curl -s -o /dev/null -w '%{{http_code}}' --cacert /root/files-ca.crt "
                        f"{run.exports['fileServer']['baseUrl']}/.incoming/").stdout
    assert hidden == "404", "the staging directory is never served"


def test_a_wrong_checksum_fails_and_the_old_file_stays_served(env: Env) -> None:
    client, run = env.client, env.first
    config = copy.deepcopy(env.config)
    artifact = config.values["airgap-infra:fileServer"]["artifacts"][3]   # the one fetched by URL
    artifact["sha256"] = "0" * 64
    failed, executor = apply(config, env.work)
    assert failed.error is not None
    step = next(e for e in executor.log if e.name == "file-server-install")
    assert "previous file stays served" in step.stderr
    url = run.exports["fileServer"]["artifacts"][artifact["path"]]["url"]
    got = client.ssh(f"curl -fsS --cacert /root/files-ca.crt {url} | sha256sum").stdout.split()[0]
    original = env.config.values["airgap-infra:fileServer"]["artifacts"][3]["sha256"]
    assert got == original


def test_second_apply_changes_nothing(env: Env) -> None:
    server = env.server
    # .incoming is the staging area the copies land in (the mock runtime sends them again)
    state = "find /var/lib/airgap/files /etc/nginx -path '*/.incoming' -prune -o -printf '%p %s %T@\\n' | sort"
    before = server.ssh(state).stdout
    run, _ = apply(env.config, env.work)
    assert run.error is None, run.error
    assert server.ssh(state).stdout == before
