"""A container's log: the monitor's bounded, rotated file; read, tail and follow."""

from __future__ import annotations

import time
from collections.abc import Iterator

from prodng.config import Paths
from prodng.container import state
from prodng.container.observe import ACTIVE, observe


def log_lines(paths: Paths, name: str, tail: int | None = None) -> list[str]:
    state.load(paths, name)
    directory = paths.container_state(name)
    text = ""
    for part in ("log.1", "log"):
        try:
            text += (directory / part).read_text(errors="replace")
        except FileNotFoundError:
            pass
    lines = text.splitlines()
    return lines[-tail:] if tail is not None and tail >= 0 else lines


def follow_log(paths: Paths, name: str, tail: int | None = None) -> Iterator[str | None]:
    """The log so far, then new lines until the container stops; None about once a second
    while nothing is written (a heartbeat for readers that must notice a gone client)."""
    yield from log_lines(paths, name, tail)
    log = paths.container_state(name) / "log"
    position = log.stat().st_size if log.exists() else 0
    idle = 0
    while True:
        size = log.stat().st_size if log.exists() else 0
        if size < position:  # rotated
            position = 0
        if size > position:
            with open(log, errors="replace") as f:
                f.seek(position)
                chunk = f.read()
                position = f.tell()
            yield from chunk.splitlines()
            idle = 0
            continue
        if not state.exists(paths, name) or observe(paths, state.load(paths, name)).state not in ACTIVE:
            return
        time.sleep(0.2)
        idle += 1
        if idle % 5 == 0:
            yield None
