"""The upstream package fixture: a signed Debian archive and a signed RPM repository.

The air gap's mirrors trust these repositories only as far as their signatures go, so each one is
checked with the clients the mirrors use (gpgv, aptly, dnf reposync, rpm) against a private
keyring, and each client must refuse the wrong key. Nothing on this machine is reconfigured: every
client runs with its own root, configuration and HOME in a temporary directory.
"""

from __future__ import annotations

import gzip
import http.client
import json
import os
import shutil
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.process import children, port_is_free
from sandbox.upstream_repo_trees import COMPONENT, RPM_KEY_FILE_NAME, SUITE, cached_repos, packages_at, write_repos
from sandbox.upstream_repos import UpstreamRepos, missing_tools

CLIENT_TOOLS = ("gpgv", "aptly", "dnf", "rpm")
REPOSYNC_PLUGIN = Path("/usr/lib/python3/dist-packages/dnf-plugins/reposync.py")
MISSING = missing_tools() + [tool for tool in CLIENT_TOOLS if shutil.which(tool) is None]
if not REPOSYNC_PLUGIN.exists():
    MISSING.append("dnf reposync (dnf-plugins-core)")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="the upstream fixture runs nginx as root"),
    pytest.mark.skipif(bool(MISSING), reason=f"missing: {', '.join(MISSING)}"),
]

CLIENT_TIMEOUT_S = 60
# Away from the shared fixture's 127.0.0.2:8080, so a second instance never collides with it.
SECOND_ADDRESS = "127.0.0.3"
SECOND_PORT = 8081
RPM_NS = {"common": "http://linux.duke.edu/metadata/common",
          "repo": "http://linux.duke.edu/metadata/repo"}


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamRepos]:
    with UpstreamRepos(tls=True, state_dir=tmp_path_factory.mktemp("upstream-repos")) as served:
        yield served


def run(command: list[str], *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=env,
                          timeout=CLIENT_TIMEOUT_S, check=False)


