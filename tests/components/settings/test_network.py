"""`network`: admin addresses, resolvers, extra destinations, opt-outs and the audit's probes,
each refused with the key named; and a lockdown that would cut a host off from what it needs
(a name without a resolver, a registry filled from the internet)."""

import pytest

from components import egress

from .stack_edits import DELETE, SANDBOX, assert_refused, edits, loaded_settings, set_path, with_changes

LOCKED = set_path("network.optOut", {})  # the sandbox stack opts every host out; these cases lock them down
ALLOW = {"to": "10.9.0.0/16", "port": 443, "why": "the organisation's artifact proxy"}

CASES = [
    pytest.param(set_path("network.adminAddresses", ["10.0.0.0/33"]), "network.adminAddresses[0]",
                 "not an IP address or CIDR block", id="admin-prefix"),
    pytest.param(set_path("network.adminAddresses", ["10.0.0.1/24"]), "network.adminAddresses[0]",
                 "has host bits set", id="admin-host-bits"),
    pytest.param(set_path("network.adminAddresses", ["admin.corp"]), "network.adminAddresses[0]",
                 "not an IP address or CIDR block", id="admin-name"),
    pytest.param(set_path("network.adminAddresses", ["10.0.0.5", "10.0.0.5"]), "network.adminAddresses[1]",
                 "each must be unique", id="admin-twice"),
    pytest.param(set_path("network.dns", ["dns.corp.example"]), "network.dns[0]", "resolvers are reached by address",
                 id="dns-name"),
    pytest.param(set_path("network.ntp", ["ntp;reboot"]), "network.ntp[0]", "neither an IP address nor a DNS name",
                 id="ntp-injection"),
    pytest.param(set_path("network.smtp", "relay.corp.example"), "network.smtp", "not host:port of the mail relay",
                 id="smtp-no-port"),
    pytest.param(set_path("network.smtp", "relay.corp.example:70000"), "network.smtp", "not host:port",
                 id="smtp-port"),
    pytest.param(set_path("network.allow", [{"to": "10.9.0.0/16", "port": 443}]), "network.allow[0].why",
                 "Field required", id="allow-no-why"),
    pytest.param(set_path("network.allow", [{**ALLOW, "why": "x"}]), "network.allow[0].why", "is not a reason",
                 id="allow-why-short"),
    pytest.param(set_path("network.allow", [{**ALLOW, "why": 'the "proxy" of the org'}]), "network.allow[0].why",
                 "is not a reason", id="allow-why-quote"),
    pytest.param(set_path("network.allow", [{"port": 443, "why": ALLOW["why"]}]), "network.allow[0]",
                 "give exactly one of to and service", id="allow-neither"),
    pytest.param(set_path("network.allow", [{**ALLOW, "service": "fileServer"}]), "network.allow[0]",
                 "give exactly one of to and service", id="allow-both"),
    pytest.param(set_path("network.allow", [{"to": "10.9.0.1", "why": ALLOW["why"]}]), "network.allow[0].port",
                 "required with to", id="allow-no-port"),
    pytest.param(set_path("network.allow", [{"service": "fileServer", "port": 80, "why": ALLOW["why"]}]),
                 "network.allow[0].port", "applies only with to; a service's port is its own", id="allow-service-port"),
    pytest.param(set_path("network.allow", [{**ALLOW, "to": "10.9.0.0/8"}]), "network.allow[0].to",
                 "has host bits set", id="allow-host-bits"),
    pytest.param(set_path("network.allow", [{**ALLOW, "hosts": ["ghost"]}]), "network.allow[0].hosts[0]",
                 "no host named 'ghost'", id="allow-host"),
    pytest.param(set_path("network.allow", [{**ALLOW, "protocol": "icmp"}]), "network.allow[0].protocol",
                 "'tcp' or 'udp'", id="allow-protocol"),
    pytest.param(edits(set_path("fileServer", {}), set_path("ck8s", {}),
                       set_path("network.allow", [{"service": "fileServer", "why": ALLOW["why"]}])),
                 "network.allow[0].service", "no fileServer is configured", id="allow-service-absent"),
    pytest.param(set_path("network.optOut", {"ghost": "it is somebody else's machine"}), "network.optOut.ghost",
                 "no host named 'ghost'", id="opt-out-host"),
    pytest.param(set_path("network.optOut.client", "because"), "network.optOut.client", "is not a reason",
                 id="opt-out-no-reason"),
    pytest.param(set_path("network.rollbackSeconds", 5), "network.rollbackSeconds", "greater than or equal to 10",
                 id="rollback-short"),
    pytest.param(set_path("network.containerNetworks", ["172.17.0.1/16"]), "network.containerNetworks[0]",
                 "has host bits set", id="containers-host-bits"),
    pytest.param(set_path("network.audit.mustFail", ["8.8.8.8:53"]), "network.audit.mustFail[0]",
                 "is not host:port/tcp or host:port/udp", id="probe-no-protocol"),
    pytest.param(set_path("network.audit.mustFail", ["2001:4860:4860::8888:53/udp"]), "network.audit.mustFail[0]",
                 "is not host:port/tcp", id="probe-v6-brackets"),
    pytest.param(set_path("network.audit.mustFail", ["[8.8.8.8]:53/udp"]), "network.audit.mustFail[0]",
                 "puts an IPv4 address in brackets", id="probe-v4-brackets"),
    pytest.param(set_path("network.audit.mustFail", ["example.com:0/tcp"]), "network.audit.mustFail[0]",
                 "port outside 1-65535", id="probe-port"),
    pytest.param(set_path("network.audit.mustFail", ["exa_mple.com:443/tcp"]), "network.audit.mustFail[0]",
                 "names neither an address nor a DNS name", id="probe-host"),
    pytest.param(set_path("network.audit.schedule", "daily; reboot"), "network.audit.schedule",
                 "not a systemd OnCalendar", id="audit-schedule"),
    pytest.param(set_path("network.lockdown", False), "network.lockdown", "unknown key", id="unknown-key"),
    pytest.param(edits(LOCKED, set_path("aptMirror.repos.0.url", "http://deb.upstream.test/debian")), "network.dns",
                 "host 'mirror' reaches deb.upstream.test by name; list the DNS servers", id="name-without-dns"),
    pytest.param(edits(LOCKED, set_path("registry.fill.upstreams", {"quay.io": "127.0.0.2:5000/quay.io"})),
                 "images[0]", "docker.io/airgaptest/app-01:1.0 would be fetched from the public registry docker.io, "
                 "which host 'registry' may not reach", id="fill-from-internet"),
    pytest.param(edits(LOCKED, set_path("network.adminAddresses", ["127.0.0.1"]),
                       set_path("hosts.bastion.address", "jump.airgap.test")),
                 "hosts.bastion.address", "is a name, and host 'registry' behind it takes SSH only from addresses",
                 id="bastion-by-name"),
]


