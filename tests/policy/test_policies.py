"""The policy pack, run offline as CI runs it: every shipped stack passes every mandatory policy;
a corpus of deliberately bad resources and stacks is each caught by the policy that should catch
it, with a message that says what to fix; good ones are not flagged."""

import copy

import pytest

from offline.program import Recorded, run_program
from offline.stackfile import PROJECT_DIR, load_stack
from policy.offline import Violation, check_records, check_stack, check_stack_records, policy_config
from policy.policies import POLICIES

STACKS = sorted(p.name.split(".")[1] for p in PROJECT_DIR.glob("Pulumi.*.yaml"))
CONFIG = {"all": {"allowedRegistries": ["registry.internal:5443"], "internalDomains": ["corp.example"]}}
SECRET = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}


def resource(typ: str, props: dict, name: str = "subject") -> Recorded:
    return Recorded(urn=f"urn:pulumi:test::airgap-infra::{typ}::{name}", type=typ, name=name, inputs=props,
                    parent="", dependencies=[], property_dependencies={}, custom=True)


def deployment(container: dict, pull_secrets=True) -> dict:
    spec = {"containers": [{"name": "app", **container}]}
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": "pull"}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "app"},
            "spec": {"template": {"spec": spec}}}


def mattermost_cr(env: dict) -> dict:
    from components.render.mattermost import airgap_environment, airgap_values
    values = airgap_environment(airgap_values()) | env
    return {"spec": {"image": "registry.internal:5443/docker.io/mattermost/mattermost-enterprise-edition",
                     "version": "9.11.1", "imagePullSecrets": [{"name": "pull"}],
                     "mattermostEnv": [{"name": k, "value": v} for k, v in values.items()]}}


def command(create: str, **extra) -> dict:
    return {"create": create, "connection": {**SECRET, "value": {"host": "10.0.0.5"}}, **extra}


DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CMD = "command:remote:Command"
CORPUS = [
    # (id, resource, policy that must catch it, message fragment)
    ("implicit-docker-hub", resource(DEPLOYMENT, deployment({"image": "nginx:1.25"})),
     "images-from-internal-registries", "no registry host means Docker Hub"),
    ("quay-image", resource(DEPLOYMENT, deployment({"image": "quay.io/prometheus/node-exporter:v1.8.0"})),
     "images-from-internal-registries", "comes from quay.io"),
    ("implicit-public-endpoint", resource(DEPLOYMENT, deployment({"image": "redis:7.2"})),
     "no-public-endpoints", "outside the air gap"),
    ("docker-container",
     resource("docker:index/container:Container", {"image": "docker.io/library/redis:7", "name": "cache"}),
     "images-from-internal-registries", "comes from docker.io"),
    ("helm-values",
     resource("kubernetes:helm.sh/v3:Release", {"values": {"image": {"repository": "ghcr.io/org/app", "tag": "1.0"}}}),
     "images-from-internal-registries", "comes from ghcr.io"),
    ("docker-run-in-script", resource(CMD, command("docker run -d --name web nginx:1.25\n")),
     "images-from-internal-registries", "'nginx:1.25'"),
    ("curl-pipe-sh", resource(CMD, command("curl -fsSL https://get.example.com/install.sh | sh\n")),
     "no-public-endpoints", "https://get.example.com"),
    ("public-ip", resource("kubernetes:core/v1:ConfigMap", {"data": {"upstream": "http://8.8.8.8/dns"}}),
     "no-public-endpoints", "http://8.8.8.8"),
    ("plain-http-apt", resource(CMD, command("cat > /etc/apt/sources.list.d/x.sources <<'E'\nTypes: deb\n"
                                             "URIs: http://mirror.corp.example/debian\nSuites: bookworm\n"
                                             "Components: main\nSigned-By: /k.asc\nE\n")),
     "tls-everywhere", "over plain HTTP"),
    ("plain-http-yum", resource(CMD, command("[x]\nbaseurl=http://mirror.corp.example/rpm\ngpgcheck=1\n")),
     "tls-everywhere", "over plain HTTP"),
    ("insecure-registry",
     resource(CMD, command('echo \'{"insecure-registries": ["registry.internal:5443"]}\' > /etc/docker/daemon.json\n')),
     "tls-everywhere", "insecure registry"),
    ("skip-verify",
     resource(CMD, command('[host."https://registry.internal:5443/v2/docker.io"]\n  skip_verify = true\n')),
     "tls-everywhere", "verification is turned off"),
    ("skopeo-no-tls-verify", resource(CMD, command("skopeo copy --dest-tls-verify=false a b\n")),
     "tls-everywhere", "verification is turned off"),
    ("trusted-yes",
     resource(CMD, command("echo 'deb [trusted=yes] https://mirror.corp.example/debian bookworm main'\n")),
     "signed-repositories", "trusted=yes"),
    ("deb822-unsigned",
     resource(CMD, command("Types: deb\nURIs: https://mirror.corp.example/debian\nSuites: bookworm\n"
                           "Components: main\n\n")),
     "signed-repositories", "no Signed-By"),
    ("yum-gpgcheck-off", resource(CMD, command("[rocky]\nbaseurl=https://mirror.corp.example/rocky\ngpgcheck=0\n")),
     "signed-repositories", "gpgcheck=1"),
    ("mattermost-link-previews", resource("kubernetes:installation.mattermost.com/v1beta1:Mattermost",
                                          mattermost_cr({"MM_SERVICESETTINGS_ENABLELINKPREVIEWS": "true"})),
     "mattermost-airgap-settings", "MM_SERVICESETTINGS_ENABLELINKPREVIEWS"),
    ("mattermost-push-proxy", resource("kubernetes:installation.mattermost.com/v1beta1:Mattermost",
                                       mattermost_cr({"MM_EMAILSETTINGS_PUSHNOTIFICATIONSERVER": "https://push.mattermost.com"})),
     "mattermost-airgap-settings", "PUSHNOTIFICATIONSERVER"),
    ("private-key-in-script",
     resource(CMD, command("cat > /root/key <<'E'\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\nE\n")),
     "no-plaintext-secrets", "a private key"),
    ("password-in-env", resource(DEPLOYMENT, deployment({"image": "registry.internal:5443/app:1",
                                                          "env": [{"name": "DB_PASSWORD", "value": "hunter22"}]})),
     "no-plaintext-secrets", "DB_PASSWORD"),
    ("password-in-url", resource(CMD, command("psql postgres://admin:hunter22@db.corp.example/app -c 'select 1'\n")),
     "no-plaintext-secrets", "a password in a URL"),
    ("step-environment", resource(CMD, command("true\n", environment={"PASSWORD": "x"})),
     "no-plaintext-secrets", "environment variables"),
    ("unpinned", resource(DEPLOYMENT, deployment({"image": "registry.internal:5443/docker.io/library/app"})),
     "images-pinned", "not pinned"),
    ("latest", resource(DEPLOYMENT, deployment({"image": "registry.internal:5443/docker.io/library/app:latest"})),
     "images-pinned", "not pinned"),
    ("no-pull-secret",
     resource(DEPLOYMENT, deployment({"image": "registry.internal:5443/docker.io/library/app:1"}, pull_secrets=False)),
     "pull-secrets-for-private-images", "imagePullSecrets"),
]
GOOD = [
    resource(DEPLOYMENT, deployment({
        "image": "registry.internal:5443/docker.io/library/app:1.2.3",
        "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}}]})),
    resource("kubernetes:installation.mattermost.com/v1beta1:Mattermost", mattermost_cr({})),
    resource(CMD, command("Types: deb\nURIs: https://mirror.corp.example/debian\nSuites: bookworm\nComponents: main\n"
                          "Signed-By: /etc/apt/keyrings/airgap.asc\n\n[r]\nbaseurl=https://mirror.corp.example/r\ngpgcheck=1\n",
                          stdin={**SECRET, "value": "-----BEGIN RSA PRIVATE KEY-----"})),
    resource("kubernetes:core/v1:Secret", {"stringData": {"password": "hunter22"}}),
]


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_stack_passes_every_mandatory_policy(stack):
    violations = check_stack(load_stack(stack))
    assert [v for v in violations if v.level == "mandatory"] == []
    assert policy_config(stack), "each shipped stack names its internal registries for the pack"


@pytest.mark.parametrize("case,expected,fragment", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_bad_resources_are_caught_with_a_fix(case, expected, fragment):
    violations = check_records([case], CONFIG)
    caught = [v for v in violations if v.policy == expected]
    assert caught, f"{expected} missed it; got {[str(v) for v in violations]}"
    assert any(fragment in v.message for v in caught), [v.message for v in caught]


def test_the_corpus_is_large_and_covers_every_policy():
    assert len(CORPUS) >= 20
    assert {c[2] for c in CORPUS} >= {p.name for p in POLICIES} - {"mattermost-airgap-overrides"}


@pytest.mark.parametrize("good", GOOD, ids=lambda r: r.type.rsplit(":", 1)[-1])
def test_good_resources_are_not_flagged(good):
    assert check_records([good], CONFIG) == []


def stack_variant(edit) -> list[Violation]:
    config = copy.deepcopy(load_stack("sandbox"))
    edit(config.values)
    return check_stack(config, policy_config("sandbox"))


def test_a_stack_that_ignores_upstream_signatures_is_caught():
    def edit(values):
        values["airgap-infra:aptMirror"]["repos"][0]["ignoreSignatures"] = True
    violations = stack_variant(edit)
    assert any(v.policy == "signed-repositories" and "ignores the upstream's signatures" in v.message
               for v in violations)


def test_a_stack_with_an_insecure_registry_client_is_caught():
    def edit(values):
        values["airgap-infra:registryClients"][0]["insecure"] = True
    violations = stack_variant(edit)
    assert any(v.policy == "tls-everywhere" and v.level == "mandatory" for v in violations)


def test_a_stack_serving_mirrors_over_plain_http_is_caught():
    def edit(values):
        values["airgap-infra:aptMirror"]["tls"] = {"mode": "none"}
    violations = stack_variant(edit)
    assert any(v.policy == "tls-everywhere" and "plain HTTP" in v.message for v in violations)


def test_a_stack_that_fills_from_a_public_registry_is_caught():
    def edit(values):
        values["airgap-infra:registry"]["fill"]["upstreams"]["docker.io"] = "registry-1.docker.io"
    violations = stack_variant(edit)
    assert any(v.policy == "no-public-endpoints" and "registry-1.docker.io" in v.message for v in violations)


def test_an_explicit_mattermost_override_is_reported_not_refused():
    config = copy.deepcopy(load_stack("dev"))
    config.values["airgap-infra:mattermost"]["overrides"] = {"ServiceSettings.EnableLinkPreviews": True}
    violations = check_stack(config, policy_config("dev"))
    assert [v.level for v in violations if v.policy.startswith("mattermost")] == ["advisory"]
    assert "explicit override" in next(v.message for v in violations if v.policy == "mattermost-airgap-overrides")


def test_enforcement_levels_can_be_tuned_per_policy():
    config = {**CONFIG, "images-pinned": {"enforcementLevel": "mandatory"}}
    violations = check_records([CORPUS[-3][1]], config)
    assert [v.level for v in violations if v.policy == "images-pinned"] == ["mandatory"]
    config = {**CONFIG, "images-pinned": {"enforcementLevel": "disabled"}}
    assert not [v for v in check_records([CORPUS[-3][1]], config) if v.policy == "images-pinned"]


# --- network-lockdown: a stack policy over every resource at once ------------------------------------

def lockdown_violations(records, config=None) -> list[str]:
    return [v.message for v in check_stack_records(records, config or {}) if v.policy == "network-lockdown"]


def test_every_managed_host_is_locked_down_or_opted_out_with_a_reason():
    dev = run_program(load_stack("dev")).raise_error().records
    assert lockdown_violations(dev) == []
    unlocked = [r for r in dev if r.name != "network-lockdown-airgap"]
    assert lockdown_violations(unlocked) == [
        "host airgap (10.20.0.10) runs 2 step(s) without an egress lockdown; it is on by default for every managed "
        "host: take the host out of network.optOut, or give the reason it must stay open there (at least 10 "
        "characters)",
        "host airgap (10.20.0.10) is declared locked down but no step applies its rules"]
    assert lockdown_violations(unlocked, {"network-lockdown": {"exceptions": ["airgap"]}}) == []


def test_an_opt_out_needs_its_reason():
    sandbox = run_program(load_stack("sandbox")).raise_error().records
    assert lockdown_violations(sandbox) == [], "the sandbox stack opts its hosts out, each with a reason"
    edited = copy.deepcopy(sandbox)
    component = next(r for r in edited if r.type == "airgap:index:NetworkLockdown")
    component.inputs["managedHosts"]["client"]["optOut"] = "because"
    assert [m.split(";")[0] for m in lockdown_violations(edited)] == [
        "host client (127.0.0.13) runs 2 step(s) without an egress lockdown"]


def test_a_docker_host_counts_as_managed():
    prod = run_program(load_stack("prod")).raise_error().records
    assert lockdown_violations(prod) == []
    only_docker = [r for r in prod if r.type != "command:remote:Command" or "10.40.1.30" not in str(r.inputs)]
    assert any("host chat (10.40.1.30) runs" in m for m in lockdown_violations(only_docker))
