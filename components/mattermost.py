"""`MattermostAirgapConfig`: Mattermost inside the air gap, pulling from the private registry, with
every setting that reaches the internet turned off or pointed inside, its prepackaged plugins'
included (render/mattermost.py holds the table).

Targets:
- `kubernetes`: a namespace, a `kubernetes.io/dockerconfigjson` pull secret from the registry's
  credentials, a Secret with the database connection string and object-storage keys, and either
  a Helm release of the chart carried across the gap (values: the private image, the pull
  secret, the `MM_*` environment) or the Mattermost operator's `Mattermost` resource;
- `docker`: a container on a host, through pulumi-docker over SSH (the admin machine's ssh-agent
  holds the key; the host key is pinned by a known_hosts file the stack writes); its secrets go
  in as the container's config file, not its environment.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from . import remote
from .images import ImageRef, parse_image_ref
from .render import mattermost as render
from .render.formats import ssh
from .render.formats.hosts import host_port
from .settings import MattermostSettings

ENV_SECRET = "mattermost-airgap-env"
PULL_SECRET = "airgap-registry-pull"


@dataclass(frozen=True)
class RegistryAccess:
    endpoint: str
    username: pulumi.Input[str]
    password: pulumi.Output[str]
    """A secret."""


@dataclass(frozen=True)
class MattermostArgs:
    settings: MattermostSettings
    registry: RegistryAccess
    database_url: pulumi.Output[str]
    s3_access_key: pulumi.Output[str] | None = None
    s3_secret_key: pulumi.Output[str] | None = None
    kubeconfig: pulumi.Output[str] | None = None
    docker_host: remote.Host | None = None


def private_image(image: ImageRef, endpoint: str) -> tuple[str, str]:
    """(repository, tag) in the private registry."""
    return f"{endpoint}/{image.private_path}", image.private_tag


class MattermostAirgapConfig(pulumi.ComponentResource):
    environment: pulumi.Output[dict]
    """The plain `MM_*` environment (secrets excluded)."""
    image: pulumi.Output[str]
    pull_secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: MattermostArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:MattermostAirgapConfig", name, None, opts)
        settings = args.settings
        image = parse_image_ref(settings.image)
        repository, tag = private_image(image, args.registry.endpoint)
        secret_env = {render.env_name("SqlSettings.DataSource"): args.database_url}
        if settings.file_storage == "local":
            storage = render.file_storage_env(kind="local", local_path=settings.local_path)
        else:
            s3 = settings.s3
            assert s3 is not None and args.s3_access_key is not None and args.s3_secret_key is not None, \
                "settings refuse fileStorage: s3 without mattermost.s3 and its key secrets"
            storage = render.file_storage_env(kind="s3", s3_endpoint=s3.endpoint, s3_bucket=s3.bucket,
                                              s3_ssl=s3.ssl, s3_region=s3.region)
            secret_env[render.env_name("FileSettings.AmazonS3AccessKeyId")] = args.s3_access_key
            secret_env[render.env_name("FileSettings.AmazonS3SecretAccessKey")] = args.s3_secret_key
        env = render.environment(site_url=settings.site_url, database_env=render.env_name("SqlSettings.DataSource"),
                                 file_storage=storage, overrides=dict(settings.overrides),
                                 links=settings.links.config())
        self.environment = pulumi.Output.from_input(env)
        self.image = pulumi.Output.from_input(f"{repository}:{tag}")
        self.pull_secret_name = pulumi.Output.from_input(PULL_SECRET)
        if settings.target == "kubernetes":
            self._kubernetes(name, args, repository, tag, env, secret_env)
        else:
            self._docker(name, args, f"{repository}:{tag}", env, secret_env)
        self.register_outputs({"environment": self.environment, "image": self.image})

    def _kubernetes(self, name, args: MattermostArgs, repository, tag, env, secret_env):
        settings = args.settings.kubernetes
        provider = None
        if args.kubeconfig is not None:
            provider = k8s.Provider(f"{name}-cluster", kubeconfig=args.kubeconfig,
                                    opts=pulumi.ResourceOptions(parent=self))
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": settings.namespace, "labels": {"app.kubernetes.io/part-of": "mattermost"}},
            opts=child)
        in_namespace = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace])
        registry = args.registry
        pull_config: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(registry.username, registry.password).apply(_encoded_config(registry.endpoint)))
        pull = k8s.core.v1.Secret(
            f"{name}-pull-secret",
            metadata={"name": PULL_SECRET, "namespace": settings.namespace},
            type="kubernetes.io/dockerconfigjson",
            data={".dockerconfigjson": pull_config},
            opts=in_namespace)
        secrets = k8s.core.v1.Secret(
            f"{name}-env-secret",
            metadata={"name": ENV_SECRET, "namespace": settings.namespace},
            type="Opaque",
            string_data={key: pulumi.Output.secret(value) for key, value in secret_env.items()},
            opts=in_namespace)
        depends = pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[namespace, pull, secrets])
        env_list = [{"name": key, "value": value} for key, value in env.items()]
        env_list += [{"name": key, "valueFrom": {"secretKeyRef": {"name": ENV_SECRET, "key": key}}}
                     for key in sorted(secret_env)]
        if settings.mode == "helm":
            k8s.helm.v3.Release(
                f"{name}-release",
                name="mattermost",
                chart=settings.chart_archive,
                namespace=settings.namespace,
                values={
                    "image": {"repository": repository, "tag": tag, "imagePullPolicy": "IfNotPresent"},
                    "imagePullSecrets": [{"name": PULL_SECRET}],
                    "extraEnvVars": env_list,
                    "mysql": {"enabled": False},
                    "replicaCount": settings.replicas,
                },
                skip_await=False,
                opts=depends)
        else:
            k8s.apiextensions.CustomResource(
                f"{name}-mattermost",
                api_version="installation.mattermost.com/v1beta1",
                kind="Mattermost",
                metadata={"name": "mattermost", "namespace": settings.namespace},
                spec={
                    "image": repository, "version": tag, "replicas": settings.replicas,
                    "imagePullSecrets": [{"name": PULL_SECRET}],
                    "mattermostEnv": env_list,
                },
                opts=depends)

    def _docker(self, name, args: MattermostArgs, image: str, env, secret_env):
        host = args.docker_host
        assert host is not None
        known_hosts = f"out/{pulumi.get_stack()}/known_hosts-{host.name}"
        pinned = remote.local_file(f"{name}-known-hosts", known_hosts,
                                   ssh.known_host(host.address, host.port, host.host_key) + "\n", parent=self)
        provider = docker.Provider(
            f"{name}-docker",
            host=f"ssh://{host.user}@{host_port(host.address, host.port)}",
            ssh_opts=["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                      "-o", "BatchMode=yes"],
            registry_auth=[docker.ProviderRegistryAuthArgs(
                address=args.registry.endpoint, username=args.registry.username, password=args.registry.password)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pinned]))
        child = pulumi.ResourceOptions(parent=self, provider=provider)
        pulled = docker.RemoteImage(f"{name}-image", name=image, keep_locally=True, opts=child)
        # Secrets go into the container as its config file (Mattermost fills in every default on
        # start; the environment wins for the rest), never into its environment.
        config = pulumi.Output.all(*secret_env.values()).apply(
            lambda values: json.dumps(config_file_fragment(dict(zip(secret_env, values, strict=True))),
                                      indent=2, sort_keys=True))
        volumes = []
        if args.settings.file_storage == "local":
            volumes.append(docker.ContainerVolumeArgs(host_path=args.settings.docker_data_path,
                                                      container_path=args.settings.local_path))
        docker.Container(
            f"{name}-container",
            name="mattermost",
            image=pulled.image_id,
            envs=[f"{key}={value}" for key, value in env.items()] + ["MM_CONFIG=/mattermost/config/config.json"],
            uploads=[docker.ContainerUploadArgs(file="/mattermost/config/config.json",
                                                content=pulumi.Output.secret(config))],
            ports=[docker.ContainerPortArgs(internal=8065, external=args.settings.port, ip=host.address)],
            restart="always",
            volumes=volumes,
            opts=child)


def config_file_fragment(secret_env: dict[str, str]) -> dict:
    """Mattermost config.json holding the settings given as `MM_SECTION_FIELD` names."""
    config: dict = {}
    for key, value in secret_env.items():
        section, field = render.key_of(key)
        config.setdefault(section, {})[field] = value
    return config


def _encoded_config(endpoint: str) -> Callable[[list[Any]], str]:
    """`.dockerconfigjson` base64-encoded, from (username, password)."""
    def encode(values: list[Any]) -> str:
        return base64.b64encode(dockerconfigjson(endpoint, values[0], values[1]).encode()).decode()
    return encode


def dockerconfigjson(endpoint: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {endpoint: {"username": username, "password": password, "auth": auth}}},
                      sort_keys=True)
