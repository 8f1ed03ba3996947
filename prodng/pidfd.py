"""Signalling processes prodng did not start as its children (monitors, inits, dnsmasq,
the keeper server) through a pidfd: once the fd is open the pid cannot be given to
another process, so nothing but the process meant is ever hit."""

from __future__ import annotations

import os
import select
import signal
from collections.abc import Callable


def send_signal(pid: int, sig: int, *, still_it: Callable[[], bool] | None = None, wait: float = 0.0) -> bool:
    """Send sig to pid; False if it is gone. still_it (its start time or command line is
    the one meant) is asked after the pidfd is open, when the answer can no longer change.
    With wait, also wait up to that many seconds for the process to end (a pidfd polls
    readable when it has, its sockets released; its /proc entry vanishes earlier)."""
    if pid <= 0:  # 0 and -1 would mean a process group: never meant here
        return False
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if still_it is not None and not still_it():
            return False
        signal.pidfd_send_signal(fd, sig)
        if wait > 0:
            select.select([fd], [], [], wait)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)
