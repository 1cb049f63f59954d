"""airgap-infra: stack settings → components → exports. No shell text and no logic here."""

import pulumi

from components import remote, settings as stack_settings
from components.apt_mirror import AptlyMirror, AptlyMirrorArgs
from components.ck8s import Ck8sOverrides
from components.file_server import FileServer, FileServerArgs
from components.harbor import HarborInstall, HarborInstallArgs, trivy_db_from
from components.images import parse_image_ref
from components.kubespray import kubespray_offline
from components.mattermost import MattermostAirgapConfig, MattermostArgs, RegistryAccess
from components.mirror_clients import MirrorClients, MirrorClientsArgs
from components.network_audit import NetworkAudit, NetworkAuditArgs
from components.network_lockdown import NetworkLockdown, NetworkLockdownArgs
from components.pki import StackPki
from components.registry import Registry, RegistryArgs
from components.registry_clients import RegistryClients, RegistryClientsArgs
from components.rpm_mirror import RepoSyncMirror, RepoSyncMirrorArgs

settings = stack_settings.load()
hosts = remote.hosts_from(settings)
pki = StackPki("pki", common_name=f"airgap-infra {settings.stack} CA") if settings.needs_stack_ca() else None
# Every host's egress rules stand before anything runs there: they already allow what it will reach.
lockdown = NetworkLockdown("network-lockdown", NetworkLockdownArgs(settings=settings, hosts=hosts))
after_lockdown = pulumi.ResourceOptions(depends_on=[lockdown])

registry = None
if settings.registry is not None:
    registry_config = settings.registry
    registry = Registry(
        "registry",
        RegistryArgs(
            host=hosts[registry_config.host],
            settings=registry_config,
            images=settings.images,
            passwords={user.name: settings.secret(user.password_secret) for user in registry_config.users},
            pki=pki,
            tls_key=settings.secret(registry_config.tls.key_secret) if registry_config.tls.key_secret else None,
            salt_seed=f"{stack_settings.PROJECT}/{settings.stack}",
            artifacts=(parse_image_ref(settings.trivy_db.db), parse_image_ref(settings.trivy_db.java_db))
            if settings.trivy_db else (),
            artifacts_layout=settings.trivy_db.oci_layout if settings.trivy_db else None,
        ),
        after_lockdown,
    )
    pulumi.export("registryEndpoint", registry.endpoint)
    pulumi.export("registryCaBundle", registry.ca_bundle)
    pulumi.export("imageLock", registry.image_lock)

apt_mirror = None
if settings.apt_mirror is not None:
    apt_config = settings.apt_mirror
    apt_mirror = AptlyMirror(
        "apt-mirror",
        AptlyMirrorArgs(
            host=hosts[apt_config.host],
            settings=apt_config,
            signing_key=settings.secret(apt_config.signing_key_secret) if apt_config.method == "aptly" else None,
            pki=pki,
            tls_key=settings.secret(apt_config.tls.key_secret) if apt_config.tls.key_secret else None,
        ),
        after_lockdown,
    )
    pulumi.export("aptMirror", {"baseUrl": apt_mirror.base_url, "sources": apt_mirror.sources,
                                "publicKey": apt_mirror.public_key, "reports": apt_mirror.reports})

rpm_mirror = None
if settings.rpm_mirror is not None:
    rpm_config = settings.rpm_mirror
    rpm_mirror = RepoSyncMirror(
        "rpm-mirror",
        RepoSyncMirrorArgs(
            host=hosts[rpm_config.host],
            settings=rpm_config,
            pki=pki,
            tls_key=settings.secret(rpm_config.tls.key_secret) if rpm_config.tls.key_secret else None,
        ),
        after_lockdown,
    )
    pulumi.export("rpmMirror", {"baseUrl": rpm_mirror.base_url, "repoFiles": rpm_mirror.repo_files,
                                "keys": rpm_mirror.keys, "reports": rpm_mirror.reports})

mirror_clients = None
if settings.mirror_clients:
    mirror_clients = MirrorClients(
        "mirror-clients",
        MirrorClientsArgs(
            clients=tuple((hosts[client.host], client) for client in settings.mirror_clients),
            apt=apt_mirror,
            rpm=rpm_mirror,
        ),
        after_lockdown,
    )

