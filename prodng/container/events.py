"""Lifecycle events (created, started, died, restarted, frozen, thawed, removed).

Whoever changes a container appends one JSON line to ROOT/events.jsonl: the
verbs here, and each container's monitor (died, restarted) from C. Appends of a
short line with O_APPEND are atomic, so no daemon is needed to order them;
followers tail the file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from prodng import locks
from prodng.config import Paths
from prodng.container.tailing import RotatingFile

ROTATE_BYTES = 4 * 1024**2


def journal(paths: Paths) -> str:
    return str(paths.root / "events.jsonl")


def rotate_lock(paths: Paths) -> Path:
    """Held while the journal is rotated, here and by each container's monitor (native/monitor.c)."""
    return paths.locks / "events.lock"


def emit(paths: Paths, kind: str, name: str, **extra: object) -> None:
    line = json.dumps({"event": kind, "name": name, "time": time.time(), **extra}) + "\n"
    path = journal(paths)
    try:
        if os.path.getsize(path) > ROTATE_BYTES:
            with locks.hold(rotate_lock(paths)):
                if os.path.getsize(path) > ROTATE_BYTES:
                    os.replace(path, path + ".1")
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def follow(paths: Paths, heartbeat: float = 1.0) -> Iterator[dict[str, object] | None]:
    """Events from now on, forever; None after `heartbeat` idle seconds, so a reader (the
    agent) regains control often enough to notice a gone client or its own shutdown.
    A rotation of the journal loses nothing (container.tailing)."""
    follower = RotatingFile(journal(paths), from_start=False)
    quiet_since = time.monotonic()
    try:
        while True:
            if lines := follower.lines():
                for line in lines:
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since >= heartbeat:
                quiet_since = time.monotonic()
                yield None
            time.sleep(0.05)
    finally:
        follower.close()
