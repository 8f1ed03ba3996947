"""The network keeper: one per dhcp or static container, for as long as its monitor lives.

Its main thread works on the host side (bridge port, veth, forwards, name); the address
is set from a thread that has entered the container's namespace, and for dhcp
pyroute2's client runs in that thread for the container's whole life, renewing the
lease. It answers "ready" once eth0 has its address ("error MSG" after undoing
everything otherwise) and undoes everything when the lifeline closes, that is when the
monitor ends, however it ends, or on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import queue
import select
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from prodng.config import Paths
from prodng.container import logs, state
from prodng.network import claims, dnsmasq, host, modes, nft, wiring

SOL_PACKET, PACKET_IGNORE_OUTGOING = 263, 23  # linux/socket.h, linux/if_packet.h (Linux 4.20)
NUD_NOARP, NTF_MASTER = 0x40, 0x04  # a static bridge FDB entry (`bridge fdb add ... master static`)
MODULE = "prodng.network.keeper_server"  # in a keeper's argv: what follows are its arguments
CLONE_NEWNET = 0x40000000


def setns(fd: int) -> None:
    """Enter a network namespace, for the calling thread only."""
    from prodng._native import lib  # type: ignore[import-not-found]

    rc = lib.pn_setns(fd, CLONE_NEWNET)
    if rc < 0:
        raise OSError(-rc, f"setns: {os.strerror(-rc)}")


class Keeper:
    def __init__(self, paths: Paths, name: str, container_ns: int, lifeline: int) -> None:
        self.paths, self.name = paths, name
        self.container_ns, self.lifeline = container_ns, lifeline
        record = state.load(paths, name)
        self.mode, self.forwards = record.network, record.forwards
        self.nat = record.nat or paths.settings.nat  # per container, or for the whole bridge
        self.net = modes.bridge(paths.settings)
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self.dhcp: DhcpThread | None = None
        self.address = ""
        self.stopping = False
        self.wired = {
            "mode": str(record.network),
            "veth": wiring.veth_name(paths, name),
            "mac": wiring.mac_address(paths, name),
            "keeper_pid": os.getpid(),
            "keeper_start": state.starttime(os.getpid()),
        }
        self.owner = wiring.keeper_owner(self.wired)

    # ---- messages between threads and signal handlers ----

    def post(self, kind: str, value: Any = None) -> None:
        self.inbox.put((kind, value))
        try:
            os.write(self.wake_write, b".")
        except BlockingIOError:
            pass

    def log(self, line: str) -> None:
        """A line in the container's log, where `prodng logs` shows it."""
        fd = os.open(self.paths.container_state(self.name) / "log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, f"{logs.OWN_LINE_MARK}prodng: {line}\n".encode())
        finally:
            os.close(fd)

    def renew(self) -> None:
        if self.dhcp:
            self.dhcp.renew()

    # ---- setting up ----

    def in_container(self, work: Callable[[], Any]) -> Any:
        """Run work in a short thread inside the container's namespace (setns is per thread)."""
        result: dict[str, Any] = {}

        def target() -> None:
            try:
                setns(self.container_ns)
                result["value"] = work()
            except BaseException as err:  # handed to the caller
                result["error"] = err

        thread = threading.Thread(target=target)
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]
        return result.get("value")

    def wire(self) -> None:
        """A veth pair: eth0 inside, the other end on the bridge, both up."""
        veth = str(self.wired["veth"])
        with IPRoute() as ipr:
            for stale in ipr.link_lookup(ifname=veth):  # a keeper killed before its teardown
                ipr.link("del", index=stale)
                nft.unguard_port(self.net, veth)  # whoever's it was: this keeper owns the port now
            ipr.link(
                "add",
                ifname=veth,
                kind="veth",
                peer={"ifname": "eth0", "net_ns_fd": self.container_ns, "address": self.wired["mac"]},
            )
            index = ipr.link_lookup(ifname=veth)[0]
            host.sysctl(f"ipv6.conf.{veth}.disable_ipv6", "1")
            bridge = ipr.link_lookup(ifname=self.net.name)[0]
            ipr.link("set", index=index, master=bridge)
            # The bridge learns no MAC from this port (it did from frames the filters then dropped,
            # and from link-local ones no filter sees: another container's MAC moved here, and its
            # frames with it); the container's own is a static entry, and frames for MACs the bridge
            # does not know are not flooded here.
            ipr.brport("set", index=index, learning=0, unicast_flood=0)
            ipr.fdb("add", ifindex=index, lladdr=self.wired["mac"], state=NUD_NOARP, flags=NTF_MASTER)
            self.guard(None)  # before the port is up: no frame passes unfiltered
            ipr.link("set", index=index, state="up")

        def eth0_up() -> None:
            with IPRoute() as inner:
                inner.link("set", index=inner.link_lookup(ifname="eth0")[0], state="up")

        self.in_container(eth0_up)

    def guard(self, address: str | None) -> None:
        nft.guard_port(self.net, str(self.wired["veth"]), str(self.wired["mac"]), address, self.owner)

    def configure_static(self) -> None:
        assert self.mode.address
        address, gateway = self.mode.address, self.mode.gateway or self.net.gateway

        def configure() -> None:
            with IPRoute() as ipr:
                index = ipr.link_lookup(ifname="eth0")[0]
                ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
                ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway))

        self.in_container(configure)
        self.publish(str(address.ip), address.network.prefixlen, str(gateway), None)

    def lease_from_dhcp(self) -> None:
        self.dhcp = DhcpThread(self)
        self.dhcp.start()
        timeout = self.paths.settings.dhcp_timeout
        deadline = time.monotonic() + timeout
        while not self.address:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.wake_read], [], [], left)[0]:
                raise TimeoutError(f"no answer from the DHCP server on {self.net.name} within {timeout:g} s")
            self.handle_inbox()

    def publish(self, address: str, prefixlen: int, gateway: str, expires: float | None) -> None:
        """Name, forwards and net.json follow the address (a renewal may, rarely, change it)."""
        changed = address != self.address
        if changed and self.address:
            nft.remove_forwards(self.net, self.forwards)
            if self.nat:
                nft.disallow_out(self.net, self.address)
            if self.mode.kind == "dhcp":
                claims.release_address(self.paths, self.name, self.address)
        if changed:
            if self.mode.kind == "dhcp":  # a static one was claimed before the start
                claims.claim_leased_address(self.paths, self.name, address)
            self.guard(address)  # the port may now speak from this address, and from no other
            if self.nat:
                nft.allow_out(self.net, address)
            dnsmasq.publish_name(wiring.runtime_dir(self.paths), self.name, address)
            nft.add_forwards(self.net, address, self.forwards)
            self.log(
                f"eth0 {address}/{prefixlen} ({self.mode.kind}), {self.name}.{modes.DOMAIN}"
                + "".join(f", host port {f}" for f in self.forwards)
            )
        self.address = address
        wiring.write(
            self.paths,
            self.name,
            {
                **self.wired,
                "ip": address,
                "prefixlen": prefixlen,
                "gateway": gateway,
                "dns": f"{self.name}.{modes.DOMAIN}",
                "lease_expires": expires,
                "filters": ",".join(nft.FILTERS),
                "outbound": "nat" if self.nat else "bridge",
            },
        )

    def handle_inbox(self) -> None:
        while True:
            try:
                os.read(self.wake_read, 4096)
            except BlockingIOError:
                pass
            try:
                kind, value = self.inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "bound":
                self.publish(*value)
            elif kind == "failed":
                raise RuntimeError(value)
            elif kind == "stop":
                self.stopping = True

    # ---- the life ----

    def run(self) -> int:
        signal.signal(signal.SIGTERM, lambda *_: self.post("stop"))
        signal.signal(signal.SIGINT, lambda *_: self.post("stop"))
        signal.signal(signal.SIGUSR1, lambda *_: self.renew())  # renew the lease now
        lifeline = self.lifeline
        try:
            wiring.write(self.paths, self.name, self.wired)  # first: a crash from here on is found and undone
            self.wire()  # on the bridge container.lifecycle made sure of before starting the monitor
            if self.mode.kind == "dhcp":
                self.lease_from_dhcp()
            else:
                self.configure_static()
        except BaseException as err:
            self.teardown()
            tell(lifeline, f"error {' '.join(str(err).split())}")
            return 1
        if tell(lifeline, "ready"):  # else the monitor died meanwhile: nothing to keep
            self.watch(lifeline)
        self.teardown()
        return 0

    def watch(self, lifeline: int) -> None:
        """Until the monitor ends: keep the lease (in the DHCP thread) and dnsmasq alive."""
        watcher = select.poll()
        watcher.register(lifeline, select.POLLIN)
        watcher.register(self.wake_read, select.POLLIN)
        dnsmasq_fd = self.watch_dnsmasq(watcher, None)
        while not self.stopping:
            for fd, _ in watcher.poll():
                if fd == lifeline and not os.read(lifeline, 64):
                    return
                if fd == dnsmasq_fd:
                    self.log("dnsmasq died; restarting it")
                    dnsmasq_fd = self.watch_dnsmasq(watcher, dnsmasq_fd)
                if fd == self.wake_read:
                    try:
                        self.handle_inbox()
                    except RuntimeError as err:
                        self.log(f"DHCP client failed: {err}")
                        return

    def watch_dnsmasq(self, watcher: select.poll, previous: int | None) -> int | None:
        if previous is not None:
            watcher.unregister(previous)
            os.close(previous)
            host.ensure_host_side(self.paths, self.net)  # dnsmasq died while this container runs: start it again
        pid = dnsmasq.running_pid(wiring.runtime_dir(self.paths))
        try:
            fd = os.pidfd_open(pid) if pid else None
        except ProcessLookupError:
            fd = None
        if fd is not None:
            watcher.register(fd, select.POLLIN)
        return fd

    def teardown(self) -> None:
        if self.dhcp:
            self.dhcp.stop()  # sends the RELEASE
        host.teardown(self.paths, self.name, self.forwards, self.owner)


