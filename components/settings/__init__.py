"""Stack settings: typed, validated, one module per service, rules declared once.

Every key of a `Pulumi.<env>.yaml` is read once (loader.py, the only reader of `pulumi.Config`),
checked, and returned as frozen typed models. Field types say what a value may be
(fields.py); each model declares its cross-field rules next to its fields (rules.py). Anything
wrong raises `SettingsError` listing every problem as `key.path: what is wrong; what is
allowed`, before the program creates a single resource. Secret values stay Pulumi secrets:
models hold only the *names* of secrets, and `Settings.secret(name)` hands out an `Output`
marked secret.
"""

from .fields import DATA_ROOTS, PROJECT, PROJECT_DIR
from .files import (
    DEFAULT_UPSTREAMS,
    ArtifactSettings,
    Ck8sSettings,
    FileServerSettings,
    RegistryClientSettings,
    TrivyDbSettings,
)
from .harbor import HarborSettings
from .hosts import HostSettings
from .loader import Settings, SettingsError, load
from .mattermost import MattermostKubernetesSettings, MattermostS3Settings, MattermostSettings
from .mirrors import AptMirrorSettings, AptRepoSettings, MirrorClientSettings, RpmMirrorSettings, RpmRepoSettings
from .network import AllowSettings, AuditSettings, NetworkSettings
from .registry import DockerRuntimeSettings, FillSettings, RegistrySettings, RegistryUser
from .tls import ServedTlsSettings, TlsSettings

__all__ = [
    "DATA_ROOTS",
    "DEFAULT_UPSTREAMS",
    "PROJECT",
    "PROJECT_DIR",
    "AptMirrorSettings",
    "AllowSettings",
    "AptRepoSettings",
    "ArtifactSettings",
    "AuditSettings",
    "Ck8sSettings",
    "DockerRuntimeSettings",
    "FileServerSettings",
    "FillSettings",
    "HarborSettings",
    "HostSettings",
    "MattermostKubernetesSettings",
    "MattermostS3Settings",
    "MattermostSettings",
    "MirrorClientSettings",
    "NetworkSettings",
    "RegistryClientSettings",
    "RegistrySettings",
    "RegistryUser",
    "RpmMirrorSettings",
    "RpmRepoSettings",
    "ServedTlsSettings",
    "Settings",
    "SettingsError",
    "TlsSettings",
    "TrivyDbSettings",
    "load",
]
