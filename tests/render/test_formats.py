"""The format writers (components/render/formats/): each writes a value as one token, field or
table key, read back by the format's own tool, or refuses it; hostile values of every class the
settings meet (zone ids, line breaks, braces, quotes, '%' and '$', look-alike Unicode) included."""

import shlex
import subprocess
import tomllib

import pytest
import yaml

from components.render import ck8s, nginx as nginx_site, registry, registry_clients, rpm_mirror, ssh_read, systemd
from components.render.formats import (
    FormatError,
    apt_conf,
    checksums,
    coredns,
    deb822,
    hosts,
    httpd,
    nginx,
    repo,
    ssh,
    systemd as unit_file,
    toml,
    urls,
)
from components.render.ssh_read import Hop
from tests.render import parsers

# A value of each hostile class: what it would do to a format that does not refuse it.
ZONE_ID = "2001:db8::10%$(reboot)"           # shell in a ProxyCommand
NGINX_BREAK = "2001:db8::10%x;}server{listen 80;root /;}#"
NEWLINE = "bookworm\nTrusted: yes"            # a new deb822 field
TOML_BREAK = 'r.example:5443"]\n[host."https://evil'
CORE_BREAK = "airgap.test:53 {\n}\n. {\n forward . 8.8.8.8"
CYRILLIC = "registry.ехample"                 # Cyrillic 'е' and 'х'
FULL_WIDTH = "１２７.0.0.1"


@pytest.mark.parametrize("value,expected", [
    pytest.param("10.0.0.5", "10.0.0.5", id="ipv4"),
    pytest.param("2001:DB8::0:11", "2001:db8::11", id="ipv6-normalised"),
    pytest.param("Registry.Example.Internal", "registry.example.internal", id="name-lowercased"),
])
def test_hosts_accepts_addresses_and_names(value, expected):
    assert str(hosts.parse_host(value)) == expected


@pytest.mark.parametrize("value,message", [
    pytest.param(ZONE_ID, "zone id", id="zone-id-shell"),
    pytest.param("fe80::1%eth0", "zone id", id="zone-id"),
    pytest.param(NGINX_BREAK, "zone id", id="zone-id-nginx"),
    pytest.param("127.1", "reads as an IPv4 address", id="inet-aton-short"),
    pytest.param("0x7f000001", "reads as an IPv4 address", id="inet-aton-hex"),
    pytest.param(CYRILLIC, "ASCII", id="cyrillic"),
    pytest.param(FULL_WIDTH, "ASCII", id="full-width-digits"),
    pytest.param("host name", "neither", id="blank"),
    pytest.param("a" * 64 + ".example", "neither", id="label-too-long"),
])
def test_hosts_refuses_what_is_no_single_host(value, message):
    with pytest.raises(FormatError, match=message):
        hosts.parse_host(value)


def test_ipv6_is_bracketed_wherever_a_port_or_path_follows():
    assert hosts.host_port("2001:db8::11", 5443) == "[2001:db8::11]:5443"
    assert hosts.host_port("registry.internal", 5443) == "registry.internal:5443"
    assert urls.url("https", "2001:db8::11", 443, "/v2/") == "https://[2001:db8::11]/v2/"
    assert urls.url("http", "10.0.0.1", 8080) == "http://10.0.0.1:8080"
    assert hosts.split_host_port("[2001:db8::25]:25") == ("2001:db8::25", 25)
    for bad in ("2001:db8::25:25", "[relay]:25", "relay:0", "relay:abc", "relay"):
        with pytest.raises(FormatError):
            hosts.split_host_port(bad)


@pytest.mark.parametrize("value,message", [
    pytest.param("https://user:pass@mirror.example/debian", "credentials", id="credentials"),
    pytest.param("https://[fe80::1%25eth0]/x", "zone id", id="zone-id"),
    pytest.param("https://2001:db8::1/x", "not a URL", id="ipv6-unbracketed"),
    pytest.param("https://mirror.example/a?b=c", "without query", id="query"),
    pytest.param("https://mirror.example/a/../b", "characters", id="dotdot"),
    pytest.param("https://mirror.example/$(id)", "characters", id="subshell"),
    pytest.param("https://mirror.example/a\nb", "white space", id="newline"),
    pytest.param(f"https://{CYRILLIC}/", "non-ASCII", id="cyrillic"),
    pytest.param("https://mirror.example:0/", "port", id="port-zero"),
])
def test_urls_are_refused_with_what_is_wrong(value, message):
    with pytest.raises(FormatError, match=message):
        urls.check_url(value)


def test_nginx_site_for_an_ipv6_host_passes_nginx_and_keeps_each_value_one_token(tmp_path):
    site = nginx_site.Site(name="airgap-apt-mirror", address="2001:db8::12", port=8443, hostname="2001:db8::12",
                           root="/var/lib/airgap/apt-mirror/aptly/public", tls=False)
    (server,) = parsers.nginx(nginx_site.site_config(site), tmp_path)
    directives = {d[0]: d[1:] for d in server[1]}
    assert directives["listen"] == ["[2001:db8::12]:8443"]
    assert directives["root"] == ["/var/lib/airgap/apt-mirror/aptly/public"]
    assert site.url == "http://[2001:db8::12]:8443"


