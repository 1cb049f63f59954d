"""Mattermost inside an air gap: every setting that would reach the internet, turned off or
pointed inside, as one typed table (config path → value → why → the upstream source that says
so), and the environment it becomes.

Mattermost reads any setting from an environment variable named `MM_` + the config path,
upper-cased, dots as underscores (its "Environment variables" documentation page); values set
this way cannot be changed from the System Console, which is what an air gap wants.

The table covers the server's own settings, the links users see (help, about, terms, privacy,
problem reports, app downloads) and the prepackaged plugins: their states
(`PluginSettings.PluginStates.<id>.Enable`) and settings (`PluginSettings.Plugins.<id>.<key>`,
keys lower-cased as the server keeps them). Mattermost takes a map from the environment whole,
as JSON (`applyEnvKey`, server/config/environment.go), so the plugin entries become two
variables, `MM_PLUGINSETTINGS_PLUGINSTATES` and `MM_PLUGINSETTINGS_PLUGINS`: the stack owns
every plugin's state and settings, and a plugin setting outside the table keeps the plugin's
own built-in default.

Sources, cited by short commit (full hashes in tests/data/mattermost_*.txt):
- `model`: mattermost/mattermost server/public/model/config.go@004a635e (the config model the
  key list is taken from); `app`: server/channels/app/plugin.go@01766b6d;
- each plugin at the tag the 9.11 line ships (tests/data/mattermost_plugin_keys.txt).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

MODEL = "mattermost/mattermost server/public/model/config.go@004a635e"
APP = "mattermost/mattermost server/channels/app/plugin.go@01766b6d"
CALLS = "mattermost/mattermost-plugin-calls@v0.29.1"
PLUGINS_KEY = "PluginSettings.Plugins"
STATES_KEY = "PluginSettings.PluginStates"


@dataclass(frozen=True)
class AirgapSetting:
    key: str
    """Mattermost config path: `Section.Field`, `PluginSettings.Plugins.<plugin id>.<key>` or
    `PluginSettings.PluginStates.<plugin id>.Enable`."""
    value: object
    why: str
    source: str
    """Upstream code that shows what the setting reaches (repository path@commit: symbol or line)."""
    link: bool = False
    """A link users see: the stack may point it at an internal page instead (`mattermost.links`)."""

    @property
    def plugin(self) -> tuple[str, str, str] | None:
        """(map, plugin id, key) of a plugin entry: `PluginSettings.Plugins` or `…PluginStates`."""
        for map_key in (PLUGINS_KEY, STATES_KEY):
            if self.key.startswith(map_key + "."):
                plugin_id, _, field = self.key[len(map_key) + 1:].rpartition(".")
                return map_key, plugin_id, field
        return None

    @property
    def env(self) -> str:
        plugin = self.plugin
        return env_name(plugin[0] if plugin else self.key)

    @property
    def encoded(self) -> str:
        """The value as the environment holds it: the variable's text, or the JSON in a map."""
        return json.dumps(self.value, sort_keys=True) if self.plugin else env_text(self.value)


def env_name(key: str) -> str:
    return "MM_" + key.upper().replace(".", "_")


def env_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# The config paths whose values are secrets, as their environment names map back to them.
SECRET_KEYS = ("SqlSettings.DataSource", "FileSettings.AmazonS3AccessKeyId", "FileSettings.AmazonS3SecretAccessKey")


def key_of(env: str) -> tuple[str, str]:
    """`MM_SQLSETTINGS_DATASOURCE` → ("SqlSettings", "DataSource"), for the keys the stack writes."""
    for key in SECRET_KEYS:
        if env_name(key) == env:
            section, field = key.split(".")
            return section, field
    raise KeyError(env)


def _plugin(plugin_id: str, key: str, value: object, why: str, source: str) -> AirgapSetting:
    return AirgapSetting(f"{PLUGINS_KEY}.{plugin_id}.{key}", value, why, source)