registry_clients = None
if settings.registry_clients:
    assert registry is not None, "settings refuse registryClients without a registry"
    registry_clients = RegistryClients(
        "registry-clients",
        RegistryClientsArgs(
            clients=tuple((hosts[client.host], client) for client in settings.registry_clients),
            endpoint=registry.endpoint,
            ca_bundle=registry.ca_bundle,
        ),
        pulumi.ResourceOptions(depends_on=[registry, lockdown]),
    )
    pulumi.export("containerdHostsToml", registry_clients.hosts_toml)

file_server = None
if settings.file_server is not None:
    files_config = settings.file_server
    file_server = FileServer(
        "file-server",
        FileServerArgs(
            host=hosts[files_config.host],
            settings=files_config,
            pki=pki,
            tls_key=settings.secret(files_config.tls.key_secret) if files_config.tls.key_secret else None,
        ),
        after_lockdown,
    )
    pulumi.export("fileServer", {"baseUrl": file_server.base_url, "artifacts": file_server.artifacts})

if registry is not None or file_server is not None or apt_mirror is not None or rpm_mirror is not None:
    pulumi.export("kubesprayOffline", kubespray_offline(
        settings, file_server_url=file_server.base_url if file_server else None,
        apt_base_url=apt_mirror.base_url if apt_mirror else None,
        rpm_base_url=rpm_mirror.base_url if rpm_mirror else None))

if settings.ck8s is not None:
    pulumi.export("ck8sOverrides", Ck8sOverrides("ck8s", settings, file_server).files)

harbor = None
if settings.harbor is not None:
    harbor_config = settings.harbor
    harbor = HarborInstall(
        "harbor",
        HarborInstallArgs(
            host=hosts[harbor_config.host],
            settings=harbor_config,
            images=settings.images,
            admin_password=settings.secret(harbor_config.admin_password_secret),
            database_password=settings.secret(harbor_config.database_password_secret),
            robot_secret=settings.secret(harbor_config.robot_secret),
            pki=pki,
            tls_key=settings.secret(harbor_config.tls.key_secret) if harbor_config.tls.key_secret else None,
            s3_secret_key=settings.secret(s3_key) if (s3_key := harbor_config.s3_secret_key_secret) else None,
            trivy_db=trivy_db_from(settings, registry),
        ),
        after_lockdown,
    )
    pulumi.export("harbor", {"endpoint": harbor.endpoint, "caBundle": harbor.ca_bundle,
                             "robotUsername": harbor.robot_username, "imageLock": harbor.image_lock})

mattermost = None
if settings.mattermost is not None:
    mattermost_config = settings.mattermost
    if harbor is not None:  # Harbor, when there is one, serves the workloads through its pull robot
        access = RegistryAccess(settings.harbor_endpoint(), harbor.robot_username, harbor.robot_secret)
    else:
        assert settings.registry is not None, "settings refuse mattermost without a registry or harbor"
        first = settings.registry.users[0]
        access = RegistryAccess(settings.registry_endpoint(), first.name, settings.secret(first.password_secret))
    s3, kubeconfig = mattermost_config.s3, mattermost_config.kubernetes.kubeconfig_secret
    mattermost = MattermostAirgapConfig(
        "mattermost",
        MattermostArgs(
            settings=mattermost_config,
            registry=access,
            database_url=settings.secret(mattermost_config.database_secret),
            s3_access_key=settings.secret(s3.access_key_secret) if s3 else None,
            s3_secret_key=settings.secret(s3.secret_key_secret) if s3 else None,
            kubeconfig=settings.secret(kubeconfig) if kubeconfig else None,
            docker_host=hosts[mattermost_config.docker_host] if mattermost_config.docker_host else None,
        ),
        pulumi.ResourceOptions(depends_on=[r for r in (registry, harbor) if r is not None] + [lockdown]),
    )
    pulumi.export("mattermost", {"image": mattermost.image, "environment": mattermost.environment,
                                 "pullSecret": mattermost.pull_secret_name})

if pki is not None:
    pulumi.export("caCertificate", pki.ca_cert_pem)

# Last: each locked-down host probes what it must not reach and what it must, once everything stands.
audit = NetworkAudit("network-audit", NetworkAuditArgs(
    settings=settings, hosts=hosts,
    after=[lockdown, *(c for c in (registry, apt_mirror, rpm_mirror, mirror_clients, registry_clients, file_server,
                                   harbor, mattermost) if c is not None)]))
pulumi.export("networkAudit", audit.reports)
