"""MattermostAirgapConfig under the mock runtime, for the kubernetes (operator and Helm) and docker
targets: the pull secret, the images, the air-gap settings, secrets kept out of plain inputs,
and the Kubernetes objects validated against Kubernetes' published schemas. The air-gap table
is checked against Mattermost's own config model, the settings of its prepackaged plugins and the
defaults that reach the internet (tests/data names each source)."""

import base64
import copy
import io
import json
import re
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest

from components.render import mattermost as render
from offline.program import is_secret, plain_parts, reveal, run_program
from offline.stackfile import load_stack
from policy.policies import check_mattermost

DATA = Path(__file__).resolve().parents[1] / "data"
STATES = "PluginSettings.PluginStates"


def mattermost_keys() -> set[str]:
    """Real config paths of Mattermost's config model (the file names its source)."""
    return {line.strip() for line in (DATA / "mattermost_config_keys.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def plugin_keys() -> dict[str, dict[str, object]]:
    """Plugin id → {config path: manifest default} of every prepackaged plugin, its state included."""
    plugins: dict[str, dict[str, object]] = {}
    current: dict[str, object] = {}
    for line in (DATA / "mattermost_plugin_keys.txt").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("plugin "):
            current = plugins.setdefault(line.split()[1], {})
        elif line.startswith(STATES):
            current[line] = None
        else:
            key, default = line.split(" ", 1)
            current[key] = json.loads(default)
    return plugins


def test_every_air_gap_key_and_env_name_is_real():
    keys = mattermost_keys()
    plugins = plugin_keys()
    assert len(keys) > 400 and len(plugins) >= 12
    for setting in render.AIRGAP_SETTINGS:
        assert setting.why and re.search(r"mattermost/mattermost[\w-]*[ @]", setting.source), setting.key
        if setting.plugin is not None:
            map_key, plugin_id, field = setting.plugin
            assert setting.key in plugins.get(plugin_id, {}), f"{setting.key} is no prepackaged plugin's setting"
            assert map_key in keys and setting.env == f"MM_{map_key.upper().replace('.', '_')}"
            assert field == field.lower() or map_key == STATES, "the server keeps plugin keys lower-cased"
            continue
        assert setting.key in keys, f"{setting.key} is not in Mattermost's config model"
        section, field = setting.key.split(".")
        assert setting.env == f"MM_{section.upper()}_{field.upper()}"
    for required in ("EmailSettings.SendPushNotifications", "EmailSettings.PushNotificationServer",
                     "ServiceSettings.EnableLinkPreviews", "PluginSettings.EnableMarketplace",
                     "PluginSettings.EnableRemoteMarketplace", "PluginSettings.AutomaticPrepackagedPlugins",
                     "LogSettings.EnableDiagnostics", "ServiceSettings.EnableSecurityFixAlert",
                     "AnnouncementSettings.AdminNoticesEnabled", "AnnouncementSettings.UserNoticesEnabled",
                     "ServiceSettings.EnableGifPicker", "ImageProxySettings.Enable"):
        assert required in render.AIRGAP_KEYS


def test_every_prepackaged_plugin_has_its_state_in_the_table():
    values = render.airgap_values()
    for plugin_id in plugin_keys():
        assert f"{STATES}.{plugin_id}.Enable" in render.AIRGAP_KEYS, plugin_id
    # What runs without the internet, as upstream enables it: Calls and Playbooks; never the NPS survey.
    assert values[f"{STATES}.com.mattermost.calls.Enable"] is True and values[f"{STATES}.playbooks.Enable"] is True
    assert values[f"{STATES}.com.mattermost.nps.Enable"] is False
    assert values["PluginSettings.AutomaticPrepackagedPlugins"] is True, "the image's plugins need no internet"


INTERNET = re.compile(r"://|\b(?:stun|turn)s?:|\.(?:com|net|io|org)\b")


def test_no_plugin_default_that_reaches_the_internet_is_left_on():
    values = render.airgap_values()
    checked = []
    for plugin_id, settings in plugin_keys().items():
        enabled = values[f"{STATES}.{plugin_id}.Enable"]
        for key, default in settings.items():
            if isinstance(default, str) and INTERNET.search(default):
                checked.append(key)
                if enabled or key in values:
                    assert key in values and not INTERNET.search(str(values[key])), key
    assert "PluginSettings.Plugins.com.mattermost.calls.iceserversconfigs" in checked
    assert "PluginSettings.Plugins.com.github.manland.mattermost-plugin-gitlab.gitlaburl" in checked


def test_every_config_default_that_reaches_the_internet_is_covered():
    keys, values = mattermost_keys(), render.airgap_values()
    lines = [line.split() for line in (DATA / "mattermost_internet_defaults.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    assert len(lines) > 20
    for path, default, cover in lines:
        assert path in keys, path
        if cover == "storage":
            for kind in ("local", "s3"):
                env = render.file_storage_env(kind=kind, s3_endpoint="minio.internal:9000", s3_bucket="b")
                assert env["MM_FILESETTINGS_DRIVERNAME"] == "local" or "amazonaws" not in env[render.env_name(path)]
            continue
        key = cover.removeprefix("table:")
        assert key in values, f"{path} ({default}) is covered by {key}, which the table lacks"
        assert str(values[key]) != default and "mattermost.com" not in str(values[key]), key


def test_plugin_entries_become_two_json_maps_and_read_back():
    env = render.environment(site_url="https://chat.example", database_env="MM_SQLSETTINGS_DATASOURCE",
                             file_storage={}, overrides={
                                 "PluginSettings.Plugins.com.mattermost.calls.icehostoverride": "10.0.0.7",
                                 f"{STATES}.jira.Enable": True})
    plugins = json.loads(env["MM_PLUGINSETTINGS_PLUGINS"])
    states = json.loads(env["MM_PLUGINSETTINGS_PLUGINSTATES"])
    assert plugins["com.mattermost.calls"]["iceserversconfigs"] == ""
    assert plugins["com.mattermost.calls"]["icehostoverride"] == "10.0.0.7"
    assert states["com.mattermost.nps"] == {"Enable": False} and states["jira"] == {"Enable": True}
    assert json.loads(env[render.OVERRIDES_ENV]) == sorted([
        "PluginSettings.Plugins.com.mattermost.calls.icehostoverride", f"{STATES}.jira.Enable"])
    for setting in render.AIRGAP_SETTINGS:
        assert render.value_in(env, setting) is not None, setting.key
    assert not [k for k in env if k.startswith("MM_PLUGINSETTINGS_PLUGINS_")], "a map is one variable"


def test_links_point_inside_or_are_hidden():
    env = render.environment(site_url="https://chat.example", database_env="MM_SQLSETTINGS_DATASOURCE",
                             file_storage={}, overrides={})
    assert env["MM_SUPPORTSETTINGS_TERMSOFSERVICELINK"] == "/", "Mattermost puts its own back when empty"
    for name in ("PRIVACYPOLICYLINK", "ABOUTLINK", "HELPLINK", "REPORTAPROBLEMLINK", "SUPPORTEMAIL"):
        assert env[f"MM_SUPPORTSETTINGS_{name}"] == ""
    env = render.environment(site_url="https://chat.example", database_env="MM_SQLSETTINGS_DATASOURCE",
                             file_storage={}, overrides={},
                             links={"SupportSettings.HelpLink": "https://wiki.corp.example/chat"})
    assert env["MM_SUPPORTSETTINGS_HELPLINK"] == "https://wiki.corp.example/chat"
    with pytest.raises(KeyError):
        render.environment(site_url="x", database_env="y", file_storage={}, overrides={},
                           links={"ServiceSettings.SiteURL": "https://x"})


def policy_on(env: dict) -> tuple[list[str], list[str]]:
    props = {"spec": {"mattermostEnv": [{"name": k, "value": v} for k, v in env.items()]}}
    return check_mattermost("kubernetes:installation.mattermost.com/v1beta1:Mattermost", props, None)  # type: ignore[arg-type]  # the settings are not read


def test_the_policy_checks_plugin_entries_and_links_one_by_one():
    base = render.environment(site_url="https://chat.example", database_env="MM_SQLSETTINGS_DATASOURCE",
                              file_storage={}, overrides={})
    assert policy_on(base) == ([], [])
    states = json.loads(base["MM_PLUGINSETTINGS_PLUGINSTATES"])
    states["com.mattermost.nps"] = {"Enable": True}
    problems, _ = policy_on({**base, "MM_PLUGINSETTINGS_PLUGINSTATES": json.dumps(states)})
    assert len(problems) == 1 and "PluginSettings.PluginStates.com.mattermost.nps.Enable" in problems[0]
    plugins = json.loads(base["MM_PLUGINSETTINGS_PLUGINS"])
    del plugins["com.mattermost.calls"]["iceserversconfigs"]  # the plugin's own STUN default would apply
    problems, _ = policy_on({**base, "MM_PLUGINSETTINGS_PLUGINS": json.dumps(plugins)})
    assert len(problems) == 1 and "iceserversconfigs" in problems[0] and "None" in problems[0]
    assert policy_on({**base, "MM_SUPPORTSETTINGS_HELPLINK": "https://wiki.corp.example/"}) == ([], [])
    problems, _ = policy_on({**base, "MM_SUPPORTSETTINGS_HELPLINK": "https://mattermost.com/pl/help/"})
    assert len(problems) == 1 and "not Mattermost's own site" in problems[0]
    overridden = render.environment(site_url="https://chat.example", database_env="MM_SQLSETTINGS_DATASOURCE",
                                    file_storage={}, overrides={f"{STATES}.jira.Enable": True})
    problems, reported = policy_on(overridden)
    assert problems == [] and len(reported) == 1 and "explicit override" in reported[0]


def test_file_storage_keys_are_real():
    keys = mattermost_keys()
    for kind in ("local", "s3"):
        for env in render.file_storage_env(kind=kind, s3_endpoint="e", s3_bucket="b"):
            assert any(render.env_name(k) == env for k in keys), env


def chart_archive(tmp_path: Path) -> Path:
    """A chart archive shaped like mattermost-enterprise-edition's (only what Helm reads)."""
    path = tmp_path / "mattermost-enterprise-edition-2.6.60.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (("mattermost-enterprise-edition/Chart.yaml",
                            "apiVersion: v2\nname: mattermost-enterprise-edition\nversion: 2.6.60\n"),
                           ("mattermost-enterprise-edition/values.yaml", "image: {}\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


@pytest.fixture(scope="module", params=["operator", "helm", "docker"])
def target(request, tmp_path_factory):
    config = load_stack("dev" if request.param != "docker" else "prod")
    if request.param == "helm":
        config = copy.deepcopy(config)
        kube = config.values["airgap-infra:mattermost"]["kubernetes"]
        kube["mode"] = "helm"
        charts = tmp_path_factory.mktemp("chart")
        kube["chartArchive"] = str(chart_archive(charts))
        config.values["airgap-infra:adminFileRoots"] = [str(charts)]
    return request.param, config, run_program(config).raise_error()


def config_values(target):
    return target[1].values["airgap-infra:secrets"]


def secret_values(config) -> list[str]:
    return [v for v in config.values["airgap-infra:secrets"].values()]


def env_of(kind: str, run) -> dict[str, object]:
    if kind == "docker":
        container = next(r for r in run.records if r.type == "docker:index/container:Container")
        uploads = container.inputs["uploads"]
        assert is_secret(uploads) or is_secret(uploads[0]["content"]), "secrets go in as a file, a secret"
        assert reveal(uploads)[0]["file"] == "/mattermost/config/config.json"
        return dict(item.split("=", 1) for item in reveal(container.inputs["envs"]))
    if kind == "helm":
        release = next(r for r in run.records if r.type == "kubernetes:helm.sh/v3:Release")
        env = reveal(release.inputs["values"])["extraEnvVars"]
    else:
        resource = next(r for r in run.records if r.type.endswith(":Mattermost"))
        env = reveal(resource.inputs["spec"])["mattermostEnv"]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in env}


def test_every_air_gap_setting_is_present_with_its_value(target):
    kind, _, run = target
    env = env_of(kind, run)
    for setting in render.AIRGAP_SETTINGS:
        assert render.value_in(env, setting) == setting.encoded, setting.key
    assert run.exports["mattermost"]["environment"][render.env_name("ServiceSettings.EnableLinkPreviews")] == "false"


def test_the_database_and_storage_secrets_stay_secret(target):
    kind, config, run = target
    plain = json.dumps([plain_parts(r.inputs) for r in run.records], default=str) + json.dumps(run.exports, default=str)
    for secret in secret_values(config):
        for line in secret.splitlines():
            if len(line) > 8:
                assert line not in plain
    env = env_of(kind, run)
    if kind == "docker":
        assert render.env_name("SqlSettings.DataSource") not in env, "no secret in the container's environment"
        container = next(r for r in run.records if r.type == "docker:index/container:Container")
        config = json.loads(reveal(container.inputs["uploads"])[0]["content"])
        assert config["SqlSettings"]["DataSource"] == config_values(target)["mattermostDatabaseUrl"]
    else:
        assert env[render.env_name("SqlSettings.DataSource")] == {
            "secretKeyRef": {"name": "mattermost-airgap-env", "key": render.env_name("SqlSettings.DataSource")}}


def test_every_image_comes_from_the_private_registry(target):
    kind, config, run = target
    endpoint = run.exports["registryEndpoint"]
    image = run.exports["mattermost"]["image"]
    assert image.startswith(f"{endpoint}/docker.io/mattermost/")
    if kind == "helm":
        values = reveal(next(r for r in run.records if r.type == "kubernetes:helm.sh/v3:Release").inputs["values"])
        assert f"{values['image']['repository']}:{values['image']['tag']}" == image
        assert values["imagePullSecrets"] == [{"name": "airgap-registry-pull"}]
    elif kind == "operator":
        spec = reveal(next(r for r in run.records if r.type.endswith(":Mattermost")).inputs["spec"])
        assert f"{spec['image']}:{spec['version']}" == image
    else:
        pulled = next(r for r in run.records if r.type == "docker:index/remoteImage:RemoteImage")
        assert pulled.inputs["name"] == image
        provider = next(r for r in run.records if r.type == "pulumi:providers:docker")
        assert "StrictHostKeyChecking=yes" in provider.inputs["sshOpts"]


def test_the_pull_secret_decodes_to_the_registry_and_its_credentials(target):
    kind, config, run = target
    if kind == "docker":
        provider = next(r for r in run.records if r.type == "pulumi:providers:docker")
        auth = json.loads(reveal(provider.inputs["registryAuth"]))[0] if isinstance(
            reveal(provider.inputs["registryAuth"]), str) else reveal(provider.inputs["registryAuth"])[0]
        assert auth["address"] == run.exports["registryEndpoint"]
        return
    secret = next(r for r in run.records if r.name == "mattermost-pull-secret")
    assert secret.inputs["type"] == "kubernetes.io/dockerconfigjson"
    data = secret.inputs["data"]
    assert is_secret(data) or is_secret(data[".dockerconfigjson"]), "the credentials travel as a secret"
    document = json.loads(base64.b64decode(reveal(secret.inputs["data"])[".dockerconfigjson"]))
    endpoint = run.exports["registryEndpoint"]
    entry = document["auths"][endpoint]
    password = config.values["airgap-infra:secrets"]["registryPassword"]
    assert (entry["username"], entry["password"]) == ("airgap", password)
    assert base64.b64decode(entry["auth"]).decode() == f"airgap:{password}"


def test_kubernetes_objects_validate_against_the_published_schemas(target):
    kind, config, run = target
    if kind == "docker":
        assert not [r for r in run.records if r.type.startswith("kubernetes:")]
        return
    version = config.values["airgap-infra:mattermost"]["kubernetes"]["kubernetesVersion"]
    checked = 0
    for record in run.records:
        if record.type in ("kubernetes:core/v1:Namespace", "kubernetes:core/v1:Secret"):
            obj = {k: v for k, v in reveal(record.inputs).items()}
            obj.setdefault("apiVersion", "v1")
            obj.setdefault("kind", record.type.rsplit(":", 1)[1])
            kubernetes_validate.validate(obj, version, strict=True)
            checked += 1
    assert checked == 3


def test_an_override_of_an_air_gap_setting_must_be_explicit():
    config = copy.deepcopy(load_stack("dev"))
    config.values["airgap-infra:mattermost"]["overrides"] = {"ServiceSettings.EnableLinkPreviews": True}
    run = run_program(config).raise_error()
    env = run.exports["mattermost"]["environment"]
    assert env["MM_SERVICESETTINGS_ENABLELINKPREVIEWS"] == "true"
    config.values["airgap-infra:mattermost"]["overrides"] = {"ServiceSettings.SiteURL": "x"}
    refused = run_program(config)
    assert "mattermost.overrides" in str(refused.error)


def test_the_docker_hosts_data_folder_is_the_one_the_stack_names():
    config = copy.deepcopy(load_stack("prod"))
    mattermost = config.values["airgap-infra:mattermost"]
    # With S3, nothing is kept on the Docker host: the folder is neither mounted nor checked
    # against the other services' storage (here it is inside the registry's).
    mattermost["dockerDataPath"] = "/var/lib/airgap/registry/mattermost"
    run = run_program(config).raise_error()
    container = next(r for r in run.records if r.type == "docker:index/container:Container")
    assert not reveal(container.inputs).get("volumes")
    mattermost.update(fileStorage="local", dockerDataPath="/srv/chat/files")
    del mattermost["s3"]
    run = run_program(config).raise_error()
    container = next(r for r in run.records if r.type == "docker:index/container:Container")
    assert reveal(container.inputs)["volumes"] == [{"hostPath": "/srv/chat/files", "containerPath": "/mattermost/data"}]
