"""The fill plan: the text the renderer writes, read back by the fill program, and the errors a
malformed plan gets (a table of edits → the field named)."""

import json

import pytest
from hypothesis import given, strategies as st

from oci.plan import FillImage, FillPlan, PlanError

DIGEST = "sha256:" + "ab" * 32
NGINX = FillImage(source="docker.io/library/nginx:1.25", location="docker://mirror:5000/docker.io/library/nginx:1.25",
                  repository="docker.io/library/nginx", tag="1.25", digest=None)
PAUSE = FillImage(source=f"registry.k8s.io/pause@{DIGEST}", location="oci:/srv/airgap/images:registry.k8s.io/pause:x",
                  repository="registry.k8s.io/pause", tag="sha256-" + "ab" * 32, digest=DIGEST)
PLAN = FillPlan(endpoint="registry.internal:5000", images=(PAUSE, NGINX), parallel=4, retries=3)

# What the fill step has always shipped: the canonical form the stacks' plans are reviewed in.
CANONICAL = """{
 "endpoint": "registry.internal:5000",
 "images": [
  {
   "digest": null,
   "from": "docker://mirror:5000/docker.io/library/nginx:1.25",
   "repository": "docker.io/library/nginx",
   "source": "docker.io/library/nginx:1.25",
   "tag": "1.25"
  },
  {
   "digest": "sha256:abababababababababababababababababababababababababababababababab",
   "from": "oci:/srv/airgap/images:registry.k8s.io/pause:x",
   "repository": "registry.k8s.io/pause",
   "source": "registry.k8s.io/pause@sha256:abababababababababababababababababababababababababababababababab",
   "tag": "sha256-abababababababababababababababababababababababababababababababab"
  }
 ],
 "parallel": 4,
 "retries": 3
}"""


def test_written_canonically_images_sorted_by_source():
    assert PLAN.to_json() == CANONICAL


def test_read_back_as_written():
    plan = FillPlan.from_json(PLAN.to_json())
    assert plan == FillPlan(endpoint=PLAN.endpoint, images=(NGINX, PAUSE), parallel=4, retries=3)
    assert plan.to_json() == CANONICAL


@given(st.lists(st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8})?", fullmatch=True), min_size=0, max_size=6, unique=True),
       st.integers(1, 16), st.integers(0, 10))
def test_any_plan_survives_the_round_trip(names, parallel, retries):
    images = tuple(FillImage(source=f"docker.io/{n}:1", location=f"docker://docker.io/{n}:1", repository=n, tag="1",
                             digest=None) for n in names)
    plan = FillPlan(endpoint="r:5000", images=images, parallel=parallel, retries=retries)
    again = FillPlan.from_json(plan.to_json())
    assert sorted(again.images, key=lambda i: i.source) == sorted(images, key=lambda i: i.source)
    assert again.to_json() == plan.to_json()


def edited(change) -> str:
    document = json.loads(CANONICAL)
    change(document)
    return json.dumps(document)


REFUSED = [
    # edit of the canonical plan → the error, naming the field
    (lambda d: d.pop("endpoint"), "endpoint: missing"),
    (lambda d: d.pop("retries"), "retries: missing"),
    (lambda d: d.update(endpoint=""), "endpoint: expected a non-empty string"),
    (lambda d: d.update(parallel=0), "parallel: expected a whole number >= 1, got 0"),
    (lambda d: d.update(parallel="4"), "parallel: expected a whole number >= 1, got '4'"),
    (lambda d: d.update(retries=True), "retries: expected a whole number >= 0, got True"),
    (lambda d: d.update(retry=1), "retry: not a field of the plan"),
    (lambda d: d.update(images={}), "images: expected a list, got dict"),
    (lambda d: d["images"].append("nginx"), "images[2]: expected an object, got str"),
    (lambda d: d["images"][1].pop("digest"), "images[1].digest: missing"),
    (lambda d: d["images"][0].update(location="x"), "images[0].location: not a field of the plan"),
    (lambda d: d["images"][1].update(digest="sha256:AB"), "images[1].digest: 'sha256:AB' is not sha256: and 64"),
    (lambda d: d["images"][0].update({"from": "/srv/layout"}), "images[0].from: '/srv/layout' is neither docker://"),
    (lambda d: d["images"][0].update(tag=None), "images[0].tag: expected a non-empty string, got None"),
]


@pytest.mark.parametrize("change,message", REFUSED)
def test_a_malformed_plan_is_refused_naming_the_field(change, message):
    with pytest.raises(PlanError) as raised:
        FillPlan.from_json(edited(change))
    assert str(raised.value).startswith(message)


def test_not_json_is_refused():
    with pytest.raises(PlanError, match="not JSON"):
        FillPlan.from_json("{")
    with pytest.raises(PlanError, match="the plan: expected an object, got list"):
        FillPlan.from_json("[]")


def test_the_writer_cannot_write_what_the_reader_refuses():
    with pytest.raises(PlanError, match="digest: 'sha256:1'"):
        FillImage(source="a", location="docker://a:1", repository="a", tag="1", digest="sha256:1")
    with pytest.raises(PlanError, match="parallel"):
        FillPlan(endpoint="r:5000", images=(), parallel=0, retries=0)