def _state(plugin_id: str, enable: bool, why: str, source: str) -> AirgapSetting:
    return AirgapSetting(f"{STATES_KEY}.{plugin_id}.Enable", enable, why, source)


AIRGAP_SETTINGS: tuple[AirgapSetting, ...] = (
    # --- the server's own calls home ---
    AirgapSetting("EmailSettings.SendPushNotifications", False,
                  "the push proxy is on the internet; no push notifications",
                  f"{MODEL}: EmailSettings.SetDefaults (on for new installs)"),
    AirgapSetting("EmailSettings.PushNotificationServer", "",
                  "no push proxy URL (new installs default to push-test.mattermost.com)",
                  f"{MODEL}: GenericNotificationServer"),
    AirgapSetting("ServiceSettings.EnableLinkPreviews", False, "the server would fetch every linked page",
                  f"{MODEL}: ServiceSettings.EnableLinkPreviews"),
    AirgapSetting("ServiceSettings.GoogleDeveloperKey", "", "YouTube Data API calls for link previews",
                  f"{MODEL}: ServiceSettings.GoogleDeveloperKey"),
    AirgapSetting("PluginSettings.EnableMarketplace", False,
                  "the marketplace would list only the image's plugins with the remote one off, but the stack "
                  "fixes which plugins run (PluginStates): installing from it would have no effect",
                  f"{APP}: GetMarketplacePlugins"),
    AirgapSetting("PluginSettings.EnableRemoteMarketplace", False,
                  "fetches the plugin list from the marketplace on the internet (MarketplaceURL)",
                  f"{APP}: getRemotePlugins; {MODEL}: PluginSettingsDefaultMarketplaceURL"),
    AirgapSetting("PluginSettings.AutomaticPrepackagedPlugins", True,
                  "installs only the plugins the image carries (prepackaged_plugins) and only those PluginStates "
                  "enables: no internet; off, Calls and Playbooks would never be installed",
                  f"{APP}: processPrepackagedPlugin"),
    AirgapSetting("PluginSettings.ChimeraOAuthProxyURL", "", "a Mattermost-hosted OAuth proxy",
                  f"{MODEL}: PluginSettings.ChimeraOAuthProxyURL"),
    AirgapSetting("LogSettings.EnableDiagnostics", False,
                  "telemetry to Mattermost; it also gates the NPS plugin's default state and the Rudder "
                  "telemetry of Playbooks and Boards",
                  f"{MODEL}: PluginSettings.SetDefaults (NPS); "
                  "mattermost/mattermost-plugin-playbooks@v1.40.0 server/plugin.go:151; "
                  "mattermost/mattermost-plugin-boards@v9.0.2 server/boards/boardsapp_util.go:57"),
    AirgapSetting("LogSettings.EnableSentry", False, "error reports to Mattermost's hosted Sentry",
                  f"{MODEL}: LogSettings.EnableSentry"),
    AirgapSetting("ServiceSettings.EnableSecurityFixAlert", False, "a daily security-update check against Mattermost",
                  f"{MODEL}: ServiceSettings.EnableSecurityFixAlert"),
    AirgapSetting("ServiceSettings.SplitKey", "", "feature flags would sync from Split.io with a key",
                  f"{MODEL}: ServiceSettings.SplitKey"),
    AirgapSetting("AnnouncementSettings.AdminNoticesEnabled", False,
                  "in-product notices fetched from notices.mattermost.com",
                  f"{MODEL}: AnnouncementSettingsDefaultNoticesJsonURL"),
    AirgapSetting("AnnouncementSettings.UserNoticesEnabled", False,
                  "in-product notices fetched from notices.mattermost.com",
                  f"{MODEL}: AnnouncementSettingsDefaultNoticesJsonURL"),
    AirgapSetting("AnnouncementSettings.NoticesURL", "",
                  "where notices come from (notices.mattermost.com); with notices off nothing names it",
                  f"{MODEL}: AnnouncementSettingsDefaultNoticesJsonURL"),
    AirgapSetting("ServiceSettings.EnableGifPicker", False, "the GIF picker calls Giphy",
                  f"{MODEL}: ServiceSettings.EnableGifPicker"),
    AirgapSetting("ServiceSettings.GiphySdkKey", "", "no Giphy key", f"{MODEL}: ServiceSettings.GiphySdkKey"),
    AirgapSetting("ImageProxySettings.Enable", False, "the image proxy fetches external images",
                  f"{MODEL}: ImageProxySettings"),
    AirgapSetting("CloudSettings.Disable", True, "no calls to Mattermost's customer portal",
                  f"{MODEL}: CloudSettingsDefaultCwsURL"),
    AirgapSetting("ServiceSettings.UseLetsEncrypt", False,
                  "ACME needs the internet; TLS terminates on internal certificates",
                  f"{MODEL}: ServiceSettings.UseLetsEncrypt"),
    AirgapSetting("GoogleSettings.Enable", False, "Google sign-in endpoints are on the internet",
                  f"{MODEL}: GoogleSettingsDefaultAuthEndpoint"),
    AirgapSetting("Office365Settings.Enable", False, "Microsoft sign-in endpoints are on the internet",
                  f"{MODEL}: Office365SettingsDefaultAuthEndpoint"),
    # --- the links users see: hidden when empty, or pointed inside (mattermost.links) ---
    AirgapSetting("SupportSettings.EnableAskCommunityLink", False, "links users to the public community server",
                  f"{MODEL}: SupportSettings.SetDefaults"),
    AirgapSetting("SupportSettings.TermsOfServiceLink", "/",
                  "mattermost.com/pl/terms-of-use by default, and put back when empty: the site's own root until "
                  "mattermost.links names the organisation's terms",
                  f"{MODEL}: SupportSettings.SetDefaults, SupportSettingsDefaultTermsOfServiceLink", link=True),
    AirgapSetting("SupportSettings.PrivacyPolicyLink", "",
                  "mattermost.com/pl/privacy-policy by default; empty hides it",
                  f"{MODEL}: SupportSettingsDefaultPrivacyPolicyLink", link=True),
    AirgapSetting("SupportSettings.AboutLink", "", "mattermost.com/pl/about-mattermost by default; empty hides it",
                  f"{MODEL}: SupportSettingsDefaultAboutLink", link=True),
    AirgapSetting("SupportSettings.HelpLink", "", "mattermost.com/pl/help by default; empty hides it",
                  f"{MODEL}: SupportSettingsDefaultHelpLink", link=True),
    AirgapSetting("SupportSettings.ReportAProblemLink", "", "mattermost.com/pl/report-a-bug by default; empty hides it",
                  f"{MODEL}: SupportSettingsDefaultReportAProblemLink", link=True),
    AirgapSetting("SupportSettings.SupportEmail", "",
                  "no support address unless mattermost.links names an internal one",
                  f"{MODEL}: SupportSettingsDefaultSupportEmail", link=True),
    AirgapSetting("NativeAppSettings.AppDownloadLink", "", "mattermost.com/pl/download-apps by default",
                  f"{MODEL}: NativeappSettingsDefaultAppDownloadLink", link=True),
    AirgapSetting("NativeAppSettings.AndroidAppDownloadLink", "", "mattermost.com/pl/android-app (the Play Store)",
                  f"{MODEL}: NativeappSettingsDefaultAndroidAppDownloadLink", link=True),
    AirgapSetting("NativeAppSettings.IosAppDownloadLink", "", "mattermost.com/pl/ios-app (the App Store)",
                  f"{MODEL}: NativeappSettingsDefaultIosAppDownloadLink", link=True),
    # --- prepackaged plugins: which run, and what they would reach ---
    _state("com.mattermost.calls", True, "runs inside the image; on the LAN it needs no STUN server",
           f"{MODEL}: PluginSettings.SetDefaults (enabled by default)"),
    _plugin("com.mattermost.calls", "iceserversconfigs", "",
            "STUN at stun.global.calls.mattermost.com by default; no ICE servers: hosts offer their own addresses",
            f"{CALLS} plugin.json:99 (default :103); server/configuration.go:154 (empty: none)"),
    _plugin("com.mattermost.calls", "icehostoverride", "",
            "without STUN nothing discovers a public address; override with the address clients reach",
            f"{CALLS} plugin.json:68"),
    _plugin("com.mattermost.calls", "rtcdserviceurl", "", "no external RTC service",
            f"{CALLS} plugin.json:83"),
    _plugin("com.mattermost.calls", "enablerecordings", False,
            "recordings run the job service, whose recorder image comes from Docker Hub by default",
            f"{CALLS} plugin.json:146; server/job_service.go:403 (job.ImageRegistryDefault)"),
    _plugin("com.mattermost.calls", "enabletranscriptions", False,
            "transcriptions run on the same job service (or Azure's speech API)",
            f"{CALLS} plugin.json:189"),
    _plugin("com.mattermost.calls", "enablelivecaptions", False, "live captions run on the same job service",
            f"{CALLS} plugin.json:259"),
    _state("playbooks", True, "runs inside the image; its telemetry follows LogSettings.EnableDiagnostics",
           f"{MODEL}: PluginSettings.SetDefaults; mattermost/mattermost-plugin-playbooks@v1.40.0 server/plugin.go:151"),
    _state("com.mattermost.nps", False,
           "the quarterly user-satisfaction survey reports to Mattermost's telemetry (Rudder)",
           f"{MODEL}: PluginSettings.SetDefaults; mattermost/mattermost-plugin-nps@v1.3.3 server/activate.go:75"),
    _plugin("com.mattermost.nps", "enablesurvey", False, "the survey itself, should the plugin be enabled",
            "mattermost/mattermost-plugin-nps@v1.3.3 plugin.json:27"),
    _state("com.mattermost.user-survey", False,
           "needs no internet (answers stay on the server); off as upstream leaves it, an override may enable it",
           "mattermost/mattermost-plugin-user-survey@v1.1.1 plugin.json; not in model PluginSettings.SetDefaults"),
    _state("mattermost-ai", False, "Copilot calls the LLM services its admin configures (api.anthropic.com, …)",
           "mattermost/mattermost-plugin-ai@v0.8.3 server/ai/anthropic/client.go:17"),
    _state("github", False, "talks to github.com (or a GitHub Enterprise it is pointed at)",
           "mattermost/mattermost-plugin-github@v2.3.0 plugin.json:25 (UsePreregisteredApplication; "
           "EnterpriseBaseURL empty: github.com)"),
    _state("com.github.manland.mattermost-plugin-gitlab", False, "talks to gitlab.com by default",
           "mattermost/mattermost-plugin-gitlab@v1.9.1 plugin.json:40 (GitlabURL default)"),
    _plugin("com.github.manland.mattermost-plugin-gitlab", "gitlaburl", "",
            "gitlab.com by default; enabling the plugin needs an override naming an internal GitLab",
            "mattermost/mattermost-plugin-gitlab@v1.9.1 plugin.json:40"),
    _state("jira", False, "talks to the Jira instances installed into it (Jira Cloud on atlassian.net)",
           "mattermost/mattermost-plugin-jira@v4.1.1 server/command.go:178"),
    _state("zoom", False, "Zoom's hosted service unless ZoomURL names an on-prem one",
           "mattermost/mattermost-plugin-zoom@v1.8.0 plugin.json:27"),
    _state("mattermost-plugin-servicenow", False, "talks to a ServiceNow instance (hosted by ServiceNow)",
           "mattermost/mattermost-plugin-servicenow@v2.3.4 plugin.json:29"),
    _state("focalboard", False,
           "Boards needs no internet (telemetry follows EnableDiagnostics); off as upstream now leaves it",
           "mattermost/mattermost-plugin-boards@v9.0.2 server/boards/boardsapp_util.go:57; "
           f"{APP}: transitionallyPrepackagedPlugins"),
    _state("com.mattermost.plugin-channel-export", False,
           "needs no internet; off as upstream now leaves it, an override may enable it",
           f"{APP}: transitionallyPrepackagedPlugins"),
)
AIRGAP_KEYS = {setting.key for setting in AIRGAP_SETTINGS}
LINK_KEYS = {setting.key for setting in AIRGAP_SETTINGS if setting.link}
OVERRIDES_ENV = "AIRGAP_INFRA_OVERRIDES"

