"""Networking for real: a network namespace made here plays the host.

The bridge, dnsmasq, the port forwards and the containers all live inside it; every
packet these tests send goes between namespaces they made. prodng runs in it through
nsenter (only the network namespace changes: the pool and cgroups stay the host's).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import Prodng, own_netns

pytestmark = [pytest.mark.root]

HOSTNS = f"prodng-t{os.getpid()}"
GATEWAY = "10.89.0.1"

DNS_QUERY = r"""
import socket, struct, sys
name = sys.argv[2]
question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + question, (sys.argv[1], 53))
answer = s.recv(512)
print(socket.inet_ntoa(answer[-4:]) if struct.unpack(">H", answer[6:8])[0] else "")
"""

FETCH = r"""
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
    print(s.recv(100).decode().strip())
"""


def in_host(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", HOSTNS, *cmd], capture_output=True, text=True, check=check, timeout=60
    )


def server(name: str, port: int = 80) -> str:
    """A TCP service from the template's perl-base: answers 'hello from NAME' and closes."""
    listen = f"$s=IO::Socket::INET->new(LocalPort=>{port},Listen=>9,ReuseAddr=>1) or die $!;"
    answer = f'while($c=$s->accept){{print $c "hello from {name}\\n"; close $c}}'
    return f"perl -MIO::Socket::INET -e '{listen} {answer}'"


def fetch_inside(net: Prodng, container: str, host: str, port: int = 80) -> str:
    result = net(
        "exec", container, "--", "timeout", "5", "bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}; cat <&3", check=False
    )
    return result.stdout.strip()


def fetch_from_host(address: str, port: int) -> str:
    result = in_host("python3", "-c", FETCH, address, str(port), check=False)
    return result.stdout.strip() or result.stderr.strip().splitlines()[-1]


def links() -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in in_host("ip", "-o", "link").stdout.splitlines()]


def forwards() -> str:
    return in_host("nft", "list", "map", "ip", "prodng0", "forwards", check=False).stdout


ROOTS: list[Path] = []  # the root the `net` fixture drives


def runtime_dir() -> Path:
    """prodng's /run directory for the test's root in the test's host namespace (named as
    network.wiring names it: the root's hash, the namespace's inode)."""
    inode = os.stat(f"/run/netns/{HOSTNS}").st_ino
    directory = Path("/run/prodng") / f"{hashlib.sha256(str(ROOTS[-1]).encode()).hexdigest()[:8]}-{inode}"
    assert directory.is_dir(), directory
    return directory


def dnsmasq_pid() -> int:
    return int((runtime_dir() / "dnsmasq.pid").read_text())


def leases() -> str:
    return (runtime_dir() / "leases").read_text()


@pytest.fixture(scope="module")
def net(session_root: Path, template: str) -> Iterator[Prodng]:
    # The dnsmasq and keeper server prodng starts in there go by their pids; the bridge with the namespace.
    with own_netns(session_root, HOSTNS) as prodng:
        ROOTS.append(session_root)
        yield prodng


@pytest.fixture
def names(net: Prodng) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        net("rm", "-f", name, check=False)


def wired(net: Prodng, name: str) -> dict[str, object]:
    interface = net.info(name)["interface"]
    assert isinstance(interface, dict), interface
    return interface


def test_two_dhcp_containers_get_leases_and_reach_each_other_by_name(net: Prodng, names: list[str]) -> None:
    names += ["alpha", "beta"]
    for name in names:
        net("bookworm", "dhcp", "--name", name, "--exec", server(name))
    alpha, beta = wired(net, "alpha"), wired(net, "beta")
    assert alpha["ip"] != beta["ip"]
    assert str(alpha["ip"]).startswith("10.89.") and alpha["gateway"] == GATEWAY
    listed = {row["name"]: row["ip"] for row in net.json("ls")}  # type: ignore[attr-defined]
    assert listed["alpha"] == alpha["ip"] and listed["beta"] == beta["ip"]
    # By name, through dnsmasq, from each other and from the host.
    assert fetch_inside(net, "alpha", "beta.prodng") == "hello from beta"
    assert fetch_inside(net, "beta", "alpha") == "hello from alpha"  # search domain prodng
    assert in_host("python3", "-c", DNS_QUERY, GATEWAY, "beta.prodng").stdout.strip() == beta["ip"]
    as_nobody = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "getent", "hosts", "beta.prodng")
    assert str(beta["ip"]) in net("exec", "alpha", "--", *as_nobody).stdout  # services rarely run as root
    # The address is on eth0 inside, and the lease is dnsmasq's.
    assert str(alpha["ip"]) in net("exec", "alpha", "--", "cat", "/proc/net/fib_trie").stdout
    assert str(alpha["mac"]) in leases() and str(beta["mac"]) in leases()
    assert "prodng: eth0 " in net("logs", "alpha").stdout


