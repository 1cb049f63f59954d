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
]


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_hosts_are_refused(edit, path, message):
    assert_refused(with_changes(edit), path, message)
