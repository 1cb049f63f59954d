"""`hosts`: addresses, pinned host keys, logins, bastions and SSH key secrets, each refused
with the key named before any resource exists."""

import pytest

from .stack_edits import DELETE, ED25519, assert_refused, set_path, with_changes

CASES = [
    pytest.param(set_path("hosts.registry.address", "127.0.0.11; rm -rf /"), "hosts.registry.address", "neither an IP",
                 id="address-injection"),
    pytest.param(set_path("hosts.registry.address", "$(reboot)"), "hosts.registry.address", "neither an IP",
                 id="address-subshell"),
    pytest.param(set_path("hosts.registry.port", 0), "hosts.registry.port", "greater than or equal to 1",
                 id="port-zero"),
    pytest.param(set_path("hosts.registry.port", 70000), "hosts.registry.port", "less than or equal to 65535",
                 id="port-high"),
    pytest.param(set_path("hosts.registry.port", "22"), "hosts.registry.port", "valid integer", id="port-string"),
    pytest.param(set_path("hosts.registry.user", "root;id"), "hosts.registry.user", "not a login name",
                 id="user-injection"),
    pytest.param(set_path("hosts.registry.hostKey", DELETE), "hosts.registry.hostKey", "required",
                 id="hostkey-missing"),
    pytest.param(set_path("hosts.registry.hostKey", "ssh-ed25519 not$base64"), "hosts.registry.hostKey",
                 "not base64", id="hostkey-garbage"),
    pytest.param(set_path("hosts.registry.hostKey", "ssh-rsa " + ED25519.split()[1]), "hosts.registry.hostKey",
                 "does not hold a ssh-rsa key", id="hostkey-wrong-type"),
    pytest.param(set_path("hosts.registry.hostKey", "ssh-dss AAAA"), "hosts.registry.hostKey", "types:",
                 id="hostkey-unknown-type"),
    pytest.param(set_path("hosts.registry.bastion", "nope"), "hosts.registry.bastion",
                 "no host named 'nope'; known: bastion, client, mirror, registry", id="bastion-unknown"),
    pytest.param(set_path("hosts.registry.bastion", "registry"), "hosts.registry.bastion", "its own bastion",
                 id="bastion-self"),
    pytest.param(set_path("hosts.bastion.bastion", "mirror"), "hosts.registry.bastion",
                 "'bastion' itself has a bastion; one hop is supported", id="bastion-chain"),
    pytest.param(set_path("hosts.registry.sudo", "yes"), "hosts.registry.sudo", "valid boolean", id="sudo-string"),
    pytest.param(set_path("hosts.Bad_Name", {"address": "127.0.0.9", "hostKey": ED25519}), "hosts.Bad_Name",
                 "not a host name", id="host-name"),
    pytest.param(set_path("hosts.registry.adress", "x"), "hosts.registry.adress", "unknown key",
                 id="host-misspelt-key"),
    pytest.param(set_path("hosts.registry.privateKeySecret", "no key"), "hosts.registry.privateKeySecret",
                 "not a secret name", id="secret-name"),
    pytest.param(set_path("secrets.sshPrivateKey", DELETE), "hosts.registry.privateKeySecret",
                 "secret 'sshPrivateKey' is not set; set it with "
                 "`pulumi config set --secret --path secrets.sshPrivateKey",
                 id="ssh-key-missing"),
    pytest.param(set_path("secrets.sshPrivateKey", ""), "hosts.registry.privateKeySecret", "is empty",
                 id="ssh-key-empty"),
    pytest.param(set_path("secrets.sshPrivateKey", "hunter2-not-a-key"), "hosts.registry.privateKeySecret",
                 "not a PEM/OpenSSH private key", id="ssh-key-not-a-key"),
    # valid for ipaddress, hostile to the shell behind a ProxyCommand, nginx, deb822, TOML, CoreDNS
    pytest.param(set_path("hosts.registry.address", "2001:db8::10%$(reboot)"), "hosts.registry.address",
                 "zone id", id="address-zone-id-shell"),
    pytest.param(set_path("hosts.mirror.address", "2001:db8::12%x;}server{listen 80;root /;}#"),
                 "hosts.mirror.address", "zone id", id="address-zone-id-nginx"),
    pytest.param(set_path("hosts.mirror.address", "2001:db8::12%\nTrusted: yes"), "hosts.mirror.address",
                 "zone id", id="address-zone-id-newline"),
    pytest.param(set_path("hosts.registry.address", "fe80::11"), "hosts.registry.address", "link-local",
                 id="address-link-local"),
    # addresses of no single machine
    pytest.param(set_path("hosts.registry.address", "0.0.0.0"), "hosts.registry.address", "unspecified",
                 id="address-unspecified"),
    pytest.param(set_path("hosts.registry.address", "::"), "hosts.registry.address", "unspecified",
                 id="address-unspecified-ipv6"),
    pytest.param(set_path("hosts.registry.address", "224.0.0.11"), "hosts.registry.address", "multicast",
                 id="address-multicast"),
    pytest.param(set_path("hosts.registry.address", "255.255.255.255"), "hosts.registry.address", "broadcast",
                 id="address-broadcast"),
    # names that are addresses, and names that only look right
    pytest.param(set_path("hosts.registry.address", "127.11"), "hosts.registry.address",
                 "reads as an IPv4 address", id="address-inet-aton"),
    pytest.param(set_path("hosts.registry.address", "registry.ехample"), "hosts.registry.address", "ASCII",
                 id="address-cyrillic"),
    pytest.param(set_path("hosts.registry.address", "１２７.0.0.11"), "hosts.registry.address", "ASCII",
                 id="address-full-width"),
    pytest.param(set_path("hosts.registry.hostKey", "ssh-ed25519 АААА"), "hosts.registry.hostKey", "not base64",
                 id="hostkey-cyrillic"),
    # one machine on the network among loopback ones: clients would reach themselves
    pytest.param(set_path("hosts.client.address", "10.0.0.13"), "hosts.client.address",
                 "10.0.0.13 is on the network, while hosts bastion, mirror, registry are on this machine's loopback",
                 id="address-loopback-mix"),
    # listeners compared by address and port: a service on a host's SSH port
    pytest.param(set_path("registry.port", 22), "registry.port",
                 "22 is also hosts.registry.port (SSH) on host 'registry'", id="port-on-ssh"),
]


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_hosts_are_refused(edit, path, message):
    assert_refused(with_changes(edit), path, message)