def private_env(home: Path) -> dict[str, str]:
    """HOME and GNUPGHOME of the test's own: clients must not read or write root's."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
            "GNUPGHOME": str(home / "gnupg"), "LC_ALL": "C"}


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def tree_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def expected_versions(revision: int) -> set[tuple[str, str]]:
    return {(name, version) for name, versions in packages_at(revision).items()
            for version in versions}


def debian_packages(packages_text: str) -> set[tuple[str, str]]:
    """(Package, Version) of each stanza of a Packages file."""
    found = set()
    for stanza in packages_text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line
                      and not line.startswith(" "))
        found.add((fields["Package"], fields["Version"]))
    return found


def xml_value(element: ElementTree.Element, path: str, attribute: str | None = None) -> str:
    """The text (or `attribute`) of the element at `path` below `element`, which must be there."""
    found = element.find(path, RPM_NS)
    value = None if found is None else found.text if attribute is None else found.get(attribute)
    assert value is not None, f"{element.tag}: no {path} {attribute or 'text'}"
    return value


def primary_packages(primary_xml: bytes) -> set[tuple[str, str]]:
    root = ElementTree.fromstring(primary_xml)
    return {(xml_value(package, "common:name"), xml_value(package, "common:version", "ver"))
            for package in root.findall("common:package", RPM_NS)}


def primary_location(repomd: ElementTree.Element) -> str:
    """Where repomd.xml says the primary metadata is, relative to the repository."""
    for data in repomd.findall("repo:data", RPM_NS):
        if data.get("type") == "primary":
            return xml_value(data, "repo:location", "href")
    raise AssertionError("repomd.xml names no primary metadata")


def primary_xml_of(rpm_root: Path) -> bytes:
    repomd = ElementTree.parse(rpm_root / "repodata" / "repomd.xml").getroot()
    return gzip.decompress((rpm_root / primary_location(repomd)).read_bytes())


def served_primary_xml(repos: UpstreamRepos) -> bytes:
    repomd = ElementTree.fromstring(fetch(f"{repos.rpm_url}/repodata/repomd.xml"))
    return gzip.decompress(fetch(f"{repos.rpm_url}/{primary_location(repomd)}"))


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


def test_generation_is_byte_for_byte_repeatable(tmp_path: Path) -> None:
    first = write_repos(tmp_path / "first", revision=1)
    second = write_repos(tmp_path / "second", revision=1)

    packages = f"dists/{SUITE}/{COMPONENT}/binary-amd64/Packages"
    assert (first.debian / packages).read_bytes() == (second.debian / packages).read_bytes()
    assert primary_xml_of(first.rpm) == primary_xml_of(second.rpm)
    # With the cached keys, signatures, packages and compressed metadata repeat too.
    assert tree_files(first.root) == tree_files(second.root)


def test_a_new_revision_adds_a_version_and_keeps_old_packages_unchanged() -> None:
    old, new = cached_repos(0), cached_repos(1)

    assert packages_at(0)["airgap-hello"] == ("1.0",)
    assert packages_at(1)["airgap-hello"] == ("1.0", "1.1")
    assert expected_versions(1) - expected_versions(0) == {("airgap-hello", "1.1"), ("airgap-data", "1.1")}
    # Upstream does not rebuild what it already published: same bytes, same signatures.
    for path, content in tree_files(old.root).items():
        if path.endswith((".deb", ".rpm")):
            assert (new.root / path).read_bytes() == content, path
    assert (old.debian / f"dists/{SUITE}/InRelease").read_bytes() != \
        (new.debian / f"dists/{SUITE}/InRelease").read_bytes()


def test_metadata_lists_every_package_version(repos: UpstreamRepos) -> None:
    packages = fetch(f"{repos.debian_url}/dists/{SUITE}/{COMPONENT}/binary-amd64/Packages.gz")
    assert debian_packages(gzip.decompress(packages).decode()) == expected_versions(0)
    assert primary_packages(served_primary_xml(repos)) == expected_versions(0)


# ---------------------------------------------------------------------------------------------
# Debian archive: gpgv and aptly
# ---------------------------------------------------------------------------------------------


def gpgv(keyring: Path, *files: Path, home: Path) -> subprocess.CompletedProcess:
    return run(["gpgv", "--keyring", str(keyring), *map(str, files)], env=private_env(home))


def test_release_signatures_verify_with_the_archive_key_only(repos: UpstreamRepos,
                                                            tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("InRelease", "Release", "Release.gpg"):
        (suite / name).write_bytes(fetch(f"{repos.debian_url}/dists/{SUITE}/{name}"))

    inline = gpgv(repos.debian_keyring, suite / "InRelease", home=tmp_path / "home")
    detached = gpgv(repos.debian_keyring, suite / "Release.gpg", suite / "Release",
                    home=tmp_path / "home")
    assert inline.returncode == 0, inline.stderr
    assert detached.returncode == 0, detached.stderr
    for other in (repos.wrong_keyring, repos.key_file("rpm", binary=True)):
        refused = gpgv(other, suite / "InRelease", home=tmp_path / "home")
        assert refused.returncode != 0, f"{other.name} verified the archive"


class Aptly:
    """aptly with its own rootDir, config file and HOME (it creates ~/.gnupg even with -keyring)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.config = directory / "aptly.conf"
        directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps({
            "rootDir": str(directory / "root"),
            "architectures": [],
            "downloadConcurrency": 4,
            "gpgDisableSign": True,
            "gpgDisableVerify": False,
            "gpgProvider": "gpg",
        }))

    def __call__(self, *args: str) -> subprocess.CompletedProcess:
        return run(["aptly", f"-config={self.config}", *args],
                   env=private_env(self.directory / "home"))

    def mirror_packages(self, name: str) -> set[str]:
        shown = self("mirror", "show", "-with-packages", name)
        assert shown.returncode == 0, shown.stderr
        listing = shown.stdout.split("Packages:", 1)[1]
        return {line.strip() for line in listing.splitlines() if line.strip()}


def aptly_names(revision: int) -> set[str]:
    return {f"{name}_{version}_all" for name, version in expected_versions(revision)}


def test_aptly_mirrors_the_archive_through_its_signature(repos: UpstreamRepos,
                                                        tmp_path: Path) -> None:
    aptly = Aptly(tmp_path / "aptly")
    keyring = f"-keyring={repos.debian_keyring}"

    created = aptly("mirror", "create", keyring, "upstream", repos.debian_url, SUITE, COMPONENT)
    assert created.returncode == 0, created.stderr
    updated = aptly("mirror", "update", keyring, "upstream")
    assert updated.returncode == 0, updated.stderr
    assert aptly.mirror_packages("upstream") == aptly_names(0)


def test_aptly_refuses_the_archive_with_the_wrong_key(repos: UpstreamRepos,
                                                     tmp_path: Path) -> None:
    aptly = Aptly(tmp_path / "aptly")

    refused = aptly("mirror", "create", f"-keyring={repos.wrong_keyring}", "upstream",
                    repos.debian_url, SUITE, COMPONENT)
    assert refused.returncode != 0
    assert "signature" in (refused.stdout + refused.stderr).lower()
    assert aptly("mirror", "show", "upstream").returncode != 0


