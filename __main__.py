"""airgap-infra: stack settings → components → exports. No shell text and no logic here."""

import pulumi

from components import remote, settings as stack_settings
from components.pki import StackPki
from components.registry import Registry, RegistryArgs

settings = stack_settings.load()
hosts = remote.hosts_from(settings)
needs_pki = settings.registry is not None and settings.registry.tls.mode == "generate"
pki = StackPki("pki", common_name=f"airgap-infra {settings.stack} CA") if needs_pki else None

if settings.registry is not None:
    config = settings.registry
    registry = Registry(
        "registry",
        RegistryArgs(
            host=hosts[config.host],
            settings=config,
            images=settings.images,
            passwords={user.name: settings.secret(user.password_secret) for user in config.users},
            pki=pki,
            tls_key=settings.secret(config.tls.key_secret) if config.tls.key_secret else None,
            salt_seed=f"{stack_settings.PROJECT}/{settings.stack}",
        ),
    )
    pulumi.export("registryEndpoint", registry.endpoint)
    pulumi.export("registryCaBundle", registry.ca_bundle)
    pulumi.export("imageLock", registry.image_lock)

if pki is not None:
    pulumi.export("caCertificate", pki.ca_cert_pem)