class DhcpThread(threading.Thread):
    """pyroute2's DHCP client on eth0, inside the container's namespace, for the keeper's life."""

    def __init__(self, keeper: Keeper) -> None:
        super().__init__(name="dhcp", daemon=True)
        self.keeper = keeper
        self.loop: asyncio.AbstractEventLoop | None = None
        self.done: asyncio.Event | None = None
        self.client: Any = None

    def run(self) -> None:
        try:
            setns(self.keeper.container_ns)
            asyncio.run(self.main())
        except BaseException as err:
            self.keeper.post("failed", f"{type(err).__name__}: {err}")

    async def main(self) -> None:
        from pyroute2.dhcp.client import ClientConfig, randomized_increasing_backoff
        from pyroute2.dhcp.hooks import Trigger, add_default_gw, configure_ip, hook
        from pyroute2.dhcp.leases import JSONFileLease

        keeper = self.keeper
        directory = keeper.paths.container_state(keeper.name)

        class StateDirLease(JSONFileLease):
            @classmethod
            def _get_lease_dir(cls) -> Path:
                return directory

        @hook(Trigger.BOUND)
        async def bound(lease: Any) -> None:
            keeper.post("bound", (lease.ip, lease.prefixlen, lease.default_gateway, time.time() + lease.expiration_in))

        self.loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        config = ClientConfig(
            interface="eth0",
            lease_type=StateDirLease,
            hooks=(configure_ip, add_default_gw, bound),
            handle_signals=False,
            host_name=keeper.name,
            vendor_id="prodng",
            # The bridge is a local wire: retry soon, not after RFC 2131's 4 s.
            retransmission=lambda: randomized_increasing_backoff(wait_first=0.5, wait_max=8.0),
        )
        async with _host_only_client(keeper)(config) as client:
            self.client = client
            await client.bootstrap()
            await self.done.wait()

    def renew(self) -> None:
        if self.loop and self.client:
            self.loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.client._renew()))

    def stop(self, timeout: float = 3.0) -> None:
        """Leave the client's context: it sends a RELEASE and removes the address."""
        if self.loop and self.done:
            self.loop.call_soon_threadsafe(self.done.set)
        self.join(timeout)


