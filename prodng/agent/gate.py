"""The agent's TCP door: no client that has not proven itself can take what a trusted one needs.

Connections are counted by peer: the uid that made the other end's socket when it is on this host
(prodng/agent/peers.py: every local user comes from 127.0.0.1), else its address. A peer may start
HANDSHAKES_PER_SECOND handshakes (a burst of HANDSHAKE_BURST): past that its new connections are
dropped before any TLS work, so a local user cannot spend the agent's one event loop on key
exchanges. Every TCP connection must finish its TLS handshake (mutual TLS: a trusted client
certificate) within HANDSHAKE_SECONDS. At most PENDING_MAX connections wait in their handshake,
PER_PEER_PENDING from one peer; past that the oldest waiting one of that peer (or, when all are
taken, of the peer holding most) is dropped, so a flood is shed from its own old end and never
sheds another peer's handshake. Authenticated connections are bounded too: TRUSTED_MAX in all,
PER_CLIENT_TRUSTED per client certificate, so one trusted client cannot lock out the others; a
connection without a complete request is closed after the server's idle timeout (server.py) and
a request body must arrive within app.BODY_SECONDS. The unix socket is served apart and never
shares these counts. The fds for all of it are guaranteed by raise_fd_limit() at start.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import resource
import socket
import ssl
import struct
import time
from collections.abc import Callable

from prodng.agent.peers import Peers

log = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 5.0
HANDSHAKES_PER_SECOND = 200.0  # a handshake costs the loop ~0.3 ms: one peer takes at most ~6 % of it
HANDSHAKE_BURST = 200.0
PENDING_MAX = 256
PER_PEER_PENDING = 64
TRUSTED_MAX = 512
PER_CLIENT_TRUSTED = 64
FD_LIMIT = 65536
BACKLOG = 1024  # the kernel's queue of connections not accepted yet (capped at net.core.somaxconn)
ACCEPT_BATCH = 1024  # accepted in one go before other work gets the loop


def raise_fd_limit(want: int = FD_LIMIT) -> int:
    """The soft RLIMIT_NOFILE up to want (or the hard limit); returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class Rate:
    """A token bucket per peer: rate a second, up to burst saved."""

    MAX_PEERS = 4096  # full buckets are forgotten past this many peers

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.buckets: dict[str, tuple[float, float]] = {}  # peer -> (tokens, when)

    def take(self, peer: str) -> bool:
        now = time.monotonic()
        tokens, when = self.buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if len(self.buckets) >= self.MAX_PEERS:
            self.buckets = {p: (t, w) for p, (t, w) in self.buckets.items() if t + (now - w) * self.rate < self.burst}
        self.buckets[peer] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
        return tokens >= 1