def test_static_beside_dhcp_and_port_forward_from_host(net: Prodng, names: list[str]) -> None:
    names += ["web", "fixed"]
    net("bookworm", "dhcp", "--name", "web", "-p", "18080:80", "--exec", server("web"))
    net("bookworm", "static:10.89.200.7/16", "--name", "fixed", "--exec", server("fixed"))
    assert wired(net, "fixed")["ip"] == "10.89.200.7"
    assert fetch_inside(net, "fixed", "web.prodng") == "hello from web"
    assert fetch_inside(net, "web", "fixed.prodng") == "hello from fixed"
    # The host reaches the service through its forward, on loopback and on its bridge address.
    assert fetch_from_host("127.0.0.1", 18080) == "hello from web"
    assert fetch_from_host(GATEWAY, 18080) == "hello from web"
    assert "tcp . 18080" in forwards()
    net("rm", "-f", "web")
    assert "18080" not in forwards()
    assert "hello" not in fetch_from_host("127.0.0.1", 18080)


def test_none_has_only_loopback(prodng: Prodng, probe_template: str, container: str) -> None:
    prodng(probe_template, "none", "--name", container, "--exec", "probe sleep 1000")
    devices = prodng("exec", container, "--", "probe", "cat", "/proc/net/dev").stdout
    interfaces = [line.split(":")[0].strip() for line in devices.splitlines()[2:]]
    assert interfaces == ["lo"]
    assert prodng.info(container)["interface"] is None


def ruleset() -> str:
    return in_host("nft", "list", "ruleset").stdout


def _nothing_left(net: Prodng, name: str, veth: str, mac: str) -> None:
    assert veth not in links()
    assert "19090" not in forwards() and veth not in ruleset() and mac.replace(":", "").lstrip("0") not in ruleset()
    assert mac not in leases()
    assert not (runtime_dir() / "hosts" / name).exists()
    assert not any(p.read_text() == name for p in (runtime_dir() / "claims").iterdir())


def test_rm_and_stop_leave_nothing(net: Prodng, names: list[str]) -> None:
    names.append("gone")
    net("bookworm", "dhcp", "--name", "gone", "-p", "19090:80", "--exec", server("gone"))
    interface = wired(net, "gone")
    veth, mac = str(interface["veth"]), str(interface["mac"])
    assert veth in links() and "19090" in forwards() and mac in leases() and veth in ruleset()
    assert mac.replace(":", "").lstrip("0") in ruleset()  # the bridge's DHCP guard for its port
    net("stop", "gone")
    _nothing_left(net, "gone", veth, mac)
    net("start", "gone")
    assert wired(net, "gone")["ip"] == interface["ip"]  # the same address again
    net("rm", "-f", "gone")
    _nothing_left(net, "gone", veth, mac)


def _keeper_pid(net: Prodng, name: str) -> int:
    return int(json.loads((net.root / "state" / name / "net.json").read_text())["keeper_pid"])


def test_killed_keeper_or_monitor_leave_nothing(net: Prodng, names: list[str]) -> None:
    names += ["k1", "k2"]
    net("bookworm", "dhcp", "--name", "k1", "-p", "19090:80", "--exec", server("k1"))
    veth, mac = str(wired(net, "k1")["veth"]), str(wired(net, "k1")["mac"])
    os.kill(_keeper_pid(net, "k1"), signal.SIGKILL)  # no release, no teardown by the keeper
    net("rm", "-f", "k1")
    _nothing_left(net, "k1", veth, mac)
    # A killed monitor takes its container with it, and the keeper undoes the network.
    net("bookworm", "dhcp", "--name", "k2", "--exec", "sleep 1000")
    info = net.info("k2")
    veth, mac = str(wired(net, "k2")["veth"]), str(wired(net, "k2")["mac"])
    os.kill(int(info["monitor_pid"]), signal.SIGKILL)  # type: ignore[call-overload]
    net.wait_for(lambda: veth not in links() and mac not in leases(), 10, "the keeper's teardown")
    assert net.info("k2")["state"] == "dead"  # a killed monitor reads as dead (issue 17)
    _nothing_left(net, "k2", veth, mac)


