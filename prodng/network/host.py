"""The network's host side, and the path to follow for networking.

Network path, in the order things happen:
1. `container.lifecycle.start_locked` parses nothing (the record holds a parsed Mode and
   Forwards, network.modes), claims the address and host ports (network.claims), writes the
   container's resolv.conf (network.wiring) and starts the host side: `ensure_host_side`,
   here, makes the bridge and its nft tables (network.nft) and starts dnsmasq
   (network.dnsmasq) and the warm keeper server (network.keeper_server) if they are missing.
2. The C monitor (native/keeper.c) unshares the container's network namespace and hands
   it, with its end of a lifeline, to the keeper server, which forks a keeper
   (network.keeper; `python -m prodng.network.keeper_server` cold when no server answers).
3. The keeper wires the veth to the bridge, takes a DHCP lease or sets the static address,
   publishes NAME.prodng and the forwards, records it all in state/NAME/net.json
   (network.wiring) and says "ready" to the monitor; it restarts dnsmasq if it dies.
4. When the lifeline closes (the monitor ended) the keeper undoes everything (`teardown`,
   here); a stop or rm that finds a killed keeper's work undoes it the same way
   (container.lifecycle.release_network).
Every step is idempotent, so a crash at any point is finished by whoever comes next.
"""

from __future__ import annotations

import errno
import signal
import sys
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from prodng import pidfd, run
from prodng.config import Paths
from prodng.errors import Conflict
from prodng.network import dnsmasq
from prodng.network.claims import mine_or_nobodys, not_claimed_by_others, release_claims_locked
from prodng.network.modes import Bridge, Forward, bridge
from prodng.network.nft import disallow_out, host_tables, remove_forwards, run_nft, unguard_port
from prodng.network.wiring import (
    keeper_owner,
    keeper_server,
    locked,
    mac_address,
    net_file,
    read,
    runtime_dir,
    veth_name,
)


def _recorded_server_pid(paths: Paths) -> int:
    try:
        return int(keeper_server(paths).with_suffix(".pid").read_text())
    except (FileNotFoundError, ValueError):
        return 0


def _is_keeper_server(pid: int) -> bool:
    """The pid file may be stale and its pid another process's by now."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return b"prodng.network.keeper_server" in cmdline and b"--serve" in cmdline


def _ensure_keeper_server(paths: Paths) -> None:
    if not _is_keeper_server(_recorded_server_pid(paths)):
        run.spawn_daemon([sys.executable, "-I", "-m", "prodng.network.keeper_server", "--serve", keeper_server(paths)])


def sysctl(key: str, value: str) -> None:
    Path("/proc/sys/net", *key.split(".")).write_text(value)


def _ensure_tables(paths: Paths, net: Bridge) -> None:
    """Both tables as this prodng writes them: rewritten whole (one transaction) when missing or
    written by other code (an upgrade's rules apply at once), else left alone (one cheap listing)."""
    script = host_tables(net)
    stamp = runtime_dir(paths) / "nft.rules"
    tables = run.run([run.require("nft", "nftables"), "list", "tables"]).stdout.splitlines()
    present = {f"table ip {net.name}", f"table bridge {net.name}"} <= set(tables)
    if present and stamp.exists() and stamp.read_text() == script:
        return
    run_nft(script)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(script)


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
                raise Conflict(
                    f"bridge {net.name} exists with another address than {net.interface}",
                    hint="set PRODNG_BRIDGE/PRODNG_SUBNET to match, or remove the bridge",
                )
        # Forwards to 127.0.0.1 leave through the bridge; the input chain keeps the bridge off the host.
        sysctl(f"ipv4.conf.{net.name}.route_localnet", "1")
        _ensure_tables(paths, net)
        dnsmasq.ensure(runtime_dir(paths), net)
        _ensure_keeper_server(paths)


# ---- the whole teardown, shared by the keeper and by whoever finds its work undone ----


def teardown(paths: Paths, name: str, forwards: tuple[Forward, ...], owner: str | None = None) -> None:
    """Remove the veth, the forwards, the port's filter, the name, the lease and the claims of
    one container. `owner` is the keeper undoing its own work; else the one net.json names.

    Objects of the container's own (veth, port chains, name, lease by its MAC) go by its name;
    shared ones (a host port's forward, an address's NAT) only while the container still holds
    their claim: a dead keeper's port or address may have a new owner by now (network.claims)."""
    net = bridge(paths.settings)
    wired = read(paths, name)
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=veth_name(paths, name)):
            try:
                ipr.link("del", index=index)  # takes eth0 with it
            except NetlinkError as err:
                if err.code != errno.ENODEV:
                    raise
    address = str(wired.get("ip") or "")
    with locked(paths):  # new owners claim under it: what is checked here holds until it is removed
        remove_forwards(net, not_claimed_by_others(paths, name, forwards))
        if wired.get("outbound") == "nat" and address and mine_or_nobodys(paths, name, f"ip-{address}"):
            disallow_out(net, address)
        release_claims_locked(paths, name)
    unguard_port(net, veth_name(paths, name), owner or keeper_owner(wired))
    directory = runtime_dir(paths)
    mac = str(wired.get("mac") or mac_address(paths, name))
    released = dnsmasq.forget(directory, name, mac)
    if not released:
        with locked(paths):
            dnsmasq.drop_lease(directory, mac, net)
    net_file(paths, name).unlink(missing_ok=True)


def shut_down(paths: Paths, net: Bridge) -> None:
    """Stop dnsmasq and the keeper server, remove the bridge and its table (tests, benchmarks:
    in normal use they stay for the next container)."""
    directory = runtime_dir(paths)
    server = _recorded_server_pid(paths)
    pidfd.send_signal(server, signal.SIGTERM, still_it=lambda: _is_keeper_server(server))
    pid = dnsmasq.running_pid(directory)
    if pid:
        dnsmasq.stop(pid)
    run_nft(f"delete table ip {net.name}\n", check=False)
    run_nft(f"delete table bridge {net.name}\n", check=False)
    with IPRoute() as ipr:
        for index in ipr.link_lookup(ifname=net.name):
            ipr.link("del", index=index)
    run.run(["rm", "-rf", str(directory)])
