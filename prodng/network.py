"""Container networks on the host side: modes, the bridge, veths, port forwards, claims.

`none` is a private namespace with loopback only; `host` shares the host's. For `dhcp`
and `static` the monitor makes the container's namespace and starts its network keeper
(prodng.netkeeper), which puts a veth pair between that namespace (eth0) and the bridge,
gets the address, publishes the name and the forwards, and undoes all of it when the
monitor ends. This module holds the pieces the keeper and the CLI share; every one of
them is idempotent, so a crash at any step is finished by whoever comes next.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import dnsmasq, locks, run, state
from .config import Paths
from .errors import Conflict, InvalidRequest, SystemFailure

MODES = ("none", "host", "dhcp", "static:ADDR/LEN[,gw=ADDR]")
DNS_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
DOMAIN = "prodng"


@dataclass(frozen=True)
class Mode:
    kind: str  # none, host, dhcp, static
    address: ipaddress.IPv4Interface | None = None
    gateway: ipaddress.IPv4Address | None = None

    @property
    def wired(self) -> bool:
        """On the bridge, through a veth, with a keeper."""
        return self.kind in ("dhcp", "static")


def parse_mode(text: str) -> Mode:
    if text in ("none", "host", "dhcp"):
        return Mode(text)
    if not text.startswith("static:"):
        raise InvalidRequest(f"unknown network mode {text!r}", hint=f"one of {', '.join(MODES)}")
    spec, _, option = text.removeprefix("static:").partition(",")
    try:
        address = ipaddress.IPv4Interface(spec)
        if "/" not in spec or option and not option.startswith("gw="):
            raise ValueError
        gateway = ipaddress.IPv4Address(option.removeprefix("gw=")) if option else None
    except ValueError:
        raise InvalidRequest(f"malformed static address {text!r}", hint="static:ADDR/LEN[,gw=ADDR]") from None
    return Mode("static", address, gateway)


@dataclass(frozen=True)
class Forward:
    proto: str
    host_port: int
    container_port: int

    def __str__(self) -> str:
        return f"{self.host_port}:{self.container_port}/{self.proto}"


def parse_forwards(specs: list[str] | tuple[str, ...]) -> tuple[Forward, ...]:
    forwards: list[Forward] = []
    for spec in specs:
        match = re.fullmatch(r"(\d{1,5}):(\d{1,5})(?:/(tcp|udp))?", spec)
        ports = (int(match[1]), int(match[2])) if match else (0, 0)
        if not match or not all(0 < p < 65536 for p in ports):
            raise InvalidRequest(f"malformed port forward {spec!r}", hint="-p HOSTPORT:CONTAINERPORT[/tcp|udp]")
        forward = Forward(match[3] or "tcp", *ports)
        if any((f.proto, f.host_port) == (forward.proto, forward.host_port) for f in forwards):
            raise InvalidRequest(f"host port {forward.host_port}/{forward.proto} is forwarded twice")
        forwards.append(forward)
    return tuple(forwards)


# ---- the bridge's settings: PRODNG_BRIDGE, PRODNG_SUBNET ----

@dataclass(frozen=True)
class Bridge:
    name: str
    interface: ipaddress.IPv4Interface  # the bridge's own address: gateway and DNS server

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.interface.ip

    @property
    def network(self) -> ipaddress.IPv4Network:
        return self.interface.network

    @property
    def dhcp_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        """The lower half is dnsmasq's; the upper half is for static addresses, so they never meet."""
        half = self.network.num_addresses // 2
        return self.network[2], self.network[half - 1]

    def is_static_address(self, address: ipaddress.IPv4Address) -> bool:
        half = self.network.num_addresses // 2
        return self.network[half] <= address < self.network.broadcast_address


def bridge() -> Bridge:
    name = os.environ.get("PRODNG_BRIDGE", "prodng0")
    subnet = os.environ.get("PRODNG_SUBNET", "10.89.0.0/16")
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,14}", name):
        raise InvalidRequest(f"bad PRODNG_BRIDGE {name!r}", hint="up to 15 of a-z, 0-9, _")
    try:
        network = ipaddress.IPv4Network(subnet)
    except ValueError:
        raise InvalidRequest(f"bad PRODNG_SUBNET {subnet!r}", hint="an IPv4 network such as 10.89.0.0/16") from None
    if network.prefixlen > 28:
        raise InvalidRequest(f"PRODNG_SUBNET {subnet} is too small", hint="at most /28")
    return Bridge(name, ipaddress.IPv4Interface(f"{network[1]}/{network.prefixlen}"))


