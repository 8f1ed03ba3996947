"""Network modes, forwards and the bridge's addressing: pure parsing, no pyroute2.

`none` is a private namespace with loopback only; `host` shares the host's; `dhcp` and
`static:ADDR/LEN[,gw=ADDR]` are wired to the bridge by a keeper (prodng.network.keeper).
DHCP hands out the lower half of the subnet, static addresses live in the upper half.
"""

from __future__ import annotations

import ipaddress
import re

from prodng.errors import InvalidRequest
from prodng.frozen import frozen
from prodng.settings import Settings

MODES = ("none", "host", "dhcp", "static:ADDR/LEN[,gw=ADDR]")
DNS_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
DOMAIN = "prodng"


@frozen
class Mode:
    kind: str  # none, host, dhcp, static
    address: ipaddress.IPv4Interface | None = None
    gateway: ipaddress.IPv4Address | None = None

    @property
    def wired(self) -> bool:
        """On the bridge, through a veth, with a keeper."""
        return self.kind in ("dhcp", "static")

    def __str__(self) -> str:
        """The form parse_mode reads (and records keep)."""
        if self.kind != "static":
            return self.kind
        return f"static:{self.address}" + (f",gw={self.gateway}" if self.gateway else "")


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


@frozen
class Forward:
    proto: str
    host_port: int
    container_port: int

    def __str__(self) -> str:
        return f"{self.host_port}:{self.container_port}/{self.proto}"


def parse_forwards(specs: list[str] | tuple[str, ...]) -> tuple[Forward, ...]:
    forwards: list[Forward] = []
    for spec in specs:
        # [0-9], not \d: \d takes any Unicode digit and int() reads them
        match = re.fullmatch(r"([0-9]{1,5}):([0-9]{1,5})(?:/(tcp|udp))?", spec)
        ports = (int(match[1]), int(match[2])) if match else (0, 0)
        if not match or not all(0 < p < 65536 for p in ports):
            raise InvalidRequest(f"malformed port forward {spec!r}", hint="-p HOSTPORT:CONTAINERPORT[/tcp|udp]")
        forward = Forward(match[3] or "tcp", *ports)
        if any((f.proto, f.host_port) == (forward.proto, forward.host_port) for f in forwards):
            raise InvalidRequest(f"host port {forward.host_port}/{forward.proto} is forwarded twice")
        forwards.append(forward)
    return tuple(forwards)


# ---- the bridge (settings bridge, subnet) ----


@frozen
class Bridge:
    name: str
    interface: ipaddress.IPv4Interface  # the bridge's own address: gateway and DNS server
    lease_time: str = "1h"  # dnsmasq's, on this bridge

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


def bridge(settings: Settings) -> Bridge:
    """The bridge's name and subnet were checked when the settings were read."""
    network = ipaddress.IPv4Network(settings.subnet)
    address = ipaddress.IPv4Interface(f"{network[1]}/{network.prefixlen}")
    return Bridge(settings.bridge, address, settings.lease_time)


def check_name(name: str, mode: Mode) -> None:
    if mode.wired and not DNS_LABEL.fullmatch(name):
        raise InvalidRequest(
            f"container name {name!r} cannot be a DNS name ({name}.{DOMAIN})",
            hint="letters, digits and inner '-' only, for dhcp and static",
        )


def check_static(mode: Mode, net: Bridge) -> None:
    """A static address sits in the upper half of the bridge's subnet, with the subnet's length."""
    assert mode.address
    if mode.address.network != net.network or not net.is_static_address(mode.address.ip):
        half = net.network[net.network.num_addresses // 2]
        raise InvalidRequest(
            f"static address {mode.address} is outside {net.name}'s static range",
            hint=f"{half}-{net.network.broadcast_address - 1}/{net.network.prefixlen}",
        )
    if mode.gateway and mode.gateway not in net.network:
        raise InvalidRequest(f"gateway {mode.gateway} is outside {net.network}")