def from_server(msg: Any, server: str) -> bool:
    """A DHCP answer from the bridge's server: its address, port 67 and its server identifier."""
    return bool(msg.ip_src == server and msg.sport == 67 and msg.dhcp["options"].get("server_id") == server)


def to_client(msg: Any, mac: str) -> bool:
    """An answer for this MAC: the server copies the client's hardware address into chaddr, so an
    answer to any other client (whatever transaction id it asked with) is not ours."""
    dhcp = msg.dhcp
    return bool(dhcp["htype"] == 1 and dhcp["hlen"] == 6 and str(dhcp["chaddr"]).lower() == mac.lower())


def describe(msg: Any) -> str:
    kind = getattr(msg.dhcp["options"].get("message_type"), "name", "?")
    server_id = msg.dhcp["options"].get("server_id")
    return f"{kind} from {msg.eth_src} {msg.ip_src}:{msg.sport}, server id {server_id}, for {msg.dhcp['chaddr']}"


def tell(lifeline: int, line: str) -> bool:
    try:
        os.write(lifeline, f"{line}\n".encode())
        return True
    except OSError:
        return False


def _host_only_client(keeper: Keeper) -> Any:
    """The DHCP client class for this keeper's container (pyroute2 is imported by the keeper alone)."""
    from pyroute2.dhcp.client import AsyncDHCPClient

    server, mac = str(keeper.net.gateway), str(keeper.wired["mac"])
    ignored: list[Any] = []  # the first ignored answer: one log line per keeper

    class HostOnlyClient(AsyncDHCPClient):  # type: ignore[misc]
        """Takes answers from the host's dnsmasq alone, to this container alone. The bridge
        already drops forgeries from containers; this holds even where a filter is missing (a
        port not ours), and against the real server's answer to another client made to carry
        this client's transaction id (a container can ask the server for that: issue 14)."""

        async def __aenter__(self) -> Any:
            """The client's packet socket on eth0 would also see the frames the container
            sends: a container with NET_RAW (prodng gives none) could answer its own keeper as
            the server, before the server. Only frames that came in are read (before the
            service starts, so nothing of the container's is queued yet)."""
            entered = await super().__aenter__()
            self._sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            return entered

        async def _process_msg(self, msg: Any) -> None:
            if from_server(msg, server) and to_client(msg, mac):
                await super()._process_msg(msg)
            elif not ignored:  # once: a forger must not be able to fill the log
                ignored.append(msg)
                keeper.log(
                    f"ignored a DHCP answer not from the host to this container ({describe(msg)});"
                    " any more are ignored silently"
                )

    return HostOnlyClient
