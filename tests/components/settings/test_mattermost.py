"""`mattermost` (the dev stack's, on Kubernetes): its image, storage, target, secrets and
overrides, each refused with the key named."""

import json

import pytest

from offline.program import run_program

from .stack_edits import DELETE, DEV, assert_refused, edits, set_path, with_changes

CASES = [
    pytest.param(set_path("mattermost.target", "nomad"), "mattermost.target", "'kubernetes' or 'docker'",
                 id="target"),
    pytest.param(set_path("mattermost.image", "mattermost/mattermost-enterprise-edition"), "mattermost.image",
                 "no tag or digest", id="image-unpinned"),
    pytest.param(set_path("mattermost.image", "mattermost/mattermost-team-edition:9.11.1"), "mattermost.image",
                 "is not in `images`; list it", id="image-not-listed"),
    pytest.param(edits(set_path("registry", {}), set_path("images", [])), "mattermost",
                 "no registry or harbor is configured; its image is pulled from one", id="no-registry"),
    pytest.param(set_path("mattermost.siteUrl", "chat.example"), "mattermost.siteUrl", "http:// or https://",
                 id="site-url"),
    pytest.param(set_path("secrets.mattermostDatabaseUrl", DELETE), "mattermost.databaseSecret",
                 "secret 'mattermostDatabaseUrl' is not set", id="database-secret-missing"),
    pytest.param(set_path("secrets.mattermostDatabaseUrl", ""), "mattermost.databaseSecret", "is empty",
                 id="database-secret-empty"),
    pytest.param(set_path("mattermost.s3", DELETE), "mattermost.s3", "required with fileStorage: s3",
                 id="s3-missing"),
    pytest.param(set_path("secrets.mattermostS3SecretKey", DELETE), "mattermost.s3.secretKeySecret",
                 "secret 'mattermostS3SecretKey' is not set", id="s3-secret-missing"),
    pytest.param(set_path("mattermost.s3.accessKeySecret", "s3 key"), "mattermost.s3.accessKeySecret",
                 "not a secret name", id="s3-secret-name"),
    pytest.param(set_path("mattermost.localPath", "data"), "mattermost.localPath", "absolute", id="local-path"),
    pytest.param(set_path("mattermost.kubernetes.namespace", "Chat"), "mattermost.kubernetes.namespace",
                 "not a Kubernetes name", id="namespace"),
    pytest.param(set_path("mattermost.kubernetes.kubernetesVersion", "v1.30"),
                 "mattermost.kubernetes.kubernetesVersion", "not a Kubernetes version", id="kubernetes-version"),
    pytest.param(set_path("mattermost.kubernetes.replicas", 0), "mattermost.kubernetes.replicas",
                 "greater than or equal to 1", id="replicas"),
    pytest.param(set_path("mattermost.kubernetes.mode", "helm"), "mattermost.kubernetes.chartArchive",
                 "required with target: kubernetes and kubernetes.mode: helm", id="helm-without-chart"),
    pytest.param(set_path("mattermost.kubernetes.kubeconfigSecret", "kubeconfig"),
                 "mattermost.kubernetes.kubeconfigSecret", "secret 'kubeconfig' is not set", id="kubeconfig-missing"),
    pytest.param(set_path("mattermost.target", "docker"), "mattermost.dockerHost", "required with target: docker",
                 id="docker-without-host"),
    pytest.param(edits(set_path("mattermost.target", "docker"), set_path("mattermost.dockerHost", "chat")),
                 "mattermost.dockerHost", "no host named 'chat'; known: airgap", id="docker-host-unknown"),
    pytest.param(set_path("mattermost.port", 0), "mattermost.port", "greater than or equal to 1", id="port"),
    pytest.param(set_path("mattermost.overrides", {"ServiceSettings.SiteURL": "https://x"}),
                 'mattermost.overrides["ServiceSettings.SiteURL"]', "not an air-gap setting; use one of",
                 id="override-not-air-gap"),
    pytest.param(set_path("mattermost.overrides", {"PluginSettings.Plugins.jira.jiraurl": "https://jira.corp"}),
                 'mattermost.overrides["PluginSettings.Plugins.jira.jiraurl"]', "not an air-gap setting",
                 id="override-plugin-key-not-in-table"),
    pytest.param(set_path("mattermost.links", {"help": "https://mattermost.com/pl/help/"}), "mattermost.links.help",
                 "points at Mattermost's own site; give an internal page", id="link-upstream"),
    pytest.param(set_path("mattermost.links", {"termsOfService": "/terms and conditions"}),
                 "mattermost.links.termsOfService", "characters a site path here may not", id="link-path"),
    pytest.param(set_path("mattermost.links", {"supportEmail": "help desk"}), "mattermost.links.supportEmail",
                 "is not an e-mail address", id="support-email"),
    # exported in the environment: never credentials, never an endpoint that is more than host:port
    pytest.param(set_path("mattermost.siteUrl", "https://admin:hunter2@chat.dev.example.internal"),
                 "mattermost.siteUrl", "holds credentials", id="site-url-credentials"),
    pytest.param(set_path("mattermost.s3.endpoint", "minio.dev.example.internal:9000/bucket?x=1"),
                 "mattermost.s3.endpoint", "not host or host:port", id="s3-endpoint-path"),
    pytest.param(set_path("mattermost.s3.endpoint", "2001:db8::9:9000"), "mattermost.s3.endpoint",
                 "an IPv6 address goes in brackets", id="s3-endpoint-ipv6"),
    pytest.param(set_path("mattermost.s3.bucket", "Mattermost Files"), "mattermost.s3.bucket",
                 "not an S3 bucket name", id="s3-bucket"),
    pytest.param(set_path("mattermost.s3.region", "eu-north-1\nx"), "mattermost.s3.region", "not an S3 region",
                 id="s3-region"),
    # versions: ASCII digits only
    pytest.param(set_path("mattermost.kubernetes.kubernetesVersion", "1.３0.0"),
                 "mattermost.kubernetes.kubernetesVersion", "not a Kubernetes version", id="kubernetes-version-wide"),
    pytest.param(set_path("mattermost.kubernetes.kubernetesVersion", "1.٣0.0"),
                 "mattermost.kubernetes.kubernetesVersion", "not a Kubernetes version",
                 id="kubernetes-version-arabic-digit"),
    pytest.param(set_path("mattermost.dockerDataPath", "/home/mattermost"), "mattermost.dockerDataPath",
                 "outside the data roots", id="docker-data-path"),
    # storage: the Docker host's data folder inside the registry's (the default /var/lib/airgap/registry)
    pytest.param(edits(set_path("mattermost.target", "docker"), set_path("mattermost.dockerHost", "airgap"),
                       set_path("mattermost.fileStorage", "local"), set_path("mattermost.s3", DELETE),
                       set_path("mattermost.dockerDataPath", "/var/lib/airgap/registry/mattermost")),
                 "mattermost.dockerDataPath", "is inside registry.storagePath (/var/lib/airgap/registry) on host "
                 "'airgap'", id="docker-data-path-in-registry-storage"),
    # listeners: the published port on the Docker host's SSH port
    pytest.param(edits(set_path("mattermost.target", "docker"), set_path("mattermost.dockerHost", "airgap"),
                       set_path("mattermost.port", 22)),
                 "mattermost.port", "22 is also hosts.airgap.port (SSH) on host 'airgap'", id="docker-port-on-ssh"),
]


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_mattermost_settings_are_refused(edit, path, message):
    assert_refused(with_changes(edit, DEV), path, message)


def test_internal_links_and_plugin_overrides_are_accepted():
    links = {"help": "https://wiki.corp.example/chat", "supportEmail": "chat-help@corp.example",
             "appDownload": "https://files.corp.example/mattermost/"}
    overrides = {"PluginSettings.Plugins.com.mattermost.calls.icehostoverride": "10.20.0.10"}
    run = run_program(with_changes(edits(set_path("mattermost.links", links),
                                         set_path("mattermost.overrides", overrides)), DEV))
    assert run.error is None, run.error
    env = run.exports["mattermost"]["environment"]
    assert env["MM_SUPPORTSETTINGS_HELPLINK"] == "https://wiki.corp.example/chat"
    assert env["MM_NATIVEAPPSETTINGS_APPDOWNLOADLINK"] == "https://files.corp.example/mattermost"
    assert json.loads(env["MM_PLUGINSETTINGS_PLUGINS"])["com.mattermost.calls"]["icehostoverride"] == "10.20.0.10"