@pytest.mark.parametrize("value", [NGINX_BREAK, "x;", "$host", "a b", "x}", "x#y", "a\nb", "'x'", "a\\b", ""])
def test_nginx_refuses_what_is_not_one_argument(value):
    with pytest.raises(FormatError):
        nginx.directive("server_name", value)
    with pytest.raises(FormatError):
        nginx_site.site_config(nginx_site.Site(name="s", address="10.0.0.1", port=80, hostname=value, root="/srv/x",
                                               tls=False))


@pytest.mark.parametrize("value", ["a b", "x>", "${HOME}", "a\nListen 80", '"x"'])
def test_httpd_refuses_what_is_not_one_argument(value):
    with pytest.raises(FormatError):
        httpd.token(value)


def test_httpd_site_brackets_ipv6():
    site = rpm_mirror.httpd_site(name="s", address="2001:db8::12", port=8444, hostname="mirror.internal",
                                 root="/srv/rpm", tls=False, cert_path="/c", key_path="/k")
    assert "Listen [2001:db8::12]:8444\n<VirtualHost [2001:db8::12]:8444>\n" in site


def test_systemd_values_escape_specifiers_and_commands_quote_words(tmp_path):
    service = unit_file.unit([
        ("Unit", [("Description", unit_file.value("mirror 100% (airgap-infra)"))]),
        ("Service", [("Type", "oneshot"),
                     ("ExecStart", unit_file.command(["/bin/echo", "a b", 'q"uote', "$HOME", "50%", "back\\slash"]))]),
    ])
    (tmp_path / "airgap-format.service").write_text(service)
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "airgap-format.service")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (unit, (_, settings)) = parsers.systemd_unit(service)
    assert unit == ("Unit", [("Description", "mirror 100%% (airgap-infra)")])
    assert settings[1] == ("ExecStart", '/bin/echo "a b" "q\\"uote" "$$HOME" "50%%" "back\\\\slash"')


@pytest.mark.parametrize("value", ["daily\nExecStartPre=/bin/sh", "daily\\", " daily", "daily\r", "\x00"])
def test_systemd_refuses_what_would_be_another_line(value):
    with pytest.raises(FormatError):
        unit_file.value(value)
    with pytest.raises(FormatError):
        systemd.timer("t", value)


def test_registry_unit_quotes_for_systemd_not_for_the_shell():
    unit = registry.registry_unit("/srv/reg+1")
    assert "ExecStartPre=/bin/sh /etc/airgap/registry/repair-storage.sh /srv/reg+1\n" in unit
    with pytest.raises(FormatError):
        unit_file.command(["relative/program"])


def test_deb822_values_stay_fields_apt_reads():
    text = deb822.paragraph([("Types", ["deb"]), ("URIs", ["https://[2001:db8::12]:8443/debian"]),
                             ("Suites", ["bookworm-updates"]), ("Components", ("main", "contrib")),
                             ("Signed-By", "/etc/apt/keyrings/airgap-debian.asc")])
    assert parsers.deb822(text) == [{"Types": "deb", "URIs": "https://[2001:db8::12]:8443/debian",
                                     "Suites": "bookworm-updates", "Components": "main contrib",
                                     "Signed-By": "/etc/apt/keyrings/airgap-debian.asc"}]


@pytest.mark.parametrize("field,value", [
    pytest.param("Suites", [NEWLINE], id="newline-new-field"),
    pytest.param("Suites", ["bookworm\n\nTypes: deb"], id="newline-new-paragraph"),
    pytest.param("Components", ["main contrib"], id="blank-in-a-word"),
    pytest.param("Signed-By", " /etc/k.asc", id="leading-blank"),
    pytest.param("Signed-By", "#/etc/k.asc", id="comment"),
    pytest.param("URIs", [f"https://{CYRILLIC}/"], id="non-ascii"),
])
def test_deb822_refuses_what_would_be_another_field(field, value):
    with pytest.raises(FormatError):
        deb822.paragraph([(field, value)])


def test_repo_files_are_read_by_dnf_as_written():
    text = repo.repo_file("airgap-baseos", [("name", "baseos (airgap mirror)"), ("baseurl", "https://m:8444/baseos"),
                                            ("gpgcheck", 1)])
    assert parsers.repo_file(text) == {"airgap-baseos": {"name": "baseos (airgap mirror)",
                                                         "baseurl": "https://m:8444/baseos", "gpgcheck": "1"}}


@pytest.mark.parametrize("value", ["https://m/$releasever", "x\ngpgcheck=0", "x\n gpgcheck=0", " x", "x]"])
def test_repo_refuses_variables_and_line_breaks(value):
    with pytest.raises(FormatError):
        repo.repo_file("airgap-x" if value != "x]" else value, [("baseurl", value)])


