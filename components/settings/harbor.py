"""`harbor`: Harbor from its offline installer, instead of or beside the registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field
from pydantic.dataclasses import dataclass

from ..render.harbor import SUPPORTED_LINES
from .fields import MODEL_CONFIG, DataPath, DnsName, Flag, HostName, Pattern, Port, SecretName, Sha256, project_file
from .registry import FillSettings, RegistryUserName
from .rules import Root, Rules, digest_matches, host_exists, needs, refers_to, secret_exists
from .s3_driver import s3_parameters
from .tls import TlsSettings

# The name is checked first: the Harbor component reads the version it installs from it. Only
# release lines whose harbor.yml template the renderer follows are accepted (tests/data/harbor).
HarborInstaller = Annotated[str, Pattern(
    r"(?:.*/)?harbor-offline-installer-v[0-9]+\.[0-9]+\.[0-9]+\.tgz",
    "is not named like Harbor's offline installer; keep its name harbor-offline-installer-vX.Y.Z.tgz"),
    Pattern(r"(?:.*/)?harbor-offline-installer-v(?:" + "|".join(line.replace(".", r"\.") for line in SUPPORTED_LINES)
            + r")\.\d+\.tgz",
            "is not a Harbor release line whose harbor.yml this stack writes; use a v"
            + ", v".join(SUPPORTED_LINES) + ".x installer"),
    AfterValidator(project_file)]


def _registry_users(root: Root) -> set[str] | None:
    registry = getattr(root, "registry", None)
    return {user.name for user in registry.users} if registry is not None else None


@dataclass(frozen=True, config=MODEL_CONFIG)
class HarborSettings:
    """Harbor from its offline installer (instead of, or beside, Docker Distribution)."""

    RULES: ClassVar[Rules] = (
        host_exists("host"),
        digest_matches("installer", "installer_sha256"),
        secret_exists("admin_password_secret", "database_password_secret", "robot_secret", "s3_secret_key_secret"),
        needs("trivy_db", field="scanner", equals=True,
              why="Harbor's scanner reads its databases from the registry trivyDb fills; or set scanner: false"),
        refers_to("trivy_db_user", _registry_users, "registry user named"),
    )

    host: HostName
    installer: HarborInstaller
    """The offline installer archive, carried across the gap."""
    installer_sha256: Sha256
    hostname: DnsName | None = None
    port: Port = 443
    tls: TlsSettings = TlsSettings()
    data_volume: DataPath = "/data/harbor"
    admin_password_secret: SecretName = "harborAdminPassword"
    database_password_secret: SecretName = "harborDatabasePassword"
    robot_name: RegistryUserName = "airgap-pull"
    robot_secret: SecretName = "harborRobotSecret"
    """The robot account's secret: clients pull with it (it becomes the pull secret)."""
    s3: Annotated[Mapping[str, str | int | bool], AfterValidator(s3_parameters)] = Field(default_factory=dict)
    """External storage: distribution s3 driver parameters (bucket, region, regionendpoint, …)."""
    s3_secret_key_secret: SecretName | None = None
    fill: FillSettings | None = FillSettings()
    """Copy the stack's images into Harbor (one project per source registry, plus `library`);
    null leaves Harbor empty."""
    purge: Flag = False
    scanner: Flag = True
    """Trivy, Harbor's scanner (`install.sh --with-trivy`), its databases laid out from `trivyDb`."""
    trivy_db_user: RegistryUserName | None = None
    """The registry user the Harbor host reads Trivy's databases with; the registry's first by default."""
