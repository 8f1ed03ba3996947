"""Serve the agent: HTTPS with mutual TLS on localhost:1337 and a root-only unix socket.

One agent per root (flock). SIGTERM or SIGINT stops accepting, lets requests in
flight finish, and exits: containers are never touched, they do not need us.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from prodng import locks
from prodng.agent import credentials, gate
from prodng.agent.app import create_app
from prodng.config import Paths

log = logging.getLogger(__name__)
DEFAULT_PORT = 1337
DRAIN_SECONDS = 10.0
IDLE_SECONDS = 30.0  # a kept-alive connection with no request


def socket_path(paths: Paths) -> Path:
    return paths.root / "agent.sock"


def served_names(listen: str) -> tuple[str, ...]:
    """The names clients may reach the agent by: loopback's, and the address it listens on
    unless that is a wildcard. Its certificate carries them; a Host header must be one."""
    return (
        credentials.LOOPBACK
        if listen in ("0.0.0.0", "::", "", *credentials.LOOPBACK)
        else (*credentials.LOOPBACK, listen)
    )


async def _serve(paths: Paths, listen: str, port: int, unix: Path) -> None:
    app = create_app(paths, served_names(listen))
    runner = web.AppRunner(
        app, handle_signals=False, access_log=None, shutdown_timeout=DRAIN_SECONDS, keepalive_timeout=IDLE_SECONDS
    )
    await runner.setup()
    credentials.ensure(paths, served_names(listen))
    # TCP goes through the gate (handshake timeout, bounded connections); the unix socket is aiohttp's own.
    tcp = await gate.serve(listen, port, credentials.server_context(paths), runner.server)  # type: ignore[arg-type]
    unix.unlink(missing_ok=True)
    old_umask = os.umask(0o177)  # the socket is 0600 from its first moment
    try:
        await web.UnixSite(runner, str(unix)).start()
    finally:
        os.umask(old_umask)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    print(
        f"prodng agent: https://{listen}:{port}/prodng/ and unix:{unix} (root {paths.root})",
        file=sys.stderr,
        flush=True,
    )
    await stop.wait()
    log.info("draining requests in flight")
    tcp.close()
    await runner.cleanup()
    unix.unlink(missing_ok=True)


def serve(paths: Paths, listen: str = "127.0.0.1", port: int = DEFAULT_PORT, unix: Path | None = None) -> int:
    paths.root.mkdir(parents=True, exist_ok=True, mode=0o700)
    gate.raise_fd_limit()  # 1,024 idle sockets must never be all it takes to silence the agent
    with locks.hold(paths.locks / "agent.lock", wait=False, what="the agent lock (another agent serves this root)"):
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(paths, listen, port, unix or socket_path(paths)))
    return 0