def test_killed_keeper_then_stop_tears_down_and_rm_spares_the_ports_new_owner(net: Prodng, names: list[str]) -> None:
    """Issue 17: after a killed keeper, stop left forward, name, lease and claims, and a later rm of that
    container deleted the live forward of the port's new owner."""
    names += ["old-owner", "new-owner"]
    net("bookworm", "dhcp", "--name", "old-owner", "-p", "19090:80", "--exec", server("old-owner"))
    veth, mac = str(wired(net, "old-owner")["veth"]), str(wired(net, "old-owner")["mac"])
    os.kill(_keeper_pid(net, "old-owner"), signal.SIGKILL)
    net("stop", "-t", "2", "old-owner")
    _nothing_left(net, "old-owner", veth, mac)
    net("bookworm", "dhcp", "--name", "new-owner", "-p", "19090:80", "--exec", server("new-owner"))
    address = str(wired(net, "new-owner")["ip"]).split("/")[0]
    net("rm", "-f", "old-owner")
    assert "19090" in forwards() and address in forwards(), forwards()
    assert net.wait_for(lambda: "new-owner" in fetch_from_host("127.0.0.1", 19090), 15, "the new owner's forward")


def test_rm_after_a_killed_keeper_spares_the_address_and_ports_new_owner(net: Prodng, names: list[str]) -> None:
    """Issue 14: the rm of a container whose keeper was killed removed the NAT of its address, which
    a new owner of that address had switched on since (and took the forward's and address's claims)."""
    names += ["first", "second"]
    static = "static:10.89.200.41/16"
    net("bookworm", static, "--nat", "--name", "first", "-p", "19191:80", "--exec", "sleep 100000")
    os.kill(_keeper_pid(net, "first"), signal.SIGKILL)  # its network stays, claims and all, but they are free
    net("bookworm", static, "--nat", "--name", "second", "-p", "19191:80", "--exec", server("second"))
    net("rm", "-f", "first")
    assert "10.89.200.41" in in_host("nft", "list", "set", "ip", "prodng0", "nat").stdout
    assert "19191" in forwards() and "10.89.200.41" in forwards(), forwards()
    held = {p.name: p.read_text() for p in (runtime_dir() / "claims").iterdir()}
    assert held.get("ip-10.89.200.41") == "second" and held.get("tcp-19191") == "second", held
    assert net.wait_for(lambda: "second" in fetch_from_host("127.0.0.1", 19191), 15, "the new owner's forward")
    net("rm", "-f", "second")  # its own: all gone
    assert "10.89.200.41" not in in_host("nft", "list", "set", "ip", "prodng0", "nat").stdout
    assert "19191" not in forwards()


def test_a_keeper_waits_for_the_previous_runs_teardown(net: Prodng, names: list[str]) -> None:
    """A keeper whose teardown outlasted stop's wait (here: stopped) undid, as it went, what the
    next run's keeper had made by the same name: veth, name, lease, claims, net.json."""
    names.append("again")
    net("bookworm", "dhcp", "--name", "again", "-p", "19292:80", "--exec", server("again"))
    old = _keeper_pid(net, "again")
    os.kill(old, signal.SIGSTOP)
    try:
        restarting = net.popen("restart", "-t", "0", "again")
        time.sleep(8)  # past stop's wait for the keeper: the new run starts, its keeper waits
        assert restarting.poll() is None
    finally:
        os.kill(old, signal.SIGCONT)  # the old keeper sees its lifeline closed and tears down
    _, error = restarting.communicate(timeout=60)
    assert restarting.returncode == 0, error
    interface = wired(net, "again")
    assert _keeper_pid(net, "again") != old and str(interface["veth"]) in links()
    assert net.wait_for(lambda: "again" in fetch_from_host("127.0.0.1", 19292), 15, "the forward")
    assert (runtime_dir() / "hosts" / "again").exists() and str(interface["mac"]) in leases()
    assert (runtime_dir() / "claims" / "tcp-19292").read_text() == "again"


