"""nginx sites for what the stack serves (mirrors, files), and the lines that install them.

Each site listens on its host's own address only (several services may share a machine), serves
a directory read-only with an index, hides dot-files (temporary files, state), and speaks
TLS 1.2+ when it has a certificate. nginx serves the stack's sites and nothing else while it has
any; once the last is removed it is put back as it was before the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import programs
from .formats import nginx, urls
from .formats.hosts import host_port
from .shell import SecretFile, put_file, q, take_secrets

SITES = "/etc/nginx/sites-enabled"
BEFORE = "/var/lib/airgap/nginx-before"
"""How nginx was before the stack's first site on the host: put back when the last one goes."""
INSTALL = programs.load("nginx/install-site.sh")
REMOVE = programs.load("nginx/remove-site.sh")


@dataclass(frozen=True)
class Site:
    name: str
    """File name of the site; also the log names."""
    address: str
    port: int
    hostname: str
    root: str
    tls: bool
    """Serve HTTPS with the certificate at `cert_path` / `key_path`."""

    @property
    def cert_path(self) -> str:
        return f"/etc/airgap/tls/{self.name}.crt"

    @property
    def key_path(self) -> str:
        return f"/etc/airgap/tls/{self.name}.key"

    @property
    def url(self) -> str:
        return urls.url("https" if self.tls else "http", self.hostname, self.port)


def site_config(site: Site) -> str:
    """The server block; every value an nginx token (formats/nginx.py), IPv6 listen bracketed."""
    listen = nginx.directive("listen", host_port(site.address, site.port), *(["ssl"] if site.tls else []))
    tls = ""
    if site.tls:
        tls = (
            nginx.directive("ssl_certificate", site.cert_path)
            + nginx.directive("ssl_certificate_key", site.key_path)
            + "    ssl_protocols TLSv1.2 TLSv1.3;\n"
            "    ssl_session_cache shared:airgap:1m;\n"
        )
    return (
        "server {\n"
        f"{listen}"
        f"{nginx.directive('server_name', site.hostname)}"
        f"{tls}"
        f"{nginx.directive('root', site.root)}"
        "    autoindex on;\n"
        "    autoindex_exact_size on;\n"
        "    disable_symlinks off;\n"
        f"{nginx.directive('access_log', f'/var/log/nginx/{site.name}.access.log')}"
        f"{nginx.directive('error_log', f'/var/log/nginx/{site.name}.error.log')}"
        "    location ~ /\\. { deny all; return 404; }\n"
        "    location / { try_files $uri $uri/ =404; }\n"
        "}\n"
    )


def install_lines(site: Site, cert_pem: str | None) -> str:
    """Write the site (and its certificate; the key is the next stdin secret), check the whole
    nginx configuration with `nginx -t`, and reload only when something changed
    (programs/nginx/install-site.sh). A site without TLS takes away the certificate and key an
    earlier one had, once nginx no longer reads them."""
    tag = f"site-{site.name}"
    lines = [INSTALL, f"airgap_nginx_prepare {q(BEFORE)}"]
    if site.tls:
        assert cert_pem is not None
        lines.append(put_file(site.cert_path, cert_pem, tag=tag))
        lines.append(take_secrets([SecretFile(site.key_path, "0600", "root:root", tag)]))
    lines += [
        put_file(f"{SITES}/{site.name}.conf", site_config(site), tag=tag),
        f"airgap_nginx_apply {q(tag)}",
    ]
    if not site.tls:
        lines.append(drop_tls_lines(site))
    return "\n".join(lines)


def drop_tls_lines(site: Site) -> str:
    """The site's certificate and key removed (a site that no longer speaks TLS)."""
    return f"rm -f {q(site.cert_path)} {q(site.key_path)}"


def remove_lines(site: Site, *, keep_tls: bool = False) -> str:
    """Remove the site (and, unless `keep_tls`, its certificate and key); reload nginx only if
    the site was there. The last site of the stack on the host gone, nginx is as it was before
    the first: Debian's default site back, stopped and disabled when it was."""
    lines = [REMOVE, f"airgap_nginx_remove {q(f'{SITES}/{site.name}.conf')} {q(BEFORE)}"]
    if not keep_tls:
        lines.append(drop_tls_lines(site))
    return "\n".join(lines)
