"""flock-based locks: concurrent verbs on one object serialize, a dead holder frees them."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prodng.errors import Conflict


@contextmanager
def hold(path: Path, *, wait: bool = True, what: str = "") -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Conflict(f"{what or path.name} is busy: another prodng command holds it") from None
        yield
    finally:
        os.close(fd)


def is_held(path: Path) -> bool:
    """True while some process holds the lock (used to tell live builds from dead ones)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