# ---- names for one container's parts: stable across restarts ----

def _digest(paths: Paths, name: str) -> str:
    return hashlib.sha256(f"{paths.root}\0{name}".encode()).hexdigest()


def veth_name(paths: Paths, name: str) -> str:
    return "pn" + _digest(paths, name)[:12]


def mac_address(paths: Paths, name: str) -> str:
    """Locally administered and stable, so dnsmasq gives a restarted container its old address."""
    raw = _digest(paths, name)[12:22]
    return "02:" + ":".join(raw[i:i + 2] for i in range(0, 10, 2))


def runtime_dir(paths: Paths) -> Path:
    """dnsmasq's files and the claims, per prodng root and per network namespace, in /run:
    a reboot empties it, as it stops every container."""
    netns = os.stat("/proc/thread-self/ns/net").st_ino
    return Path("/run/prodng") / f"{hashlib.sha256(str(paths.root).encode()).hexdigest()[:8]}-{netns}"


# Read by the keeper, which may be forked from a server started with another environment:
# the CLI's values travel in the keeper's arguments.
SETTINGS = ("PRODNG_BRIDGE", "PRODNG_SUBNET", "PRODNG_DHCP_TIMEOUT", "PRODNG_LEASE_TIME")


def keeper_argv(paths: Paths, name: str) -> list[str]:
    """The keeper's command line; the monitor hands it to the warm keeper server if one answers."""
    settings = [f"{key}={os.environ[key]}" for key in SETTINGS if key in os.environ]
    return [sys.executable, "-I", "-m", "prodng.netkeeper", str(paths.root), name, *settings]


def keeper_server(paths: Paths) -> Path:
    return runtime_dir(paths) / "keeper.sock"


