"""prodng's nftables: the forwards map, the host's input filter, the forward chain and NAT
(table ip), and the bridge's per-port filters (table bridge). Every rule change for the
bridge goes through here.

Both tables are rewritten whole by `host_tables` on every container start (one atomic
`nft -f`): base chains are flushed and refilled, maps, sets and port chains are kept, so
a prodng upgrade takes effect without removing the containers that run.
"""

from __future__ import annotations

import re

from prodng import run
from prodng.network.modes import Bridge, Forward


def run_nft(script: str, check: bool = True) -> bool:
    nft = run.require("nft", "nftables")
    return run.run([nft, "-f", "-"], input=script, check=check).returncode == 0


def _refill(family: str, table: str, chains: dict[str, list[str]]) -> str:
    lines = []
    for chain, rules in chains.items():
        lines.append(f"flush chain {family} {table} {chain}\n")
        lines += [f"add rule {family} {table} {chain} {rule}\n" for rule in rules]
    return "".join(lines)


STORM_LIMIT = "limit rate over 500/second burst 1000 packets"  # broadcast and multicast frames, per port
DHCP_LIMIT = "limit rate over 20/second burst 40 packets"  # DHCP requests to dnsmasq, per port


def ip_table(net: Bridge) -> str:
    """Port forwards as one map; from the bridge the host answers only DHCP and DNS on its
    bridge address; routed traffic to or from the bridge only as the network mode allows. (Most of
    it is the ruleset itself, a rule a line: read together, not split.)"""
    name, gateway = net.name, net.gateway
    declare = f"""table ip {name} {{
  map forwards {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
  set nat {{ type ipv4_addr; }}
  chain prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
  chain output {{ type nat hook output priority -100; policy accept; }}
  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
  chain input {{ type filter hook input priority filter; policy accept; }}
  chain forward {{ type filter hook forward priority filter; policy accept; }}
  chain untracked_in {{ type filter hook prerouting priority raw; policy accept; }}
  chain untracked_out {{ type filter hook output priority raw; policy accept; }}
}}
"""
    dnat = "fib daddr type local dnat ip to meta l4proto . th dport map @forwards"
    dhcp, dns = "udp dport 67", "meta l4proto { tcp, udp } th dport 53"
    chains = {
        # The host's DHCP and DNS keep no conntrack entry: each query from a new port was one, for
        # 30 s, in the host's table (262,144 on a typical host; full, it drops the host's every new
        # connection), and a container has 65,535 ports. The input chain takes them statelessly.
        "untracked_in": [
            f'iifname "{name}" ip daddr {{ {gateway}, 255.255.255.255 }} {dhcp} notrack',
            f'iifname "{name}" ip daddr {gateway} {dns} notrack',
        ],
        "untracked_out": [
            f'oifname "{name}" ip saddr {gateway} udp sport 67 notrack',
            f'oifname "{name}" ip saddr {gateway} meta l4proto {{ tcp, udp }} th sport 53 notrack',
        ],
        "prerouting": [dnat],
        "output": [dnat],
        "postrouting": [
            f'oifname "{name}" ip saddr 127.0.0.0/8 masquerade',  # forwards to 127.0.0.1 leave through the bridge
            f'oifname != "{name}" ip saddr @nat masquerade',  # containers with NAT on, and only those
        ],
        "input": [
            f'iifname "{name}" ct state established,related accept',
            f'iifname "{name}" ip daddr {{ {gateway}, 255.255.255.255 }} {dhcp} accept',
            # Not the host's other addresses: a resolver there would be a way out.
            f'iifname "{name}" ip daddr {gateway} {dns} accept',
            f'iifname "{name}" drop',
        ],
        "forward": [
            f'iifname "{name}" oifname "{name}" accept',  # container to container (br_netfilter, hairpin)
            f'oifname "{name}" ct status dnat accept',  # published ports, from anywhere
            f'oifname "{name}" ct state established,related accept',
            f'oifname "{name}" drop',  # nothing else reaches a container from outside
            f'iifname "{name}" ct state established,related accept',
            f'iifname "{name}" ip saddr @nat accept',  # out to the world only with NAT on
            f'iifname "{name}" drop',
        ],
    }
    return declare + _refill("ip", name, chains)


def bridge_table(net: Bridge) -> str:
    """Every frame from a port passes that port's chain (`guard_port`); a port prodng did
    not guard carries nothing. DHCP requests go to the host alone (another container would
    learn their transaction ids) and server messages come from the host alone. The host's
    own frames take the output hook: there a DHCP answer goes to its client's port alone
    (dnsmasq broadcasts them), so no container learns another's transaction id."""
    declare = f"""table bridge {net.name} {{
  map ports {{ type ifname : verdict; }}
  map clients {{ type ifname : verdict; }}
  set storms {{ type ifname; flags dynamic,timeout; timeout 1m; }}
  set dhcp_requests {{ type ifname; flags dynamic,timeout; timeout 1m; }}
  chain prerouting {{ type filter hook prerouting priority filter; policy accept; }}
  chain forward {{ type filter hook forward priority filter; policy drop; }}
  chain input {{ type filter hook input priority filter; policy drop; }}
  chain output {{ type filter hook output priority filter; policy accept; }}
}}
"""
    chains = {
        # Storm control, per port and once per frame (the forward hook sees a broadcast once per
        # port it floods to): one container's floods cost the others and dnsmasq little.
        "prerouting": [
            f"meta pkttype {{ broadcast, multicast }} update @storms {{ iifname {STORM_LIMIT} }} drop",
            f"udp dport 67 update @dhcp_requests {{ iifname {DHCP_LIMIT} }} drop",
        ],
        "forward": ["udp dport 67 drop", "udp sport 67 drop", "iifname vmap @ports"],
        # No IP fragment reaches the host: a port's checks of a DHCP request's fields cannot read
        # them in a fragment, and the host's DHCP and DNS need none.
        "input": ["ip frag-off & 0x3fff != 0 drop", "iifname vmap @ports"],
        "output": ["udp sport 67 udp dport 68 oifname vmap @clients"],
    }
    return declare + _refill("bridge", net.name, chains)


