"""The fill step as rendered, run by bash on this machine as `registry.fill.runner: admin` runs it:
the package `oci` it ships runs under the system python3 and fills a registry from an OCI layout."""

import base64
import json
import subprocess

from components.images import parse_image_ref
from components.registry import fill_image
from components.render import registry_fill
from components.render.shell import step_script
from sandbox.oci_images import cached_layout
from tests.harness.private_registry import PrivateRegistry


def test_the_step_ships_a_fill_program_that_runs_with_the_system_python(tmp_path):
    catalog = cached_layout("test")
    images = [fill_image(parse_image_ref(ref), {}, str(catalog.layout)) for ref in catalog.refs]
    (tmp_path / "registries.conf").write_text("")
    with PrivateRegistry("127.0.0.5", 5448) as private:
        plan = registry_fill.fill_plan(private.endpoint, images, parallel=4, retries=1)
        script = step_script(registry_fill.fill_step(plan, (private.cert_dir / "ca.crt").read_text()))
        auth = registry_fill.auth_file(private.endpoint, private.user, private.password)
        result = subprocess.run(
            ["bash", "-c", script], input=base64.b64encode(auth.encode()).decode() + "\n",
            # No virtual environment on PATH: python3 is the system's, as on a registry host.
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
                 "CONTAINERS_REGISTRIES_CONF": str(tmp_path / "registries.conf")},
            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lock = {entry["source"]: entry["digest"] for entry in json.loads(result.stdout)["images"]}
    assert lock == {image.ref: image.digest for image in catalog.images}
    assert f"0 of {len(images)} images already present" in result.stderr
    assert (tmp_path / ".cache" / "airgap-infra" / "fill-metadata.json").is_file()