# ---------------------------------------------------------------------------------------------
# RPM repository: rpm -K and dnf reposync
# ---------------------------------------------------------------------------------------------


def rpm_check(repos: UpstreamRepos, dbpath: Path, home: Path) -> subprocess.CompletedProcess:
    packages = sorted((repos.www / "rpm" / "Packages").glob("*.rpm"))
    assert len(packages) == len(expected_versions(repos.revision))
    return run(["rpm", "--dbpath", str(dbpath), "--checksig", *map(str, packages)],
               env=private_env(home))


def test_rpm_signatures_check_against_the_imported_key_only(repos: UpstreamRepos,
                                                           tmp_path: Path) -> None:
    home = tmp_path / "home"
    trusting, untrusting = tmp_path / "trusting-db", tmp_path / "untrusting-db"
    # --dbpath everywhere: Debian's rpm would otherwise use root's ~/.rpmdb.
    for dbpath, key in ((trusting, repos.key_file("rpm")), (untrusting, repos.key_file("wrong"))):
        imported = run(["rpm", "--dbpath", str(dbpath), "--import", str(key)],
                       env=private_env(home))
        assert imported.returncode == 0, imported.stderr

    trusted = rpm_check(repos, trusting, home)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    assert trusted.stdout.count("digests signatures OK") == len(expected_versions(0))
    untrusted = rpm_check(repos, untrusting, home)
    assert untrusted.returncode != 0
    assert "SIGNATURES NOT OK" in untrusted.stdout