@contextmanager
def host_listener(port: int, serve: str) -> Iterator[None]:
    """A TCP socket s listening on every address of the test's host namespace (as an agent bound to
    0.0.0.0 would be), then `serve` run; it listens when this enters and is gone when it leaves."""
    code = (
        f"import socket, time\ns = socket.socket()\ns.bind(('0.0.0.0', {port}))\ns.listen()\nprint('up', flush=True)\n"
    )
    listener = subprocess.Popen(
        ["ip", "netns", "exec", HOSTNS, "python3", "-c", code + serve], stdout=subprocess.PIPE, text=True
    )
    try:
        assert listener.stdout and listener.stdout.readline().strip() == "up"
        yield
    finally:
        listener.kill()
        listener.wait()


@pytest.fixture
def dhcp_blocked() -> Iterator[None]:
    """The DHCP server stops answering: its requests are dropped before they reach it."""
    rules = "table inet blockdhcp {\n chain input {\n type filter hook input priority -10;\n udp dport 67 drop\n }\n}\n"
    subprocess.run(["ip", "netns", "exec", HOSTNS, "nft", "-f", "-"], input=rules, text=True, check=True)
    yield
    subprocess.run(["ip", "netns", "exec", HOSTNS, "nft", "delete table inet blockdhcp"], check=False)


def test_kill_9_mid_setup_leaves_nothing(net: Prodng, names: list[str], dhcp_blocked: None) -> None:
    names.append("midway")
    net.env["PRODNG_DHCP_TIMEOUT"] = "4"
    try:
        cli = net.popen("bookworm", "dhcp", "--name", "midway", "--exec", "sleep 1000")
        state = net.root / "state" / "midway" / "net.json"
        net.wait_for(state.exists, 10, "the keeper to start")  # now it is waiting for a lease
        veth = json.loads(state.read_text())["veth"]
        cli.kill()
        cli.wait()
        # Its keeper gives up, undoes the link, and the monitor reports the failure.
        net.wait_for(lambda: not state.exists(), 15, "the keeper to give up")
        assert veth not in links()
        # A run killed before its start finished is all or nothing: the next command discards it (issue 17).
        assert net("rm", "-f", "midway", check=False).returncode == 3  # no such container
        assert "midway" not in net("ls").stdout
        assert veth not in links() and veth not in ruleset()
    finally:
        del net.env["PRODNG_DHCP_TIMEOUT"]


