"""prodng's nftables: the forwards map and the host's input filter (table ip), and the
bridge's DHCP guard (table bridge). Every rule change for the bridge goes through here."""

from __future__ import annotations

from prodng import run
from prodng.network.modes import Bridge, Forward


def run_nft(script: str, check: bool = True) -> bool:
    nft = run.require("nft", "nftables")
    return run.run([nft, "-f", "-"], input=script, check=check).returncode == 0


def ip_table(net: Bridge) -> str:
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


def bridge_table(net: Bridge) -> str:
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
    run_nft(
        f"add chain bridge {net.name} port-{veth}\n"
        f"add rule bridge {net.name} port-{veth} @ih,224,48 != 0x{mac.replace(':', '')} drop\n"
        f'add element bridge {net.name} ports {{ "{veth}" : jump port-{veth} }}\n'
    )


def unguard_port(net: Bridge, veth: str) -> None:
    run_nft(f'delete element bridge {net.name} ports {{ "{veth}" }}\n', check=False)
    run_nft(f"delete chain bridge {net.name} port-{veth}\n", check=False)


def add_forwards(net: Bridge, address: str, forwards: tuple[Forward, ...]) -> None:
    if forwards:
        items = ", ".join(f"{f.proto} . {f.host_port} : {address} . {f.container_port}" for f in forwards)
        run_nft(f"add element ip {net.name} forwards {{ {items} }}\n")


def remove_forwards(net: Bridge, forwards: tuple[Forward, ...]) -> None:
    for f in forwards:  # one by one: a missing element must not keep the others
        run_nft(f"delete element ip {net.name} forwards {{ {f.proto} . {f.host_port} }}\n", check=False)
