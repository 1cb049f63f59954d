"""The network audit of one host (airgap-infra): is it still isolated, and does it still reach what it needs?

    python3 network-audit.py PROBES_JSON              # as the SSH read at every `up` sends it
    python3 network-audit.py --probes-file FILE [--report FILE]   # as the host's timer runs it

The probes (rendered by components/render/firewall.py) list endpoints that must not answer and
the host's own allowed endpoints, which must. A must-fail endpoint passes only when nothing of
it reaches the host: a TCP connection that is refused was answered by the far end, and a UDP
datagram the host let out has left it, answer or not. A must-answer endpoint passes when a TCP
connection opens, or a DNS or NTP server answers a query. The report (one JSON line on stdout,
and in the report file) adds whether the lockdown table is loaded, its commit status and its
drop counters; `ok` is true when the table is loaded and nothing failed.
"""

import datetime
import errno
import json
import os
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

COMMIT = "/var/lib/airgap/network/commit"
# A DNS query for the root's NS records, and an NTP client request: any answer proves the server answers.
DNS_QUERY = b"\xa1\x7e\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x01"
NTP_QUERY = b"\x1b" + bytes(47)
BLOCKED_HERE = (errno.EPERM, errno.EACCES, errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EADDRNOTAVAIL)


def parse(probe):
    """`host:port/proto` -> (host, port, proto); IPv6 in brackets."""
    where, _, protocol = probe.rpartition("/")
    host, _, port = where.rpartition(":")
    return host.strip("[]"), int(port), protocol


def addresses(host, port, protocol):
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    try:
        return [(family, address) for family, _, _, _, address in socket.getaddrinfo(host, port, type=kind)]
    except socket.gaierror:
        return []


def tcp(host, port, timeout):
    """'answered', 'refused', 'blocked' (no way out of this host) or 'no answer', with a detail."""
    found = addresses(host, port, "tcp")
    if not found:
        return "blocked", "does not resolve here"
    outcome = ("no answer", "timed out")
    for family, address in found:
        with socket.socket(family, socket.SOCK_STREAM) as connection:
            connection.settimeout(timeout)
            try:
                connection.connect(address)
                return "answered", "connection opened to " + address[0]
            except ConnectionRefusedError:
                return "refused", "refused by " + address[0]
            except socket.timeout:
                outcome = ("no answer", "timed out")
            except OSError as error:
                if error.errno in BLOCKED_HERE:
                    outcome = ("blocked", os.strerror(error.errno))
    return outcome


def udp(host, port, timeout):
    """'answered', 'refused', 'blocked' (not sent: no way out of this host) or 'sent' (left, no answer)."""
    found = addresses(host, port, "udp")
    if not found:
        return "blocked", "does not resolve here"
    payload = DNS_QUERY if port == 53 else NTP_QUERY if port == 123 else b"airgap-infra audit\n"
    outcome = ("blocked", "not sent")
    for family, address in found:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(address)
                sock.send(payload)
            except OSError as error:
                outcome = ("blocked", os.strerror(error.errno or 0))
                continue
            try:
                sock.recv(512)
                return "answered", "answer from " + address[0]
            except ConnectionRefusedError:
                return "refused", "refused by " + address[0]
            except socket.timeout:
                outcome = ("sent", "left this host; no answer from " + address[0])
            except OSError as error:
                outcome = ("sent", "left this host: " + os.strerror(error.errno or 0))
    return outcome


def must_fail(probe, timeout):
    host, port, protocol = parse(probe)
    result, detail = (tcp if protocol == "tcp" else udp)(host, port, timeout)
    entry = {"probe": probe, "result": result, "detail": detail}
    if result in ("answered", "refused", "sent"):
        entry["failure"] = f"{probe} must not be reachable from this host: {detail}"
    return entry


def must_answer(item, timeout):
    probe = item["probe"]
    host, port, protocol = parse(probe)
    entry = {"probe": probe, "needed_by": item["needed_by"]}
    if protocol == "udp" and port not in (53, 123):
        entry.update(result="not probed", detail="udp: no generic question gets an answer")
        return entry
    result, detail = (tcp if protocol == "tcp" else udp)(host, port, timeout)
    entry.update(result=result, detail=detail)
    if result != "answered":
        entry["failure"] = f"{probe} ({item['needed_by']}) must answer this host: {detail}"
    return entry


def lockdown():
    """(table loaded?, drop counters) from nft."""
    try:
        listed = subprocess.run(["nft", "-j", "list", "counters", "table", "inet", "airgap"],
                                capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False, {}
    if listed.returncode != 0:
        return False, {}
    counters = {}
    for item in json.loads(listed.stdout.decode() or "{}").get("nftables", []):
        counter = item.get("counter")
        if counter:
            counters[counter["name"]] = {"packets": counter.get("packets", 0), "bytes": counter.get("bytes", 0)}
    return True, counters


def audit(probes):
    timeout = probes.get("timeout", 3)
    with ThreadPoolExecutor(max_workers=16) as pool:
        failing = list(pool.map(lambda p: must_fail(p, timeout), probes["mustFail"]))
        answering = list(pool.map(lambda i: must_answer(i, timeout), probes["mustAnswer"]))
    loaded, counters = lockdown()
    try:
        with open(COMMIT) as status:
            commit = status.readline().strip()
    except OSError:
        commit = ""
    failures = [] if loaded else ["the lockdown table (inet airgap) is not loaded"]
    failures += [entry["failure"] for entry in failing + answering if "failure" in entry]
    return {
        "host": probes["host"], "ok": not failures, "failures": failures, "table": "loaded" if loaded else "absent",
        "commit": commit, "dropped": counters, "mustFail": failing, "mustAnswer": answering,
        "skipped": probes.get("skipped", []),
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write_report(path, text):
    """Atomically: a reader sees the previous report or this one, never half of one."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    handle, staged = tempfile.mkstemp(dir=directory, prefix=".audit-")
    with os.fdopen(handle, "w") as out:
        out.write(text)
    os.chmod(staged, 0o644)
    os.replace(staged, path)


def main(argv):
    if argv[:1] == ["--probes-file"]:
        with open(argv[1]) as source:
            probes = json.load(source)
        argv = argv[2:]
    else:
        probes, argv = json.loads(argv[0]), argv[1:]
    text = json.dumps(audit(probes), sort_keys=True) + "\n"
    if argv[:1] == ["--report"]:
        write_report(argv[1], text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