@pytest.mark.parametrize("edit,path,message", CASES)
def test_bad_network_settings_are_refused(edit, path, message):
    assert_refused(with_changes(edit), path, message)


def settings_of(edit):
    return loaded_settings(with_changes(edit))


def test_good_values_are_normalised_and_accepted():
    settings = settings_of(edits(LOCKED, set_path("network", {
        "adminAddresses": ["10.0.0.5", "FD00::/64"], "dns": ["10.0.0.53"], "ntp": ["NTP.corp.example"],
        "smtp": "Relay.corp.example:25",
        "allow": [{"to": "Proxy.corp.example", "port": 3128, "why": "the organisation's proxy for CRLs"},
                  {"service": "fileServer", "hosts": ["client"], "why": "nodes fetch artifacts"}],
        "audit": {"mustFail": ["[2001:DB8::1]:53/udp", "Example.com:443/tcp"]}})))
    network = settings.network
    assert network.admin_addresses == ("10.0.0.5", "fd00::/64")
    assert network.ntp == ("ntp.corp.example",)
    assert network.smtp == "relay.corp.example:25"
    assert network.allow[0].to == "proxy.corp.example"
    assert network.audit.must_fail == ("[2001:db8::1]:53/udp", "example.com:443/tcp")
    client = egress.egress(settings, "client")
    assert ("127.0.0.12", "tcp", 8445, "network.allow") in {(e.address, e.protocol, e.port, e.component)
                                                           for e in client}, "fileServer: where its clients go"
    assert egress.named_destinations(settings, "client") == ["ntp.corp.example", "proxy.corp.example",
                                                            "relay.corp.example"]


def test_every_managed_host_is_locked_down_unless_it_opts_out():
    assert egress.managed_hosts(settings_of(LOCKED)) == ["client", "mirror", "registry"]
    assert egress.locked_down_hosts(settings_of(LOCKED)) == ["client", "mirror", "registry"]
    assert egress.locked_down_hosts(settings_of(lambda config: None)) == [], "the sandbox stack opts every host out"
    one_out = settings_of(set_path("network.optOut", {"client": "a workstation the admins manage themselves"}))
    assert egress.locked_down_hosts(one_out) == ["mirror", "registry"]
    assert "bastion" not in egress.managed_hosts(one_out), "a host that only forwards SSH runs no step"


def test_ssh_sources_are_the_admin_addresses_and_the_bastion():
    settings = settings_of(edits(LOCKED, set_path("network.adminAddresses", ["10.77.0.1"])))
    assert egress.ssh_sources(settings, "registry") == ("10.77.0.1", "127.0.0.10"), "registry sits behind the bastion"
    assert egress.ssh_sources(settings, "client") == ("10.77.0.1",)
    assert egress.ssh_sources(settings_of(LOCKED), "client") == (), "no admin addresses: SSH from anywhere"


def test_a_layout_or_the_admin_runner_needs_no_upstream():
    for edit in (set_path("registry.fill.runner", "admin"),
                 set_path("registry.fill.ociLayout", "sandbox/data/trivy-layout")):
        settings = settings_of(edits(LOCKED, set_path("registry.fill.upstreams", {}), set_path("trivyDb", DELETE),
                                     edit))
        assert egress.public_fill_sources(settings) == []
        assert [e for e in egress.egress(settings, "registry") if e.component == "registry fill"] == []
    assert SANDBOX.values["airgap-infra:network"]["optOut"], "the shipped sandbox stack opts out"


def test_harbor_reaches_its_upstreams_and_the_registry_its_scanner_reads(tmp_path):
    from .test_harbor import harbor_stack

    config = harbor_stack(tmp_path)
    config.values["airgap-infra:harbor"] |= {"host": "mirror", "fill": {"upstreams": {"docker.io": "10.9.0.5/hub"}}}
    settings = loaded_settings(config)
    harbor = [e for e in egress.egress(settings, "mirror") if e.component.startswith("harbor")]
    assert [(e.address, e.port, e.label) for e in harbor] == [
        ("10.9.0.5", 443, "harbor fill: docker.io"),
        ("127.0.0.11", 5443, "harbor scanner: its databases from the registry")]
