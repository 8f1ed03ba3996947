"""The agent's TCP door: no client that has not proven itself can take what a trusted one needs.

Every TCP connection must finish its TLS handshake (mutual TLS: a trusted client certificate)
within HANDSHAKE_SECONDS. At most PENDING_MAX connections wait in their handshake, PER_PEER_PENDING
from one address; past that the oldest waiting one is dropped, so a flood of idle connections
(a local user opening thousands of sockets) is shed from its old end while a real client's fresh
connection completes in milliseconds. Authenticated connections are bounded too (TRUSTED_MAX);
the unix socket is served apart and never shares these counts. The fds for all of it are
guaranteed by raise_fd_limit() at start.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import resource
import ssl
from collections.abc import Callable

log = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 5.0
PENDING_MAX = 256
PER_PEER_PENDING = 128
TRUSTED_MAX = 512
FD_LIMIT = 65536


def raise_fd_limit(want: int = FD_LIMIT) -> int:
    """The soft RLIMIT_NOFILE up to want (or the hard limit); returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


class Gate:
    """Counts and sheds TCP connections before they reach aiohttp (serve() below)."""

    def __init__(self, context: ssl.SSLContext, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        self.context, self.protocol_factory = context, protocol_factory
        self.pending: collections.OrderedDict[asyncio.Transport, str] = collections.OrderedDict()
        self.trusted: set[asyncio.Transport] = set()

    def admit(self, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "?"
        if sum(1 for a in self.pending.values() if a == address) >= PER_PEER_PENDING:
            self._shed(address)
        if len(self.pending) >= PENDING_MAX:
            self._shed(None)
        self.pending[transport] = address
        asyncio.get_running_loop().create_task(self._handshake(transport))

    def _shed(self, address: str | None) -> None:
        """Drop the oldest connection still in its handshake (from address, if given)."""
        for transport, seen in self.pending.items():
            if address is None or seen == address:
                del self.pending[transport]
                transport.abort()
                return

    async def _handshake(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        holder: _Holder = transport.get_protocol()  # type: ignore[assignment]
        try:
            secure = await loop.start_tls(
                transport, holder, self.context, server_side=True, ssl_handshake_timeout=HANDSHAKE_SECONDS
            )
        except Exception as err:  # a bad certificate, a timeout, a reset: the connection is gone
            log.debug("TLS handshake refused: %s", err)
            transport.abort()
            return
        finally:
            self.pending.pop(transport, None)
        self.trusted = {t for t in self.trusted if not t.is_closing()}
        if secure is None or len(self.trusted) >= TRUSTED_MAX:
            transport.abort()
            return
        self.trusted.add(secure)  # type: ignore[arg-type]
        protocol = self.protocol_factory()
        secure.set_protocol(protocol)
        protocol.connection_made(secure)
        if holder.early:  # the request may have come with the handshake's last flight
            protocol.data_received(bytes(holder.early))  # type: ignore[attr-defined]


class _Holder(asyncio.Protocol):
    """Stands for the connection until its handshake is done; then passes the end on."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.early = bytearray()

    def data_received(self, data: bytes) -> None:
        self.early.extend(data)  # decrypted before the hand-over: kept for aiohttp

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]  # start_tls takes the bytes from here
        self.gate.admit(transport)  # type: ignore[arg-type]


async def serve(
    host: str, port: int, context: ssl.SSLContext, protocol_factory: Callable[[], asyncio.Protocol]
) -> asyncio.Server:
    gate = Gate(context, protocol_factory)
    return await asyncio.get_running_loop().create_server(lambda: _Holder(gate), host, port, reuse_address=True)
