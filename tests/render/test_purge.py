"""`purge: true` removes data only below the data roots as the host resolves them
(programs/shell/purge.sh), run for real by bash over a temporary tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.render import apt_mirror, file_server, harbor, registry, rpm_mirror
from components.render.purge import purge_lines
from components.render.shell import step_script
from tests.render.test_harbor import SPEC as HARBOR
from tests.render.test_mirrors import APT, RPM


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """<tmp>/srv (the data root) with a registry's data, and <tmp>/etc standing for the system's."""
    for directory in ("srv/registry/docker", "etc/apt", "elsewhere/data"):
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / "srv/registry/docker/blob").write_text("image data")
    (tmp_path / "etc/apt/sources.list").write_text("system file")
    (tmp_path / "elsewhere/data/keep").write_text("not ours")
    return tmp_path


def purge(tree: Path, *paths: Path | str) -> subprocess.CompletedProcess[str]:
    script = step_script(purge_lines(*map(str, paths), roots=(str(tree / "srv"),)))
    return subprocess.run(["bash", "-c", script, "purge"], capture_output=True, text=True, timeout=30)


def test_a_path_below_the_root_is_removed(tree: Path) -> None:
    result = purge(tree, tree / "srv/registry")
    assert result.returncode == 0, result.stderr
    assert not (tree / "srv/registry").exists() and (tree / "srv").is_dir()


def test_a_link_above_the_path_that_leaves_the_roots_is_refused(tree: Path) -> None:
    # The stack says <root>/system/apt: its text is below the root, but the host links `system` to etc.
    (tree / "srv/system").symlink_to(tree / "etc")
    result = purge(tree, tree / "srv/system/apt")
    assert result.returncode == 1
    assert f"purge refused: {tree}/srv/system/apt is {tree}/etc/apt on this host" in result.stderr
    assert (tree / "etc/apt/sources.list").read_text() == "system file"


def test_one_refused_path_removes_nothing(tree: Path) -> None:
    (tree / "srv/out").symlink_to(tree / "elsewhere")
    result = purge(tree, tree / "srv/registry", tree / "srv/out/data")
    assert result.returncode == 1 and "nothing was removed" in result.stderr
    assert (tree / "srv/registry/docker/blob").exists() and (tree / "elsewhere/data/keep").exists()


def test_the_root_itself_is_refused(tree: Path) -> None:
    (tree / "srv/top").symlink_to(tree / "srv")
    for path in (f"{tree}/srv/top/.", f"{tree}/srv/registry/.."):  # as text: Path drops "/."
        result = purge(tree, path)
        assert result.returncode == 1, path
        assert "outside the data roots" in result.stderr
    assert (tree / "srv/registry/docker/blob").exists()


def test_a_path_that_is_itself_a_link_loses_the_link_only(tree: Path) -> None:
    for written in ("linked", "linked/"):  # `rm -rf linked/` would empty what it links to
        (tree / "srv/linked").symlink_to(tree / "etc")
        result = purge(tree, f"{tree}/srv/{written}")
        assert result.returncode == 0, result.stderr
        assert not (tree / "srv/linked").is_symlink() and (tree / "etc/apt/sources.list").exists()


def test_a_root_reached_through_a_link_to_another_root_is_accepted(tree: Path) -> None:
    # /srv linked to a bigger disk mounted below /mnt: still below a data root once resolved.
    (tree / "mnt/disk").mkdir(parents=True)
    (tree / "mnt/disk/registry").mkdir()
    (tree / "srv/big").symlink_to(tree / "mnt/disk")
    script = step_script(purge_lines(str(tree / "srv/big/registry"), roots=(str(tree / "srv"), str(tree / "mnt"))))
    result = subprocess.run(["bash", "-c", script, "purge"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert not (tree / "mnt/disk/registry").exists()


@pytest.mark.parametrize(("body", "data"), [
    (registry.uninstall("package", "/srv/registry", purge=True), "/srv/registry"),
    (file_server.uninstall_body("/srv/files", purge=True), "/srv/files"),
    (apt_mirror.uninstall_body(APT, "apt", purge=True), APT.root),
    (rpm_mirror.uninstall_body(RPM, purge=True), RPM.root),
    (harbor.uninstall_body(HARBOR, purge=True), HARBOR.data_volume),
], ids=["registry", "file server", "apt mirror", "rpm mirror", "harbor"])
def test_every_component_purges_its_data_through_the_check(body: str, data: str) -> None:
    assert purge_lines(data) in body
    assert all(data not in line for line in body.splitlines() if line.startswith("rm ")), body
