"""Waiting for a condition the kernel or another process will make true, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(done: Callable[[], bool], timeout: float, *, first: float = 0.001, most: float = 0.05) -> bool:
    """Ask done() until it says True (then True) or timeout seconds have passed (then False).
    The pause between asks doubles from first to most: quick answers are seen at once,
    slow ones cost few wake-ups."""
    deadline = time.monotonic() + timeout
    delay = first
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, most)
    return True
