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
            with open(log, "rb") as f:
                f.seek(position)
                chunk = f.read()
            # A line still being written waits for its end (the next round reads it whole).
            complete = chunk[: chunk.rfind(b"\n") + 1]
            position += len(complete)
            yield from _split(complete.decode(errors="replace"))
            idle = 0
            if complete:
                continue
        if not state.exists(paths, name) or observe(paths, state.load(paths, name)).state not in ACTIVE:
            if size > position:  # the last line, never ended
                with open(log, "rb") as f:
                    f.seek(position)
                    yield from _split(f.read().decode(errors="replace"))
            return
        time.sleep(0.2)
        idle += 1
        if idle % 5 == 0:
            yield None
