"""Several network namespaces on one Ethernet segment: hosts, an admin machine and an "internet"
that can reach each other and nothing else, over IPv4 and IPv6.

A host's egress lockdown is an nftables table in its network namespace, so proving it needs
hosts with namespaces of their own (sandbox hosts share the machine's). `Lan` makes a switch,
a namespace holding only a bridge, and `join` adds a member: a `NetNamespace` (tests/harness/
netns.py: `run`, `popen`, `etc_dir`, `close` by PID) whose `eth0` is plugged into the bridge,
with `<subnet>.<index>` and `<prefix>::<index>`. No member has a route off the segment and the
switch has no address, so test traffic stays on it.

    with Lan("fw") as lan:
        admin, internet, client = lan.join("admin", 1), lan.join("internet", 2), lan.join("client", 13)
        client.run(["ping", "-c1", internet.address])

`entered(member)` moves the calling thread into a member's namespace for a block: what it
starts (processes, threads, sockets) lives there, which is how the upstream fixtures are started
"on the internet" without changing them. `reaches(member, address, port, protocol)` says whether
a member gets an answer, and `EchoServer` answers TCP and UDP on a member's addresses.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.harness.netns import RUN_NETNS, NetNamespace, NetNamespaceError, _ip, remove_stale

CLONE_NEWNET = 0x40000000
BRIDGE = "br0"
REACH_TIMEOUT_S = 2.0

# Run inside a member: one probe, exit 0 when answered (a TCP connection or a UDP reply).
_PROBE = """\
import socket, sys
address, port, protocol, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
family = socket.AF_INET6 if ":" in address else socket.AF_INET
kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
with socket.socket(family, kind) as s:
    s.settimeout(timeout)
    try:
        s.connect((address, port))
        if protocol == "udp":
            s.send(b"ping")
            s.recv(16)
    except OSError as error:
        print(error)
        sys.exit(1)
"""

# Run inside a member: TCP and UDP echo on each address given, port argv[1], until killed.
_ECHO = """\
import socket, sys, threading
port = int(sys.argv[1])
def tcp(address):
    server = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, port)); server.listen()
    while True:
        connection, _ = server.accept()
        with connection:
            connection.sendall(b"echo\\n")
def udp(address):
    server = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((address, port))
    while True:
        data, peer = server.recvfrom(512)
        server.sendto(data, peer)
