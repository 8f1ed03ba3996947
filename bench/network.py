"""Time from `run` to a bound DHCP lease: 20 containers one after another, then 20 at once.

The figure is the library's run (snapshot, monitor, network keeper, veth, lease) until
it returns, which it does once the lease is bound and the service exec'd. The peer is
a bare lease from the same dnsmasq: a plain network namespace, a veth on the same
bridge and pyroute2's client, no container at all — the floor any runtime pays.
Everything happens inside a network namespace made here; nothing leaves it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import bench_context

from prodng.container import lifecycle, state
from prodng.container.state import ContainerRecord
from prodng.network import host, modes, nft, wiring
from prodng.network.keeper import setns

COUNT = int(os.environ.get("BENCH_COUNT", "20"))
NETNS = f"prodng-bench-{os.getpid()}"


def run_one(ctx, name: str) -> float:  # type: ignore[no-untyped-def]
    if state.exists(ctx.paths, name):
        lifecycle.remove(ctx.paths, name, force=True)
    began = time.perf_counter()
    lifecycle.create(
        ctx.paths, ContainerRecord(name=name, template="bookworm", argv=("sleep", "100000"), network=modes.Mode("dhcp"))
    )
    lifecycle.start(ctx.paths, name)
    took = time.perf_counter() - began
    assert wiring.read(ctx.paths, name).get("ip"), f"{name} has no address"
    return took


def bare_lease(net: modes.Bridge, index: int) -> float:
    """A veth into a plain namespace and one DHCP exchange there, timed the same way."""
    from pyroute2 import IPRoute
    from pyroute2.dhcp.client import AsyncDHCPClient, ClientConfig, randomized_increasing_backoff
    from pyroute2.dhcp.fsm import State
    from pyroute2.dhcp.leases import Lease

    class Unsaved(Lease):
        def dump(self) -> None:
            pass

        @classmethod
        def load(cls, interface: str) -> None:
            return None

    bare = f"{NETNS}-bare"
    subprocess.run(["ip", "netns", "add", bare], check=True)
    fd = os.open(f"/run/netns/{bare}", os.O_RDONLY)
    veth, mac = f"pnbare{index}", f"02:be:00:00:00:{index % 256:02x}"
    try:
        began = time.perf_counter()
        with IPRoute() as ipr:
            ipr.link("add", ifname=veth, kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd, "address": mac})
            nft.guard_port(net, veth, mac, None, "bench")  # the bridge carries only guarded ports
            ipr.link(
                "set", index=ipr.link_lookup(ifname=veth)[0], master=ipr.link_lookup(ifname="prodng0")[0], state="up"
            )

        async def lease() -> None:
            config = ClientConfig(
                interface="eth0",
                lease_type=Unsaved,
                hooks=(),
                handle_signals=False,
                retransmission=lambda: randomized_increasing_backoff(0.5, 8.0),
            )
            async with AsyncDHCPClient(config) as client:
                await client.bootstrap()
                await client.wait_for_state(State.BOUND, timeout=20)

        def inside() -> None:
            setns(fd)
            with IPRoute() as ipr:
                ipr.link("set", index=ipr.link_lookup(ifname="eth0")[0], state="up")
            asyncio.run(lease())
            bound.append(time.perf_counter())

        bound: list[float] = []
        thread = threading.Thread(target=inside)
        thread.start()
        thread.join()
        assert bound, "the bare client got no lease"
        return bound[0] - began
    finally:
        os.close(fd)
        subprocess.run(["ip", "netns", "del", bare], check=False)
        nft.unguard_port(net, veth)


def pss_mib(pid: int) -> float:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("Pss:"))) / 1024


def summary(label: str, seconds: list[float]) -> str:
    return f"{label:<40} median {statistics.median(seconds) * 1000:7.1f} ms   max {max(seconds) * 1000:7.1f} ms"


def main() -> None:
    ctx = bench_context()  # builds the template (if needed) while the host's network is still ours
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    host_ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fd = os.open(f"/run/netns/{NETNS}", os.O_RDONLY)
    setns(fd)  # this thread, and every thread it starts from now on
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    names = [f"bench-net-{i}" for i in range(COUNT)]
    try:
        sequential = [run_one(ctx, name) for name in names]
        keepers = [pss_mib(int(str(wiring.read(ctx.paths, n)["keeper_pid"]))) for n in names]
        for name in names:
            lifecycle.remove(ctx.paths, name, force=True)
        began = time.perf_counter()
        with ThreadPoolExecutor(COUNT) as pool:
            concurrent = list(pool.map(lambda n: run_one(ctx, n), names))
        wall = time.perf_counter() - began
        for name in names:
            lifecycle.remove(ctx.paths, name, force=True)
        bare = [bare_lease(modes.bridge(ctx.paths.settings), i) for i in range(COUNT)]
        print(f"run -> bound lease, {COUNT} containers (target: median under 1 s)")
        print(summary("prodng run, one after another", sequential))
        print(summary(f"prodng run, {COUNT} at once (each)", concurrent) + f"   all done in {wall * 1000:.0f} ms")
        print(summary("peer: bare veth + lease, no container", bare))
        print(f"network keeper memory per container: median {statistics.median(keepers):.1f} MiB PSS")
        print(f"ratio prodng/bare (sequential medians): {statistics.median(sequential) / statistics.median(bare):.1f}x")
    finally:
        for name in names:
            if state.exists(ctx.paths, name):
                lifecycle.remove(ctx.paths, name, force=True)
        host.shut_down(ctx.paths, modes.bridge(ctx.paths.settings))
        setns(host_ns)
        subprocess.run(["ip", "netns", "del", NETNS], check=False)


if __name__ == "__main__":
    main()
