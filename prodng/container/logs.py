"""A container's log: the monitor's bounded, rotated file; read, tail and follow.

Each line is a record {"source": "service"|"prodng", "line": TEXT}. prodng's own lines (the
monitor's, the network keeper's) begin with OWN_LINE_MARK, a byte the monitor removes from the
service's output, so a service cannot write a line that passes for one of prodng's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prodng.config import Paths
from prodng.container import state
from prodng.container.observe import ACTIVE, observe
from prodng.container.tailing import RotatingFile

OWN_LINE_MARK = "\x1e"  # native/monitor.h PN_OWN_LINE_MARK
LogRecord = dict[str, str]


def record(raw: str) -> LogRecord:
    if raw.startswith(OWN_LINE_MARK):
        return {"source": "prodng", "line": raw[1:]}
    return {"source": "service", "line": raw}


def _split(text: str) -> list[LogRecord]:
    # Only \n ends a line: str.splitlines() would also split at \r, \x1e and the like, all the service's to write.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [record(line) for line in lines]


def log_lines(paths: Paths, name: str, tail: int | None = None) -> list[LogRecord]:
    state.load(paths, name)
    directory = paths.container_state(name)
    text = ""
    for part in ("log.1", "log"):
        try:
            text += (directory / part).read_text(errors="replace")
        except FileNotFoundError:
            pass
    lines = _split(text)
    return lines[-tail:] if tail is not None and tail >= 0 else lines


def follow_log(paths: Paths, name: str, tail: int | None = None) -> Iterator[LogRecord | None]:
    """The log so far, then new lines until the container stops; None about once a second
    while nothing is written (a heartbeat for readers that must notice a gone client).
    Rotations lose nothing and lines come out whole (container.tailing)."""
    state.load(paths, name)
    follower = RotatingFile(paths.container_state(name) / "log", from_start=True)
    try:
        first = follower.feed(follower.previous()) + follower.lines()
        yield from _text(first[-tail:] if tail is not None else first)
        idle = 0
        while True:
            if lines := follower.lines():
                yield from _text(lines)
                idle = 0
                continue
            if not state.exists(paths, name) or observe(paths, state.load(paths, name)).state not in ACTIVE:
                yield from _text(follower.lines() + ([rest] if (rest := follower.rest()) else []))
                return
            time.sleep(0.1)
            idle += 1
            if idle % 10 == 0:
                yield None
    finally:
        follower.close()


def _text(lines: list[bytes]) -> list[LogRecord]:
    return [record(line.decode(errors="replace")) for line in lines]