# Where Mattermost's own links point by default (config.go's *DefaultLink constants).
UPSTREAM_LINK_HOSTS = ("mattermost.com",)


def link_stays_inside(value: str) -> bool:
    """Empty (hidden), site-relative, an address, or a URL on no host of Mattermost's own."""
    if value == "" or value.startswith("/") or re.fullmatch(r"[^@\s/:]+@[^@\s/:]+", value):
        return True
    host = (urllib.parse.urlsplit(value).hostname or "").lower()
    return bool(host) and not any(host == h or host.endswith("." + h) for h in UPSTREAM_LINK_HOSTS)


def airgap_values(overrides: Mapping[str, object] | None = None,
                  links: Mapping[str, str] | None = None) -> dict[str, object]:
    """Every table key and its value, with the stack's links and explicit overrides applied."""
    overrides, links = overrides or {}, links or {}
    unknown = (set(overrides) - AIRGAP_KEYS) | (set(links) - LINK_KEYS)
    if unknown:
        raise KeyError(f"not air-gap settings: {sorted(unknown)}")
    return {setting.key: setting.value for setting in AIRGAP_SETTINGS} | dict(links) | dict(overrides)


def airgap_environment(values: Mapping[str, object]) -> dict[str, str]:
    """The `MM_*` variables of table values: one per setting, the plugin maps as JSON."""
    env: dict[str, str] = {}
    maps: dict[str, dict[str, dict[str, object]]] = {PLUGINS_KEY: {}, STATES_KEY: {}}
    for setting in AIRGAP_SETTINGS:
        value = values[setting.key]
        if (plugin := setting.plugin) is not None:
            map_key, plugin_id, field = plugin
            maps[map_key].setdefault(plugin_id, {})[field] = value
        else:
            env[setting.env] = env_text(value)
    for map_key, entries in maps.items():
        env[env_name(map_key)] = json.dumps(entries, sort_keys=True)
    return env


def value_in(env: Mapping[str, object], setting: AirgapSetting) -> str | None:
    """What `env` sets `setting` to, encoded as `setting.encoded` is; None when it does not set it
    to a plain value."""
    text = env.get(setting.env)
    plugin = setting.plugin
    if not isinstance(text, str) or plugin is None:
        return text if isinstance(text, str) else None
    try:
        entries = json.loads(text)
    except ValueError:
        return None
    entry = entries.get(plugin[1], {}) if isinstance(entries, dict) else {}
    return json.dumps(entry[plugin[2]], sort_keys=True) if isinstance(entry, dict) and plugin[2] in entry else None


def environment(*, site_url: str, database_env: str, file_storage: Mapping[str, str],
                overrides: Mapping[str, object], links: Mapping[str, str] | None = None) -> dict[str, str]:
    """The full `MM_*` environment (plain part): air-gap settings (with the stack's links and any
    explicit overrides, which the policy pack reports), site URL and file storage. Secrets are
    added apart."""
    env = airgap_environment(airgap_values(overrides, links))
    if overrides:
        # Ignored by Mattermost; tells the policy pack these values were overridden on purpose.
        env[OVERRIDES_ENV] = json.dumps(sorted(overrides))
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
