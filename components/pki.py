"""The stack's own certificate authority, for services whose certificates the stack issues.

One CA per stack (ECDSA P-256, ten years); every service certificate it issues names the DNS
names and addresses clients use, and is renewed by `pulumi up` a month before it expires.
Private keys are Pulumi secrets and reach hosts only through a step's stdin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pulumi
import pulumi_tls as tls

if TYPE_CHECKING:
    from .settings import ServedTlsSettings, TlsSettings

CA_VALIDITY_HOURS = 10 * 365 * 24
EARLY_RENEWAL_HOURS = 30 * 24


@dataclass(frozen=True)
class IssuedCertificate:
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]
    """A secret."""


class StackPki(pulumi.ComponentResource):
    """A CA that issues the stack's service certificates."""

    ca_cert_pem: pulumi.Output[str]

    def __init__(self, name: str, common_name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("airgap:index:StackPki", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._ca_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        self._ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=self._ca_key.private_key_pem,
            is_ca_certificate=True,
            validity_period_hours=CA_VALIDITY_HOURS,
            allowed_uses=["cert_signing", "crl_signing"],
            subject=tls.SelfSignedCertSubjectArgs(common_name=common_name, organization="airgap-infra"),
            opts=child,
        )
        self.ca_cert_pem = self._ca.cert_pem
        self.register_outputs({"caCertPem": self.ca_cert_pem})

    def issue(
        self,
        name: str,
        *,
        common_name: str,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        validity_days: int = 825,
        parent: pulumi.Resource,
    ) -> IssuedCertificate:
        """A server certificate; its resources are children of `parent` (the service)."""
        child = pulumi.ResourceOptions(parent=parent)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=common_name, organization="airgap-infra"),
            dns_names=list(dns_names),
            ip_addresses=list(ip_addresses),
            opts=child,
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=self._ca_key.private_key_pem,
            ca_cert_pem=self._ca.cert_pem,
            validity_period_hours=validity_days * 24,
            early_renewal_hours=EARLY_RENEWAL_HOURS,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=child,
        )
        return IssuedCertificate(cert_pem=cert.cert_pem, key_pem=pulumi.Output.secret(key.private_key_pem))


@dataclass(frozen=True)
class ServiceTls:
    """What a TLS server needs: its certificate chain, the bundle clients trust, its key (secret)."""

    cert_pem: pulumi.Output[str]
    ca_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]


def service_tls(
    name: str,
    settings: TlsSettings | ServedTlsSettings,
    *,
    hostname: str,
    address: str,
    pki: StackPki | None,
    key: pulumi.Output[str] | None,
    parent: pulumi.Resource,
) -> ServiceTls | None:
    """TLS material for a service, as its `tls` settings say: issued by the stack CA (`generate`),
    read from PEM files the user gives (`files`), or none (`none`, plain HTTP)."""
    if settings.mode == "none":
        return None
    if settings.mode == "files":
        assert settings.cert_file is not None and key is not None
        cert = Path(settings.cert_file).read_text()
        ca = Path(settings.ca_file).read_text() if settings.ca_file else cert
        return ServiceTls(pulumi.Output.from_input(cert), pulumi.Output.from_input(ca), key)
    assert pki is not None, f"{name}: tls mode generate needs the stack PKI"
    addresses = {address} if _is_ip(address) else set()
    names: set[str] = set()
    (addresses if _is_ip(hostname) else names).add(hostname)
    issued = pki.issue(name, common_name=hostname, dns_names=sorted(names), ip_addresses=sorted(addresses),
                       validity_days=settings.validity_days, parent=parent)
    return ServiceTls(issued.cert_pem, pki.ca_cert_pem, issued.key_pem)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False