for address in sys.argv[2:]:
    for serve in (tcp, udp):
        threading.Thread(target=serve, args=(address,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""


class LanMember(NetNamespace):
    """A namespace plugged into a bridge in another namespace: `eth0` with an IPv4 and an IPv6
    address (and a default route through `gateway`, when given: a container behind its host)."""

    def __init__(self, name: str, address: str, address6: str, switch: str, bridge: str, port: str,
                 gateway: tuple[str, str] | None = None) -> None:
        super().__init__(name, address, hosts={})
        self.interface6 = ipaddress.IPv6Interface(address6)
        self._switch, self._bridge, self._port, self._gateway = switch, bridge, port, gateway

    @property
    def address6(self) -> str:
        return str(self.interface6.ip)

    def open(self) -> LanMember:
        self.etc_dir.mkdir(parents=True)
        (self.etc_dir / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        (self.etc_dir / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        self._open = True
        try:
            _ip("netns", "add", self.name)
            _ip("-n", self.name, "link", "set", "lo", "up")
            _ip("-n", self._switch, "link", "add", self._port, "type", "veth",
                "peer", "name", "eth0", "netns", self.name)
            _ip("-n", self._switch, "link", "set", self._port, "master", self._bridge, "up")
            _ip("-n", self.name, "addr", "add", str(self.interface), "dev", "eth0")
            _ip("-n", self.name, "addr", "add", str(self.interface6), "dev", "eth0", "nodad")
            _ip("-n", self.name, "link", "set", "eth0", "up")
            if self._gateway:
                _ip("-n", self.name, "route", "add", "default", "via", self._gateway[0])
                _ip("-n", self.name, "-6", "route", "add", "default", "via", self._gateway[1])
        except BaseException:
            self.close()
            raise
        return self


def attach_container(host: NetNamespace, name: str, index: int = 2, subnet: str = "172.17.0.0/16",
                     subnet6: str = "fd00:d0c::/64") -> LanMember:
    """A "container" behind `host`, as Docker makes one: a bridge `docker0` in the host holding the
    gateway addresses (`.1`), forwarding on, and a namespace on that bridge at `.index`."""
    network, network6 = ipaddress.IPv4Network(subnet), ipaddress.IPv6Network(subnet6)
    gateway, gateway6 = str(network[1]), str(network6[1])
    if host.run(["ip", "link", "show", "docker0"], capture_output=True).returncode != 0:
        _ip("-n", host.name, "link", "add", "docker0", "type", "bridge")
        _ip("-n", host.name, "addr", "add", f"{gateway}/{network.prefixlen}", "dev", "docker0")
        _ip("-n", host.name, "addr", "add", f"{gateway6}/{network6.prefixlen}", "dev", "docker0", "nodad")
        _ip("-n", host.name, "link", "set", "docker0", "up")
        sysctl(host, "net.ipv4.ip_forward", "1")
        sysctl(host, "net.ipv6.conf.all.forwarding", "1")
    container = LanMember(name, f"{network[index]}/{network.prefixlen}", f"{network6[index]}/{network6.prefixlen}",
                          host.name, "docker0", f"veth{index}", gateway=(gateway, gateway6))
    return container.open()


class _Switch(NetNamespace):
    """The namespace holding the bridge: no address, nothing runs in it."""

    def __init__(self, name: str) -> None:
        super().__init__(name, "10.255.255.1/32", hosts={})

    def open(self) -> _Switch:
        self.etc_dir.mkdir(parents=True)
        self._open = True
        try:
            _ip("netns", "add", self.name)
            _ip("-n", self.name, "link", "add", BRIDGE, "type", "bridge")
            _ip("-n", self.name, "link", "set", BRIDGE, "up")
        except BaseException:
            self.close()
            raise
        return self


class Lan:
    """A switch and the members joined to it; `close()` closes the members, then the switch."""

    def __init__(self, name: str, subnet: str = "10.77.0.0/24", subnet6: str = "fd77::/64") -> None:
        self.subnet = ipaddress.IPv4Network(subnet)
        self.subnet6 = ipaddress.IPv6Network(subnet6)
        self._switch = _Switch(f"{name}-switch")
        self.members: list[LanMember] = []

    def open(self) -> Lan:
        remove_stale()
        self._switch.open()
        return self

    def join(self, name: str, index: int) -> LanMember:
        address = f"{self.subnet[index]}/{self.subnet.prefixlen}"
        address6 = f"{self.subnet6[index]}/{self.subnet6.prefixlen}"
        member = LanMember(name, address, address6, self._switch.name, BRIDGE, f"port{index}")
        self.members.append(member)
        return member.open()

    def close(self) -> None:
        errors = []
        for member in reversed(self.members):
            try:
                member.close()
            except NetNamespaceError as error:
                errors.append(str(error))
        self._switch.close()
        if errors:
            raise NetNamespaceError("; ".join(errors))

    def adopt(self, member: LanMember) -> LanMember:
        """Close `member` (e.g. a container behind a member) with the others, before them."""
        self.members.append(member)
        return member

    def leftovers(self) -> list[str]:
        return [found for ns in (*self.members, self._switch) for found in ns.leftovers()]

    def __enter__(self) -> Lan:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


@contextlib.contextmanager
def entered(ns: NetNamespace) -> Iterator[None]:
    """The calling thread in `ns`'s network namespace for the block (and back after it). Processes
    and threads started meanwhile, and sockets opened, stay in `ns`."""
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(RUN_NETNS / ns.name, os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def reaches(member: NetNamespace, address: str, port: int, protocol: str = "tcp",
            timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether `member` gets an answer from address:port (a TCP connection, a UDP reply)."""
    result = member.run([sys.executable, "-c", _PROBE, address, str(port), protocol, str(timeout)],
                        capture_output=True, text=True, timeout=timeout + 30)
    return result.returncode == 0


class EchoServer:
    """TCP and UDP echo on `port` of each of `addresses`, inside `member`; stopped with the member."""

    def __init__(self, member: NetNamespace, addresses: list[str], port: int = 7) -> None:
        self.port = port
        self._process = member.popen([sys.executable, "-c", _ECHO, str(port), *addresses],
                                     stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "ready":
            raise NetNamespaceError(f"echo server in {member.name} did not start")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=10)


def sysctl(member: NetNamespace, key: str, value: str) -> None:
    path = Path("/proc/sys") / key.replace(".", "/")
    result = member.run(["sh", "-c", f"echo {value} > {path}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise NetNamespaceError(f"sysctl {key}={value} in {member.name}: {result.stderr.strip()}")