def test_apt_conf_scopes_the_ca_to_one_host():
    line = apt_conf.ca_info("https", "Mirror.Internal", "/etc/apt/keyrings/airgap-mirror-ca.crt")
    assert parsers.apt_conf(line) == {
        "Acquire::https::mirror.internal::CaInfo": "/etc/apt/keyrings/airgap-mirror-ca.crt"}
    for host, path in (("2001:db8::12", "/ca.crt"), ("mirror", '/ca.crt";Acquire::x "y'), (ZONE_ID, "/ca.crt")):
        with pytest.raises(FormatError):
            apt_conf.ca_info("https", host, path)


def test_hosts_toml_keeps_a_hostile_endpoint_one_string_and_one_table():
    text = registry_clients.hosts_toml("docker.io", TOML_BREAK, "/etc/containerd/certs.d/ca.crt", "docker.io")
    config = tomllib.loads(text)
    assert config["server"] == f"https://{TOML_BREAK}"
    assert list(config["host"]) == [f"https://{TOML_BREAK}/v2/docker.io"]
    assert text.startswith("# docker.io is pulled")


@pytest.mark.parametrize("upstream", ["../etc", "docker.io\n[host]", "a b", "docker.io:99999", ZONE_ID])
def test_hosts_toml_refuses_what_is_no_registry_directory(upstream):
    with pytest.raises(FormatError):
        registry_clients.hosts_toml(upstream, "r:5443", "/ca.crt", "x")
    with pytest.raises(FormatError):
        toml.dumps({}, comment="a\nb = 1")


def test_corefile_block_is_one_block_with_one_forward():
    block = coredns.server_block("Airgap.Test", 53, [("errors",), ("forward", ".", coredns.upstream("10.0.0.53"),
                                                                   coredns.upstream("2001:db8::53"))])
    assert parsers.corefile(block) == [["airgap.test:53", [["errors"], ["forward", ".", "10.0.0.53",
                                                                         "[2001:db8::53]:53"]]]]


@pytest.mark.parametrize("zone,server", [(CORE_BREAK, "10.0.0.53"), ("airgap.test", "10.0.0.53 {$HOME}"),
                                         ("airgap.test", "dns.internal"), ("airgap.test", ZONE_ID)])
def test_corefile_refuses_blocks_inside_values(zone, server):
    with pytest.raises(FormatError):
        coredns.server_block(zone, 53, [("forward", ".", coredns.upstream(server))])


def test_ck8s_relay_and_dns_servers_accept_ipv6():
    common, sc = ck8s.overrides(ck8s.Ck8sInputs(dns_zone="airgap.test", dns_servers=("2001:db8::53",),
                                                alert_email="ops@airgap.test", smtp_smarthost="[2001:db8::25]:25"))
    assert "forward . [2001:db8::53]:53" in yaml.safe_load(ck8s.to_yaml(common))["nodeLocalDns"]["customConfig"]
    assert common["networkPolicies"]["alertmanager"]["alertReceivers"] == {"ips": ["2001:db8::25/128"],
                                                                             "ports": [25]}


def test_ssh_proxy_command_is_words_for_the_shell_and_tokens_for_ssh():
    command = ssh.proxy_command(ssh_read.CLIENT, "jump%r", "10.0.0.9", 2222, "2001:db8::11")
    words = shlex.split(command)
    assert words[-3:] == ["-W", "[%h]:%p", "jump%%r@10.0.0.9"], "ssh expands %%, never the user's %r"
    assert words[:3] == ["ssh", "-F", "/dev/null"]
    # ssh itself reads the option as one ProxyCommand
    shown = subprocess.run(["ssh", "-G", "-F", "/dev/null", "-o", f"ProxyCommand={command}", "-p", "22",
                            "root@2001:db8::11"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert f"proxycommand {command}" in shown.stdout.splitlines()


@pytest.mark.parametrize("hop", [
    pytest.param(Hop(ZONE_ID, 22, "root", "ssh-ed25519 AAAA"), id="zone-id"),
    pytest.param(Hop("10.0.0.5", 22, "-oProxyCommand=id", "ssh-ed25519 AAAA"), id="user-option"),
    pytest.param(Hop("10.0.0.5", 22, "root", "ssh-ed25519 AAAA\n10.6.6.6 ssh-ed25519 BBBB"), id="second-key"),
])
def test_ssh_read_refuses_hosts_that_would_change_the_command(hop):
    with pytest.raises(FormatError):
        ssh_read.read_command(hop, "true", Hop("10.0.0.9", 22, "jump", "ssh-ed25519 AAAA"))


def test_known_hosts_lines_bracket_a_port():
    assert ssh.known_host("2001:db8::11", 22, "ssh-ed25519 AAAA") == "2001:db8::11 ssh-ed25519 AAAA"
    assert ssh.known_host("2001:db8::11", 2222, "ssh-ed25519 AAAA") == "[2001:db8::11]:2222 ssh-ed25519 AAAA"


@pytest.mark.parametrize("path", ["a\nb", "a\\b", "", "x\r"])
def test_sha256sums_refuses_names_sha256sum_would_escape(path):
    with pytest.raises(FormatError):
        checksums.line("0" * 64, path)