def reposync(repos: UpstreamRepos, work: Path, *, repo_key: Path,
             trusted_key: Path) -> tuple[subprocess.CompletedProcess, set[str]]:
    """`dnf reposync --gpgcheck` with metadata signature checks on, inside a private installroot.

    `repo_key` checks repomd.xml (repo_gpgcheck); `trusted_key` is imported into the
    installroot's rpmdb, which is what reposync's package signature check consults.
    """
    installroot, target = work / "root", work / "synced"
    home = work / "home"
    env = private_env(home)
    # Debian's rpm puts its database at ~/.rpmdb (inside the installroot for dnf); name it.
    (home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")
    installroot.mkdir(parents=True)
    imported = run(["rpm", "--root", str(installroot), "--import", str(trusted_key)], env=env)
    assert imported.returncode == 0, imported.stderr
    config = work / "dnf.conf"
    # Paths here are inside the installroot.
    config.write_text("[main]\ncachedir=/var/cache/dnf\nlogdir=/var/log\n"
                      "persistdir=/var/lib/dnf\nreposdir=/etc/yum.repos.d\n")
    try:
        result = run([
            "dnf", "--assumeyes", "--quiet", f"--config={config}", f"--installroot={installroot}",
            "--releasever=12", "--setopt=reposdir=/dev/null",
            f"--repofrompath=upstream,{repos.rpm_url}",
            "--setopt=upstream.gpgcheck=1", "--setopt=upstream.repo_gpgcheck=1",
            f"--setopt=upstream.gpgkey=file://{repo_key}",
            "reposync", "--repoid=upstream", "--gpgcheck", f"--download-path={target}",
        ], env=env)
    finally:
        stop_repo_keyring_agents(installroot)
    synced = {path.name for path in target.rglob("*.rpm")}
    return result, synced


def stop_repo_keyring_agents(installroot: Path) -> None:
    """Stop the gpg-agent librepo leaves running on each repository keyring it used."""
    for keyring in installroot.glob("var/cache/dnf/*/pubring"):
        run(["gpgconf", "--homedir", str(keyring), "--kill", "gpg-agent"])


def rpm_file_names(revision: int) -> set[str]:
    return {f"{name}-{version}-1.noarch.rpm" for name, version in expected_versions(revision)}


def test_dnf_reposync_checks_metadata_and_package_signatures(repos: UpstreamRepos,
                                                            tmp_path: Path) -> None:
    result, synced = reposync(repos, tmp_path, repo_key=repos.key_file("rpm"),
                              trusted_key=repos.key_file("rpm"))

    assert result.returncode == 0, result.stderr
    assert synced == rpm_file_names(0)


def test_dnf_refuses_metadata_signed_by_another_key(repos: UpstreamRepos, tmp_path: Path) -> None:
    result, synced = reposync(repos, tmp_path, repo_key=repos.key_file("wrong"),
                              trusted_key=repos.key_file("rpm"))

    assert result.returncode != 0
    assert "repomd.xml GPG signature verification error" in result.stderr
    assert synced == set()


def test_dnf_removes_packages_signed_by_an_untrusted_key(repos: UpstreamRepos,
                                                        tmp_path: Path) -> None:
    result, synced = reposync(repos, tmp_path, repo_key=repos.key_file("rpm"),
                              trusted_key=repos.key_file("wrong"))

    assert result.returncode != 0
    assert "GPG signature check failed" in result.stderr
    assert synced == set()


# ---------------------------------------------------------------------------------------------
# A new upstream revision
# ---------------------------------------------------------------------------------------------


def test_publishing_a_revision_shows_the_new_version_to_mirrors(repos: UpstreamRepos,
                                                               tmp_path: Path) -> None:
    aptly = Aptly(tmp_path / "aptly")
    keyring = f"-keyring={repos.debian_keyring}"
    assert aptly("mirror", "create", keyring, "upstream", repos.debian_url, SUITE,
                 COMPONENT).returncode == 0
    assert aptly("mirror", "update", keyring, "upstream").returncode == 0
    assert "airgap-hello_1.1_all" not in aptly.mirror_packages("upstream")

    try:
        assert repos.publish(1) == packages_at(1)
        updated = aptly("mirror", "update", keyring, "upstream")
        assert updated.returncode == 0, updated.stderr
        assert aptly.mirror_packages("upstream") == aptly_names(1)
        assert primary_packages(served_primary_xml(repos)) == expected_versions(1)
        result, synced = reposync(repos, tmp_path / "dnf", repo_key=repos.key_file("rpm"),
                                  trusted_key=repos.key_file("rpm"))
        assert result.returncode == 0, result.stderr
        assert synced == rpm_file_names(1)
    finally:
        repos.publish(0)
    assert repos.packages == packages_at(0)


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------


def test_keys_are_published_for_clients(repos: UpstreamRepos) -> None:
    assert fetch(f"{repos.base_url}/keys/debian.asc").decode() == repos.debian_key
    assert fetch(f"{repos.rpm_url}/{RPM_KEY_FILE_NAME}").decode() == repos.rpm_key
    assert repos.debian_key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert len({repos.debian_key, repos.rpm_key, repos.wrong_key}) == 3


def test_https_serves_the_same_tree_under_the_instance_ca(repos: UpstreamRepos) -> None:
    url = f"{repos.https_base_url}/debian/dists/{SUITE}/InRelease"
    with urllib.request.urlopen(url, context=repos.https_context(), timeout=10) as response:
        assert response.read() == fetch(f"{repos.debian_url}/dists/{SUITE}/InRelease")


def test_listens_only_on_its_own_address(repos: UpstreamRepos) -> None:
    # A wildcard listener would hold the port on every loopback address.
    assert not port_is_free(repos.address, repos.port)
    assert port_is_free(SECOND_ADDRESS, repos.port)


def test_slow_location_throttles_a_download_that_can_be_cut(repos: UpstreamRepos) -> None:
    path = "/slow/debian/pool/main/a/airgap-data/airgap-data_1.0_all.deb"
    total = (repos.www / "debian" / path.removeprefix("/slow/debian/")).stat().st_size
    connection = http.client.HTTPConnection(repos.address, repos.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        received, deadline = 0, time.monotonic() + 1.0
        while time.monotonic() < deadline:
            received += len(response.read1(4096))
        assert 0 < received < total // 2, f"{received} of {total} bytes in a second"
        assert repos.responses_in_flight() >= 1
    finally:
        connection.close()  # the client is cut mid-download, as a killed mirror would be
    deadline = time.monotonic() + 5.0
    while repos.responses_in_flight() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert repos.responses_in_flight() == 0
    assert repos.wait_for_request(path, timeout=5.0).bytes_sent < total


def test_stop_ends_nginx_by_pid(tmp_path: Path) -> None:
    served = UpstreamRepos(address=SECOND_ADDRESS, port=SECOND_PORT, state_dir=tmp_path)
    with served:
        pid = served.pid
        assert pid is not None
        workers = children(pid)
        assert workers, "nginx started no worker"
        assert fetch(f"{served.debian_url}/dists/{SUITE}/Release").startswith(b"Architectures:")
    for process in (pid, *workers):
        assert not Path(f"/proc/{process}").exists(), f"pid {process} outlived stop()"
    assert port_is_free(SECOND_ADDRESS, SECOND_PORT)
