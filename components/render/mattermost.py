"""Mattermost inside an air gap: every setting that would reach the internet, turned off, as one
typed table (config path → `MM_*` variable → value → why), and the environment it becomes.

Mattermost reads any setting from an environment variable named `MM_` + the config path,
upper-cased, dots as underscores (its "Environment variables" documentation page); values set
this way cannot be changed from the System Console, which is what an air gap wants.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class AirgapSetting:
    key: str
    """Mattermost config path, `Section.Field`."""
    value: object
    why: str

    @property
    def env(self) -> str:
        return env_name(self.key)

    @property
    def env_value(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, (dict, list)):
            return json.dumps(self.value, sort_keys=True)
        return str(self.value)


def env_name(key: str) -> str:
    return "MM_" + key.upper().replace(".", "_")


# The config paths whose values are secrets, as their environment names map back to them.
SECRET_KEYS = ("SqlSettings.DataSource", "FileSettings.AmazonS3AccessKeyId", "FileSettings.AmazonS3SecretAccessKey")


def key_of(env: str) -> tuple[str, str]:
    """`MM_SQLSETTINGS_DATASOURCE` → ("SqlSettings", "DataSource"), for the keys the stack writes."""
    for key in SECRET_KEYS:
        if env_name(key) == env:
            section, field = key.split(".")
            return section, field
    raise KeyError(env)


AIRGAP_SETTINGS: tuple[AirgapSetting, ...] = (
    AirgapSetting("EmailSettings.SendPushNotifications", False,
                  "the push proxy is on the internet; no push notifications"),
    AirgapSetting("EmailSettings.PushNotificationServer", "",
                  "no push proxy URL (new installs default to push-test.mattermost.com)"),
    AirgapSetting("ServiceSettings.EnableLinkPreviews", False, "the server would fetch every linked page"),
    AirgapSetting("ServiceSettings.GoogleDeveloperKey", "", "YouTube Data API calls for link previews"),
    AirgapSetting("PluginSettings.EnableMarketplace", False, "the plugin marketplace lives on the internet"),
    AirgapSetting("PluginSettings.EnableRemoteMarketplace", False, "fetches the plugin list from the marketplace URL"),
    AirgapSetting("PluginSettings.AutomaticPrepackagedPlugins", False,
                  "no automatic plugin installs or upgrades; install bundled plugins deliberately"),
    AirgapSetting("PluginSettings.ChimeraOAuthProxyURL", "", "a Mattermost-hosted OAuth proxy"),
    AirgapSetting("LogSettings.EnableDiagnostics", False, "telemetry to Mattermost (it also enables the NPS plugin)"),
    AirgapSetting("LogSettings.EnableSentry", False, "error reports to Mattermost's hosted Sentry"),
    AirgapSetting("ServiceSettings.EnableSecurityFixAlert", False, "a daily security-update check against Mattermost"),
    AirgapSetting("AnnouncementSettings.AdminNoticesEnabled", False,
                  "in-product notices fetched from notices.mattermost.com"),
    AirgapSetting("AnnouncementSettings.UserNoticesEnabled", False,
                  "in-product notices fetched from notices.mattermost.com"),
    AirgapSetting("ServiceSettings.EnableGifPicker", False, "the GIF picker calls Giphy"),
    AirgapSetting("ServiceSettings.GiphySdkKey", "", "no Giphy key"),
    AirgapSetting("ImageProxySettings.Enable", False, "the image proxy fetches external images"),
    AirgapSetting("CloudSettings.Disable", True, "no calls to Mattermost's customer portal"),
    AirgapSetting("ServiceSettings.UseLetsEncrypt", False,
                  "ACME needs the internet; TLS terminates on internal certificates"),
    AirgapSetting("SupportSettings.EnableAskCommunityLink", False, "links users to the public community server"),
    AirgapSetting("GoogleSettings.Enable", False, "Google sign-in endpoints are on the internet"),
    AirgapSetting("Office365Settings.Enable", False, "Microsoft sign-in endpoints are on the internet"),
    AirgapSetting("NativeAppSettings.AppDownloadLink", "", "points to mattermost.com"),
    AirgapSetting("NativeAppSettings.AndroidAppDownloadLink", "", "points to the Play Store"),
    AirgapSetting("NativeAppSettings.IosAppDownloadLink", "", "points to the App Store"),
)
AIRGAP_KEYS = {setting.key for setting in AIRGAP_SETTINGS}
OVERRIDES_ENV = "AIRGAP_INFRA_OVERRIDES"


def environment(*, site_url: str, database_env: str, file_storage: Mapping[str, str],
                overrides: Mapping[str, object]) -> dict[str, str]:
    """The full `MM_*` environment (plain part): air-gap settings (with any explicit overrides,
    which the policy pack reports), site URL and file storage. Secrets are added apart."""
    env = {setting.env: setting.env_value for setting in AIRGAP_SETTINGS}
    for key, value in overrides.items():
        env[env_name(key)] = AirgapSetting(key, value, "override").env_value
    if overrides:
        # Ignored by Mattermost; tells the policy pack these values were overridden on purpose.
        env[OVERRIDES_ENV] = json.dumps(sorted(env_name(key) for key in overrides))
    env[env_name("ServiceSettings.SiteURL")] = site_url
    env[env_name("SqlSettings.DriverName")] = "postgres"
    env.update(file_storage)
    env.pop(database_env, None)  # the data source is a secret, added by the caller
    return dict(sorted(env.items()))


def file_storage_env(*, kind: str, local_path: str = "/mattermost/data", s3_endpoint: str = "",
                     s3_bucket: str = "", s3_ssl: bool = True, s3_region: str = "") -> dict[str, str]:
    if kind == "local":
        return {env_name("FileSettings.DriverName"): "local", env_name("FileSettings.Directory"): local_path}
    return {
        env_name("FileSettings.DriverName"): "amazons3",
        env_name("FileSettings.AmazonS3Endpoint"): s3_endpoint,
        env_name("FileSettings.AmazonS3Bucket"): s3_bucket,
        env_name("FileSettings.AmazonS3SSL"): "true" if s3_ssl else "false",
        env_name("FileSettings.AmazonS3Region"): s3_region,
    }