class Gate:
    """Counts and sheds TCP connections before they reach aiohttp (serve() below)."""

    def __init__(self, context: ssl.SSLContext, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        self.context, self.protocol_factory = context, protocol_factory
        self.peers = Peers()
        self.rate = Rate(HANDSHAKES_PER_SECOND, HANDSHAKE_BURST)
        # Connections in their handshake, by peer, oldest first.
        self.pending: dict[str, collections.OrderedDict[asyncio.Transport, None]] = {}
        self.trusted: dict[str, set[asyncio.Transport]] = {}  # by client certificate

    def accept(self, listener: socket.socket) -> None:
        """Take what waits in listener's queue, to its end (a batch at most): a connection over its peer's
        handshake rate is reset here, before any object, task or TLS work is spent on it. Accepting faster
        than a flood connects keeps the kernel's queue (shared by every peer) from dropping others' SYNs."""
        for _ in range(ACCEPT_BATCH):
            try:
                conn, remote = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE and the like: what is queued waits for the next round
                log.warning("accept: %s", err)
                return
            peer = self.peers.key(conn.getsockname(), remote)
            if not self.rate.take(peer):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset: no FIN wait
                conn.close()
                continue
            conn.setblocking(False)
            asyncio.get_running_loop().create_task(self._connect(conn, peer))

    async def _connect(self, conn: socket.socket, peer: str) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: _Holder(self, peer), conn)
        except OSError:
            conn.close()

    def admit(self, transport: asyncio.Transport, peer: str) -> None:
        waiting = self.pending.setdefault(peer, collections.OrderedDict())
        if len(waiting) >= PER_PEER_PENDING:
            self._shed(peer)
        elif sum(len(w) for w in self.pending.values()) >= PENDING_MAX:
            self._shed(max(self.pending, key=lambda p: len(self.pending[p])))
        waiting[transport] = None
        asyncio.get_running_loop().create_task(self._handshake(transport, peer))

    def _shed(self, peer: str) -> None:
        """Drop the oldest connection of peer still in its handshake."""
        waiting = self.pending[peer]
        transport, _ = waiting.popitem(last=False)
        transport.abort()

    def _settled(self, transport: asyncio.Transport, peer: str) -> None:
        waiting = self.pending.get(peer)
        if waiting is not None:
            waiting.pop(transport, None)
            if not waiting:
                del self.pending[peer]

    def _trusted_slot(self, secure: asyncio.Transport) -> bool:
        """Counts secure against its client certificate's share; False when that share or all are taken."""
        ssl_object = secure.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        client = hashlib.sha256(certificate or b"").hexdigest()
        self.trusted = {c: live for c, ts in self.trusted.items() if (live := {t for t in ts if not t.is_closing()})}
        held = self.trusted.setdefault(client, set())
        if len(held) >= PER_CLIENT_TRUSTED or sum(len(ts) for ts in self.trusted.values()) >= TRUSTED_MAX:
            return False
        held.add(secure)
        return True

    async def _handshake(self, transport: asyncio.Transport, peer: str) -> None:
        loop = asyncio.get_running_loop()
        holder: _Holder = transport.get_protocol()  # type: ignore[assignment]
        try:
            secure = await loop.start_tls(
                transport, holder, self.context, server_side=True, ssl_handshake_timeout=HANDSHAKE_SECONDS
            )
        except Exception as err:  # a bad certificate, a timeout, a reset, shed: the connection is gone
            log.debug("TLS handshake refused: %s", err)
            transport.abort()
            return
        finally:
            self._settled(transport, peer)
        if secure is None or not self._trusted_slot(secure):  # type: ignore[arg-type]
            transport.abort()
            return
        protocol = self.protocol_factory()
        secure.set_protocol(protocol)
        protocol.connection_made(secure)
        if holder.early:  # the request may have come with the handshake's last flight
            protocol.data_received(bytes(holder.early))  # type: ignore[attr-defined]


class _Holder(asyncio.Protocol):
    """Stands for the connection until its handshake is done; then passes the end on."""

    def __init__(self, gate: Gate, peer: str) -> None:
        self.gate, self.peer = gate, peer
        self.early = bytearray()

    def data_received(self, data: bytes) -> None:
        self.early.extend(data)  # decrypted before the hand-over: kept for aiohttp

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]  # start_tls takes the bytes from here
        self.gate.admit(transport, self.peer)  # type: ignore[arg-type]


class Door:
    """The listening sockets, read by Gate.accept on the event loop; close() stops accepting."""

    def __init__(self, listeners: list[socket.socket]) -> None:
        self.listeners = listeners

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        for listener in self.listeners:
            loop.remove_reader(listener.fileno())
            listener.close()


async def serve(
    host: str, port: int, context: ssl.SSLContext, protocol_factory: Callable[[], asyncio.Protocol]
) -> Door:
    gate = Gate(context, protocol_factory)
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            listener = socket.socket(family, kind, proto)
            listeners.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # as asyncio's create_server
            listener.bind(address)
            listener.listen(BACKLOG)
            listener.setblocking(False)
            loop.add_reader(listener.fileno(), gate.accept, listener)
    except OSError:
        for listener in listeners:
            with contextlib.suppress(ValueError):
                loop.remove_reader(listener.fileno())
            listener.close()
        raise
    return Door(listeners)