def test_dhcp_timeout_is_a_clear_error_and_leaves_nothing(net: Prodng, dhcp_blocked: None) -> None:
    before = links()
    net.env["PRODNG_DHCP_TIMEOUT"] = "2"
    try:
        result = net("bookworm", "dhcp", "--name", "silent", "--exec", "sleep 1000", check=False)
    finally:
        del net.env["PRODNG_DHCP_TIMEOUT"]
    assert result.returncode != 0
    assert "no answer from the DHCP server on prodng0 within 2 s" in result.stderr  # the CLI's setting
    assert len(result.stderr.strip().splitlines()) == 1
    assert "silent" not in net("ls").stdout
    assert links() == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["bookworm", "wifi"], "unknown network mode"),
        (["bookworm", "static:10.89.200.9"], "malformed static address"),
        (["bookworm", "static:10.89.200.9/16,gateway=1.2.3.4"], "malformed static address"),
        (["bookworm", "static:10.1.2.3/16"], "outside prodng0's static range"),
        (["bookworm", "static:10.89.0.9/16"], "outside prodng0's static range"),  # dnsmasq's half
        (["bookworm", "none", "-p", "8080:80"], "-p needs a dhcp or static network"),
        (["bookworm", "dhcp", "-p", "8080"], "malformed port forward"),
        (["bookworm", "dhcp", "-p", "70000:80"], "malformed port forward"),
        (["bookworm", "dhcp", "--name", "under_score"], "cannot be a DNS name"),
    ],
)
def test_bad_network_input(net: Prodng, args: list[str], message: str) -> None:
    before = set(net("ls").stdout.split())
    result = net(*args, "--exec", "sleep 1", check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert set(net("ls").stdout.split()) == before


def test_address_and_host_port_in_use(net: Prodng, names: list[str]) -> None:
    names += ["holder"]
    net("bookworm", "static:10.89.200.20/16", "--name", "holder", "-p", "18181:80", "--exec", server("holder"))
    before = links()
    taken = net("bookworm", "static:10.89.200.20/16", "--name", "twin", "--exec", "sleep 1", check=False)
    assert taken.returncode != 0 and "address 10.89.200.20 is in use by container holder" in taken.stderr
    port = net("bookworm", "dhcp", "--name", "twin", "-p", "18181:80", "--exec", "sleep 1", check=False)
    assert port.returncode != 0 and "host port tcp/18181 is in use" in port.stderr
    # A port a host process listens on.
    with host_listener(18282, "time.sleep(60)"):
        busy = net("bookworm", "dhcp", "--name", "twin", "-p", "18282:80", "--exec", "sleep 1", check=False)
        assert busy.returncode != 0 and "host port 18282/tcp is in use on the host" in busy.stderr
    assert "twin" not in net("ls").stdout
    assert links() == before


def test_dnsmasq_is_restarted_and_reused(net: Prodng, names: list[str]) -> None:
    names += ["one", "two"]
    net("bookworm", "dhcp", "--name", "one", "--exec", server("one"))
    first = dnsmasq_pid()
    os.kill(first, signal.SIGKILL)
    # The keeper notices and starts a new one, which still knows the lease and the name.
    net.wait_for(lambda: Path(f"/proc/{dnsmasq_pid()}").exists() and dnsmasq_pid() != first, 10, "a new dnsmasq")
    net("bookworm", "dhcp", "--name", "two", "--exec", "sleep 1000")
    assert fetch_inside(net, "two", "one.prodng") == "hello from one"
    inode = os.stat(f"/run/netns/{HOSTNS}").st_ino
    ours = [p for p in Path("/proc").glob("[0-9]*") if (p / "comm").exists() and _is_dnsmasq_in(p, inode)]
    assert len(ours) == 1  # reused, not duplicated


def _is_dnsmasq_in(proc: Path, inode: int) -> bool:
    try:
        return (proc / "comm").read_text().strip() == "dnsmasq" and os.stat(proc / "ns" / "net").st_ino == inode
    except OSError:
        return False


def test_lease_is_renewed(net: Prodng, names: list[str]) -> None:
    names.append("renewer")
    net("bookworm", "dhcp", "--name", "renewer", "--exec", "sleep 1000")
    mac = str(wired(net, "renewer")["mac"])

    def expiry() -> int:
        # dnsmasq rewrites its lease file in place: a read may catch it empty (0 then).
        return next((int(line.split()[0]) for line in leases().splitlines() if mac in line), 0)

    first = net.wait_for(expiry, 5, "the lease in dnsmasq's file")
    time.sleep(1.1)
    os.kill(_keeper_pid(net, "renewer"), signal.SIGUSR1)  # what T1 does, now
    net.wait_for(lambda: expiry() > first, 10, "the renewed lease")


def test_isolation_from_the_host(net: Prodng, names: list[str]) -> None:
    names.append("prisoner")
    net("bookworm", "dhcp", "--name", "prisoner", "--exec", "sleep 1000")
    # A service on every host address (as an agent bound to 0.0.0.0 would be).
    with host_listener(1337, "while True: c,_=s.accept(); c.sendall(b'agent\\n'); c.close()"):
        assert fetch_from_host(GATEWAY, 1337) == "agent"  # the port is there ...
        assert fetch_inside(net, "prisoner", GATEWAY, 1337) == ""  # ... but not through the bridge
    # No IPv6 on the host's side of the bridge: router advertisements from containers land nowhere.
    veth = wired(net, "prisoner")["veth"]
    for interface in ("prodng0", veth):
        assert in_host("cat", f"/proc/sys/net/ipv6/conf/{interface}/disable_ipv6").stdout.strip() == "1"
    status = net("exec", "prisoner", "--", "cat", "/proc/self/status").stdout
    capabilities = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd")), 16)
    assert not capabilities & (1 << 12) and not capabilities & (1 << 13)  # NET_ADMIN, NET_RAW


ROUTER_ADVERTISEMENT = r"""
import socket, struct, sys, time
from prodng.container import state
from prodng.network import host
from prodng.network import modes
# ICMPv6 type 134: a default router with a prefix to autoconfigure from, sent to all nodes.
prefix = struct.pack(">BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0) + socket.inet_pton(socket.AF_INET6, "2001:db8:77::")
advert = struct.pack(">BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0) + prefix
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
index = socket.if_nametoindex("eth0")
for _ in range(3):
    s.sendto(advert, ("ff02::1", 0, 0, index))
    time.sleep(0.2)
print("sent")
"""


def test_router_advertisements_from_a_container_change_nothing(net: Prodng, names: list[str]) -> None:
    names.append("rogue")
    net("bookworm", "dhcp", "--name", "rogue", "--exec", "sleep 1000")
    inside = ("nsenter", f"--net=/proc/{net.info('rogue')['pid']}/ns/net")
    # Root's doing, from the container's namespace (the container itself lacks NET_RAW):
    # the worst a compromised container could send, once its link-local address is usable.
    net.wait_for(
        lambda: (
            "tentative"
            not in subprocess.run(
                [*inside, "ip", "-6", "addr", "show", "dev", "eth0"], capture_output=True, text=True
            ).stdout
        ),
        10,
        "DAD",
    )
    sent = subprocess.run([*inside, sys.executable, "-c", ROUTER_ADVERTISEMENT], capture_output=True, text=True)
    assert sent.stdout.strip() == "sent", sent.stderr
    time.sleep(1)
    assert "2001:db8:77" not in in_host("ip", "-6", "addr").stdout
    assert "default" not in in_host("ip", "-6", "route").stdout


# A DHCPRELEASE for ADDRESS on behalf of MAC, sent to the server from an unprivileged UDP socket.
RELEASE = r"""use IO::Socket::INET;
my ($ip, $mac) = @ARGV;
my $s = IO::Socket::INET->new(Proto => "udp", PeerAddr => "10.89.0.1:67") or die "socket: $!";
my $chaddr = pack("H12", join("", split(/:/, $mac))) . ("\0" x 10);
my $packet = pack("CCCCNnn", 1, 1, 6, 0, 0x5eed, 0, 0) . inet_aton($ip) . ("\0" x 12) . $chaddr . ("\0" x 192)
  . pack("N", 0x63825363) . pack("CCC", 53, 1, 7) . pack("CC", 54, 4) . inet_aton("10.89.0.1") . pack("C", 255);
$s->send($packet) or die "send: $!";
print "sent\n";
"""


def test_a_container_cannot_release_another_ones_lease(net: Prodng, names: list[str]) -> None:
    names += ["victim", "rogue"]
    for name in names:
        net("bookworm", "dhcp", "--name", name, "--exec", "sleep 1000")
    victim, rogue = wired(net, "victim"), wired(net, "rogue")

    def release(address: object, mac: object) -> None:
        sent = net("exec", "rogue", "--", "perl", "-e", RELEASE, str(address), str(mac))
        assert sent.stdout.strip() == "sent"

    release(victim["ip"], victim["mac"])  # dropped on the bridge: not the rogue's MAC
    time.sleep(1)
    assert str(victim["mac"]) in leases()
    release(rogue["ip"], rogue["mac"])  # the same packet for its own lease goes through
    net.wait_for(lambda: str(rogue["mac"]) not in leases(), 5, "the rogue's own release")
    assert str(victim["mac"]) in leases()


def test_rest_runs_a_dhcp_container_with_a_forward(net: Prodng, names: list[str]) -> None:
    from agent_helpers import PORT, Client

    from prodng.config import Paths

    names.append("viarest")
    sock = net.root / "agent.sock"
    sock.unlink(missing_ok=True)
    agent = subprocess.Popen(
        [*net.prefix, sys.executable, "-m", "prodng", "agent", "--port", str(PORT + 7)],
        env=net.env,
        text=True,
        stderr=subprocess.PIPE,
    )
    try:
        net.wait_for(lambda: sock.exists() or agent.poll() is not None, 30, "the agent")
        client = Client(Paths(net.root), unix=sock)
        status, body = client.request(
            "POST",
            "/prodng/run",
            {"args": ["bookworm", "dhcp"], "name": "viarest", "exec": server("viarest"), "publish": ["18383:80"]},
        )
        assert status == 200 and str(body["ip"]).startswith("10.89."), body  # type: ignore[index]
        assert fetch_from_host("127.0.0.1", 18383) == "hello from viarest"
        status, info = client.request("GET", "/prodng/info?viarest")
        assert info["forwards"] == ["18383:80/tcp"] and info["interface"]["ip"] == body["ip"]  # type: ignore[index]
        status, error = client.request(
            "POST", "/prodng/run", {"args": ["bookworm", "static:10.1.2.3/8"], "exec": "sleep 1"}
        )
        assert status == 400 and "outside prodng0's static range" in error["error"]  # type: ignore[index]
    finally:
        agent.terminate()
        agent.wait()
