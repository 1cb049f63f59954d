"""The policy pack reads image references with the project's parser (Docker Distribution's
grammar): what it takes for an image, and the registry it says an image comes from, agree with
components.images on Distribution's own cases (tests/data/distribution_reference_cases.yaml)."""

from pathlib import Path

import pytest
import yaml

from components.images import ImageRefError, parse_normalized
from offline.program import Recorded
from policy.offline import check_records
from policy.policies import image_registry, is_image_ref, workload_images

CASES = yaml.load((Path(__file__).resolve().parents[1] / "data" / "distribution_reference_cases.yaml").read_text(),
                  Loader=yaml.BaseLoader)
CONFIG = {"all": {"allowedRegistries": ["registry.internal:5443"], "internalDomains": ["corp.example"]}}
REFERENCES = (CASES["normalized"]["valid"] + CASES["normalized"]["invalid"]
              + [case["input"] for case in CASES["parse"]["valid"] + CASES["parse"]["invalid"]]
              + [case["input"] for case in CASES["split_hostname"] + CASES["docker_ref"] + CASES["refused"]])


@pytest.mark.parametrize("text", REFERENCES, ids=lambda text: text if len(text) < 60 else f"{text[:50]}…")
def test_the_policy_reads_references_as_the_parser_does(text):
    try:
        ref = parse_normalized(text)
    except ImageRefError:
        assert not is_image_ref(text)
    else:
        assert is_image_ref(text) and ref.domain is not None
        assert image_registry(text) == ref.domain.lower()


def script(line: str) -> Recorded:
    return Recorded(urn="urn:pulumi:test::airgap-infra::command:remote:Command::s", type="command:remote:Command",
                    name="s", inputs={"create": line + "\n"}, parent="", dependencies=[], property_dependencies={},
                    custom=True)


@pytest.mark.parametrize("line,image", [
    ("docker run -d nginx:1.25", "nginx:1.25"),
    ("docker pull Registry.Example.COM/team/app:1", "Registry.Example.COM/team/app:1"),
    ("podman pull [2001:db8::1]:5000/team/app:1", "[2001:db8::1]:5000/team/app:1"),
    ("ctr -n k8s.io images pull docker.io/library/redis:7", "docker.io/library/redis:7"),
    ("docker run -d nginx:1\u0663", None),  # a tag beyond ASCII is no reference
    ("docker run -d Nginx:1", None),
    ("docker run -d --rm", None),
])
def test_images_in_scripts_are_the_parsers_references(line, image):
    found = [ref for _, ref in workload_images("command:remote:Command", {"create": line + "\n"})]
    assert found == ([image] if image else [])


def test_an_image_from_a_public_ipv6_registry_is_outside_the_gap():
    violations = check_records([script("docker pull [2606:4700::1111]:5000/team/app:1")], CONFIG)
    assert any(v.policy == "no-public-endpoints" and "[2606:4700::1111]:5000" in v.message for v in violations)
    violations = check_records([script("docker pull [fd00::1]:5000/team/app:1")], CONFIG)
    assert not [v for v in violations if v.policy == "no-public-endpoints"]


@pytest.mark.parametrize("ref,implied", [
    ("nginx:1.25", True), ("bitnami/redis:7", True), ("docker.io/library/redis:7", False),
    ("index.docker.io/redis:7", False), ("localhost:5000/app:1", False), ("Registry.Example.COM/app:1", False),
    ("quay.io/x/y:1", False), ("[fd00::1]:5000/app:1", False),
])
def test_a_message_says_docker_hub_only_when_it_is_implied(ref, implied):
    violations = check_records([script(f"docker pull {ref}")], CONFIG)
    messages = [v.message for v in violations if v.policy == "images-from-internal-registries"]
    assert messages and all(("no registry host means Docker Hub" in m) == implied for m in messages)