def host_tables(net: Bridge) -> str:
    return ip_table(net) + bridge_table(net)


def port_rules(mac: str, address: str | None) -> list[str]:
    """A port speaks only as its container: its MAC, its address (once it has one), DHCP as a
    client for its own MAC (dnsmasq keys leases by MAC alone: --dhcp-ignore-clid), nothing
    else (no IPv6, no VLAN tags, no other ether types)."""
    rules = [
        f"ether saddr != {mac} drop",
        # Read from the frame as sent: `ip saddr` below would match the IPv4 inside a VLAN tag.
        "ether type != { ip, arp } drop",
        "udp sport 67 drop",  # server messages come from the host alone
        "udp dport 68 drop",  # and only they go to a DHCP client, whatever their source port
        # A client of its own: op 1, Ethernet (htype 1, hlen 6: dnsmasq keys a lease by all three,
        # so another type or length is another client, and another lease), no relay (hops, giaddr 0).
        f"udp dport 67 @ih,224,48 != {_chaddr(mac)} drop",  # chaddr: DHCP bytes 28-33
        "udp dport 67 @ih,0,32 != 0x01010600 drop",  # op, htype, hlen, hops: DHCP bytes 0-3
        "udp dport 67 @ih,192,32 != 0 drop",  # giaddr: DHCP bytes 24-27
    ]
    if address:
        arp = "arp htype 1 arp ptype 0x0800 arp hlen 6 arp plen 4"
        rules += [f"{arp} arp saddr ether {mac} arp saddr ip {address} accept", f"ip saddr {address} accept"]
    rules.append("ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept")  # DISCOVER, REQUEST
    return rules


def _chaddr(mac: str) -> str:
    return "0x" + mac.replace(":", "")


def guard_port(net: Bridge, veth: str, mac: str, address: str | None, owner: str) -> None:
    """Install or replace the port's chains in one transaction; `owner` names the keeper, so
    only it (or whoever finds it dead) removes them."""
    chain, answers = f"port-{veth}", f"to-{veth}"
    run_nft(
        f"add chain bridge {net.name} {chain}\n"
        + f"add chain bridge {net.name} {answers}\n"
        + _refill(
            "bridge",
            net.name,
            {
                chain: [*port_rules(mac, address), f'drop comment "{owner}"'],
                answers: [f"@ih,224,48 != {_chaddr(mac)} drop"],  # a DHCP answer for another MAC
            },
        )
        + f'add element bridge {net.name} ports {{ "{veth}" : goto {chain} }}\n'
        + f'add element bridge {net.name} clients {{ "{veth}" : goto {answers} }}\n'
    )


def port_owner(net: Bridge, veth: str) -> str | None:
    nft = run.require("nft", "nftables")
    listed = run.run([nft, "list", "chain", "bridge", net.name, f"port-{veth}"], check=False).stdout
    found = re.search(r'comment "([^"]*)"', listed)
    return found[1] if found else None


def unguard_port(net: Bridge, veth: str, owner: str | None = None) -> None:
    """Remove the port's chain, unless `owner` is given and another keeper holds it now."""
    if owner is not None and port_owner(net, veth) not in (owner, None):
        return
    for element, chain in (("ports", f"port-{veth}"), ("clients", f"to-{veth}")):
        run_nft(f'delete element bridge {net.name} {element} {{ "{veth}" }}\n', check=False)
        run_nft(f"delete chain bridge {net.name} {chain}\n", check=False)
    for limits in ("storms", "dhcp_requests"):  # its buckets, if it sent any broadcast or DHCP
        run_nft(f'delete element bridge {net.name} {limits} {{ "{veth}" }}\n', check=False)


# What holds a container on the bridge once it has an address: port_rules, its DHCP answers
# (to-VETH), the port's static FDB entry (keeper.wire) and storm control (bridge prerouting).
FILTERS = ("mac", "arp", "ipv4", "dhcp-server", "dhcp-client", "ipv6", "vlan", "fdb", "storm")


def allow_out(net: Bridge, address: str) -> None:
    """NAT on for this address: out beyond the bridge, masqueraded as the host."""
    run_nft(f"add element ip {net.name} nat {{ {address} }}\n")


def disallow_out(net: Bridge, address: str) -> None:
    run_nft(f"delete element ip {net.name} nat {{ {address} }}\n", check=False)


def add_forwards(net: Bridge, address: str, forwards: tuple[Forward, ...]) -> None:
    if forwards:
        items = ", ".join(f"{f.proto} . {f.host_port} : {address} . {f.container_port}" for f in forwards)
        run_nft(f"add element ip {net.name} forwards {{ {items} }}\n")


def remove_forwards(net: Bridge, forwards: tuple[Forward, ...]) -> None:
    for f in forwards:  # one by one: a missing element must not keep the others
        run_nft(f"delete element ip {net.name} forwards {{ {f.proto} . {f.host_port} }}\n", check=False)