def _keeper_server_pid(paths: Paths) -> int | None:
    try:
        pid = int(keeper_server(paths).with_suffix(".pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return pid if b"prodng.netkeeper" in cmdline and b"--serve" in cmdline else None
    except (FileNotFoundError, ValueError):
        return None


def _ensure_keeper_server(paths: Paths) -> None:
    if not _keeper_server_pid(paths):
        run.spawn_daemon([sys.executable, "-I", "-m", "prodng.netkeeper", "--serve", keeper_server(paths)])


def check_name(name: str, mode: Mode) -> None:
    if mode.wired and not DNS_LABEL.match(name):
        raise InvalidRequest(f"container name {name!r} cannot be a DNS name ({name}.{DOMAIN})",
                             hint="letters, digits and inner '-' only, for dhcp and static")


# ---- the per-container record of what is wired: state/NAME/net.json ----

def net_file(paths: Paths, name: str) -> Path:
    return paths.container_state(name) / "net.json"


def read(paths: Paths, name: str) -> dict[str, object]:
    try:
        return dict(json.loads(net_file(paths, name).read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def write(paths: Paths, name: str, data: dict[str, object]) -> None:
    state.write_atomic(net_file(paths, name), json.dumps(data), durable=False)


def keeper_alive(paths: Paths, name: str) -> bool:
    wired = read(paths, name)
    return state.same_process(int(str(wired.get("keeper_pid", 0))), int(str(wired.get("keeper_start", 0))))


# ---- host side: bridge, firewall table, dnsmasq ----

@contextmanager
def locked(paths: Paths) -> Iterator[None]:
    with locks.hold(paths.locks / "network.lock"):
        yield


def sysctl(key: str, value: str) -> None:
    Path("/proc/sys/net", *key.split(".")).write_text(value)


def _nft(script: str, check: bool = True) -> bool:
    nft = run.require("nft", "nftables")
    return run.run([nft, "-f", "-"], input=script, check=check).returncode == 0


def ensure_host_side(paths: Paths, net: Bridge) -> None:
    """The bridge, its firewall table and dnsmasq, made on first use and reused after."""
    with locked(paths):
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=net.name)
            if not found:
                ipr.link("add", ifname=net.name, kind="bridge")
                found = ipr.link_lookup(ifname=net.name)
                # No IPv6 on the bridge: router advertisements sent by containers change nothing here.
                sysctl(f"ipv6.conf.{net.name}.disable_ipv6", "1")
                ipr.addr("add", index=found[0], address=str(net.gateway), prefixlen=net.network.prefixlen)
                ipr.link("set", index=found[0], state="up")
            addresses = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(index=found[0], family=2)}
            if (str(net.gateway), net.network.prefixlen) not in addresses:
                raise Conflict(f"bridge {net.name} exists with another address than {net.interface}",
                               hint="set PRODNG_BRIDGE/PRODNG_SUBNET to match, or remove the bridge")
        # Forwards to 127.0.0.1 leave through the bridge; the input chain keeps the bridge off the host.
        sysctl(f"ipv4.conf.{net.name}.route_localnet", "1")
        tables = run.run([run.require("nft", "nftables"), "list", "tables"]).stdout.splitlines()
        missing = [make(net) for family, make in (("ip", _table), ("bridge", _bridge_table))
                   if f"table {family} {net.name}" not in tables]
        if missing:
            _nft("".join(missing))
        dnsmasq.ensure(runtime_dir(paths), net)
        _ensure_keeper_server(paths)


def _table(net: Bridge) -> str:
    """Port forwards as one map; from the bridge, the host answers only DHCP and DNS."""
    return f"""table ip {net.name} {{
  map forwards {{
    type inet_proto . inet_service : ipv4_addr . inet_service
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local dnat ip to meta l4proto . th dport map @forwards
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    fib daddr type local dnat ip to meta l4proto . th dport map @forwards
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname "{net.name}" ip saddr 127.0.0.0/8 masquerade
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "{net.name}" ct state established,related accept
    iifname "{net.name}" udp dport {{ 53, 67 }} accept
    iifname "{net.name}" tcp dport 53 accept
    iifname "{net.name}" drop
  }}
}}
"""


def _bridge_table(net: Bridge) -> str:
    """DHCP as the bridge sees it: offers come only from the host's dnsmasq, and a container
    speaks only for its own MAC (dnsmasq keys leases by MAC alone: --dhcp-ignore-clid), so
    no container can answer for the server or release another's lease."""
    return f"""table bridge {net.name} {{
  map ports {{
    type ifname : verdict
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    udp sport 67 drop
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    udp dport 67 iifname vmap @ports
  }}
}}
"""


def guard_port(net: Bridge, veth: str, mac: str) -> None:
    """Requests through this port must carry the port's MAC as chaddr (DHCP bytes 28-33)."""
    _nft(f"add chain bridge {net.name} port-{veth}\n"
         f"add rule bridge {net.name} port-{veth} @ih,224,48 != 0x{mac.replace(':', '')} drop\n"
         f'add element bridge {net.name} ports {{ "{veth}" : jump port-{veth} }}\n')


def unguard_port(net: Bridge, veth: str) -> None:
    _nft(f'delete element bridge {net.name} ports {{ "{veth}" }}\n', check=False)
    _nft(f"delete chain bridge {net.name} port-{veth}\n", check=False)


def add_forwards(net: Bridge, address: str, forwards: tuple[Forward, ...]) -> None:
    if forwards:
        items = ", ".join(f"{f.proto} . {f.host_port} : {address} . {f.container_port}" for f in forwards)
        _nft(f"add element ip {net.name} forwards {{ {items} }}\n")


def remove_forwards(net: Bridge, forwards: tuple[Forward, ...]) -> None:
    for f in forwards:  # one by one: a missing element must not keep the others
        _nft(f"delete element ip {net.name} forwards {{ {f.proto} . {f.host_port} }}\n", check=False)


# ---- claims: a static address or a host port belongs to one container at a time ----

def _claim_path(paths: Paths, key: str) -> Path:
    return runtime_dir(paths) / "claims" / key


def claim(paths: Paths, name: str, mode: Mode, forwards: tuple[Forward, ...], net: Bridge) -> None:
    """Check and take the container's static address and host ports; all or none."""
    keys = [f"{f.proto}-{f.host_port}" for f in forwards]
    if mode.address:
        check_static(mode, net)
        keys.append(f"ip-{mode.address.ip}")
    with locked(paths):
        for key in keys:
            owner = _claim_path(paths, key)
            holder = owner.read_text() if owner.exists() else ""
            if holder and holder != name and keeper_alive(paths, holder):
                what = key.replace("ip-", "address ").replace("tcp-", "host port tcp/").replace("udp-", "host port udp/")
                raise Conflict(f"{what} is in use by container {holder}")
        for f in forwards:
            _check_port_free(f)
        for key in keys:
            owner = _claim_path(paths, key)
            owner.parent.mkdir(parents=True, exist_ok=True)
            owner.write_text(name)


def check_static(mode: Mode, net: Bridge) -> None:
    """A static address sits in the upper half of the bridge's subnet, with the subnet's length."""
    assert mode.address
    if mode.address.network != net.network or not net.is_static_address(mode.address.ip):
        half = net.network[net.network.num_addresses // 2]
        raise InvalidRequest(f"static address {mode.address} is outside {net.name}'s static range",
                             hint=f"{half}-{net.network.broadcast_address - 1}/{net.network.prefixlen}")
    if mode.gateway and mode.gateway not in net.network:
        raise InvalidRequest(f"gateway {mode.gateway} is outside {net.network}")


def _check_port_free(forward: Forward) -> None:
    kind = socket.SOCK_STREAM if forward.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("0.0.0.0", forward.host_port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise Conflict(f"host port {forward.host_port}/{forward.proto} is in use on the host") from None
            raise


def release_claims(paths: Paths, name: str) -> None:
    with locked(paths):
        directory = runtime_dir(paths) / "claims"
        for owner in directory.iterdir() if directory.is_dir() else ():
            if owner.read_text() == name:
                owner.unlink(missing_ok=True)


# ---- the whole teardown, shared by the keeper and by whoever finds its work undone ----

def teardown(paths: Paths, name: str, forwards: tuple[Forward, ...]) -> None:
    """Remove the veth, the forwards, the name, the lease and the claims of one container."""
    net = bridge()
    wired = read(paths, name)
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=veth_name(paths, name)):
            try:
                ipr.link("del", index=index)  # takes eth0 with it
            except NetlinkError as err:
                if err.code != errno.ENODEV:
                    raise
    remove_forwards(net, forwards)
    unguard_port(net, veth_name(paths, name))
    directory = runtime_dir(paths)
    mac = str(wired.get("mac") or mac_address(paths, name))
    released = dnsmasq.forget(directory, name, mac)
    if not released:
        with locked(paths):
            dnsmasq.drop_lease(directory, mac, net)
    release_claims(paths, name)
    net_file(paths, name).unlink(missing_ok=True)


def shut_down(paths: Paths, net: Bridge) -> None:
    """Stop dnsmasq and the keeper server, remove the bridge and its table (tests, benchmarks:
    in normal use they stay for the next container)."""
    directory = runtime_dir(paths)
    server = _keeper_server_pid(paths)
    if server:
        os.kill(server, signal.SIGTERM)
    pid = dnsmasq.running_pid(directory)
    if pid:
        dnsmasq.stop(pid)
    _nft(f"delete table ip {net.name}\n", check=False)
    _nft(f"delete table bridge {net.name}\n", check=False)
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=net.name):
            ipr.link("del", index=index)
    run.run(["rm", "-rf", str(directory)])


def resolv_conf_path(paths: Paths, name: str) -> Path:
    return paths.container_state(name) / "resolv.conf"


def write_resolv_conf(paths: Paths, name: str, net: Bridge) -> None:
    """Bound read-only on the container's /etc/resolv.conf: dnsmasq, and NAME for NAME.prodng."""
    text = f"nameserver {net.gateway}\nsearch {DOMAIN}\n"
    state.write_atomic(resolv_conf_path(paths, name), text, mode=0o644, durable=False)  # any uid resolves


def describe(paths: Paths, name: str) -> dict[str, object]:
    wired = read(paths, name)
    if not wired:
        return {}
    return {k: wired[k] for k in ("ip", "prefixlen", "gateway", "mac", "veth", "dns") if k in wired}


def require_tools() -> None:
    run.require("nft", "nftables")
    dnsmasq.binary()
    if not Path("/proc/sys/net/ipv4").is_dir():
        raise SystemFailure("no IPv4 networking in this kernel")
