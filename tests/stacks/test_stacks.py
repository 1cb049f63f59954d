"""Every shipped stack, evaluated under the mock runtime: the resources it records, that two
evaluations record identical inputs (so `pulumi up` twice runs nothing the second time), and that
no secret appears anywhere a person or a log could read it."""

import base64
import json

import pulumi
import pytest

from components.images import parse_image_ref
from offline.program import is_secret, plain_parts, reveal, run_program
from offline.stackfile import PROJECT_DIR, load_stack

STACKS = sorted(p.name.split(".")[1] for p in PROJECT_DIR.glob("Pulumi.*.yaml"))


@pytest.fixture(scope="module", params=STACKS)
def stack(request):
    config = load_stack(request.param)
    return config, run_program(config).raise_error()


def test_the_shipped_stacks():
    assert {"dev", "prod", "sandbox"} <= set(STACKS)


def test_every_remote_step_pins_the_host_key(stack):
    config, run = stack
    hosts = config.values["airgap-infra:hosts"]
    commands = run.by_type("command:remote:Command") + run.by_type("command:remote:CopyToRemote")
    assert commands
    for record in commands:
        connection = reveal(record.inputs["connection"])
        host = next(h for h in hosts.values() if h["address"] == connection["host"])
        assert connection["hostKey"] == host["hostKey"]
        if "bastion" in host:
            bastion = hosts[host["bastion"]]
            assert connection["proxy"]["host"] == bastion["address"]
            assert connection["proxy"]["hostKey"] == bastion["hostKey"]
        else:
            assert "proxy" not in connection


def test_registry_steps(stack):
    config, run = stack
    registry = config.values["airgap-infra:registry"]
    install = run.named("registry-install")
    script = install.inputs["create"]
    assert install.inputs["update"] == script, "changes re-run the same check-then-act script in place"
    assert is_secret(install.inputs["stdin"]), "key, htpasswd and health credentials travel as a secret"
    assert install.inputs["delete"] and "rm -rf --one-file-system" not in install.inputs["delete"]
    assert "/v2/" in script and "--cacert" in script
    hosts = config.values["airgap-infra:hosts"]
    host = hosts[registry["host"]]
    machine = f"{host.get('user', 'root')}@{host['address']}:{host.get('port', 22)}"
    if host.get("bastion"):
        jump = hosts[host["bastion"]]
        machine += f" via {jump['address']}:{jump.get('port', 22)}"
    assert install.inputs["triggers"] == [machine], \
        "the only trigger is the machine: any other change updates the step in place, never replaces it"
    fill = run.named("registry-fill")
    assert fill.dependencies and install.urn in fill.dependencies
    runner = registry.get("fill", {}).get("runner", "host")
    assert fill.type == ("command:local:Command" if runner == "admin" else "command:remote:Command")
    plan = json.loads(heredoc(fill.inputs["create"], 'cat > "$work/plan.json"'))
    sources = {parse_image_ref(i).__str__() for i in config.values["airgap-infra:images"]}
    trivy = config.values.get("airgap-infra:trivyDb") or {}
    if trivy:
        sources |= {trivy.get("db", "ghcr.io/aquasecurity/trivy-db:2"),
                    trivy.get("javaDb", "ghcr.io/aquasecurity/trivy-java-db:1")}
    assert {i["source"] for i in plan["images"]} == sources
    for image in plan["images"]:
        ref = parse_image_ref(image["source"])
        assert image["repository"] == ref.private_path
        assert image["digest"] == ref.digest
    assert plan["endpoint"] == run.exports["registryEndpoint"]


def test_prod_uses_the_given_certificate_and_sudo():
    config = load_stack("prod")
    run = run_program(config).raise_error()
    script = run.named("registry-install").inputs["create"]
    assert 'sudo -n bash "$step"' in script
    certificate = (PROJECT_DIR / "examples/prod/registry.crt").read_text()
    assert certificate.splitlines()[1] in script
    assert not run.by_type("tls:index/privateKey:PrivateKey"), "no CA is made when certificates are given"
    assert run.exports["registryEndpoint"] == "registry.prod.example.internal:443"


def test_sandbox_fill_lists_every_fixture_image_with_pins():
    run = run_program(load_stack("sandbox")).raise_error()
    create = run.named("registry-fill").inputs["create"]
    assert "docker://127.0.0.2:5000/registry.k8s.io/pause@sha256:" in create
    assert "docker://127.0.0.2:5000/docker.io/library/busybox@sha256:" in create
    plan = json.loads(heredoc(create, 'cat > "$work/plan.json"'))
    pause = next(i for i in plan["images"] if i["repository"] == "registry.k8s.io/pause")
    assert pause["tag"] == pause["digest"].replace(":", "-")
    assert len(plan["images"]) >= 21


def heredoc(script: str, opening: str) -> str:
    """The body of the heredoc that starts on the line beginning with `opening`."""
    lines = script.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(opening))
    delimiter = lines[start].rsplit("<<'", 1)[1].rstrip("'")
    end = lines.index(delimiter, start + 1)
    return "\n".join(lines[start + 1:end])


def test_two_evaluations_record_identical_inputs(stack):
    config, first = stack
    second = run_program(config).raise_error()

    def comparable(value):
        """Assets compare by what they point at, not by object identity."""
        if isinstance(value, (pulumi.FileAsset, pulumi.FileArchive, pulumi.StringAsset)):
            return (type(value).__name__, getattr(value, "path", None) or getattr(value, "text", None))
        if isinstance(value, dict):
            return {k: comparable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [comparable(v) for v in value]
        return value

    def snapshot(run):
        return {r.urn: (r.type, comparable(reveal(r.inputs)), r.parent, r.dependencies) for r in run.records}

    a, b = snapshot(first), snapshot(second)
    assert a.keys() == b.keys()
    for urn in a:
        assert a[urn] == b[urn], f"{urn} differs between two evaluations"


def _secret_values(config):
    values = list(config.values["airgap-infra:secrets"].values())
    found = set()
    for value in values:
        found.add(value)
        found.add(base64.b64encode(value.encode()).decode())
        for line in value.splitlines():
            if len(line) >= 16 and "-----" not in line:
                found.add(line)
    return found


def test_no_secret_in_plain_inputs_or_outputs(stack):
    config, run = stack
    secrets = _secret_values(config)
    plain = json.dumps([plain_parts(r.inputs) for r in run.records], default=str)
    plain += json.dumps(run.exports, default=str)
    for secret in secrets:
        assert secret not in plain, "a secret value appears in plain resource inputs or exports"
    for record in run.records:
        if record.type.startswith("command:"):
            for field in ("create", "update", "delete"):
                text = record.inputs.get(field)
                assert not is_secret(text), f"{record.name}.{field} became a secret: review would show nothing"


def test_resource_names_derive_from_the_component(stack):
    _, run = stack
    for record in run.records:
        if record.type.startswith(("command:", "tls:")) and "registry" in record.parent.split("::")[-1]:
            assert record.name.startswith("registry-")
