"""Lifecycle events (created, started, died, restarted, frozen, thawed, removed), derived by
comparing successive observations: containers need no daemon to report them."""

from __future__ import annotations

import time
from collections.abc import Iterator

from . import runtime
from .config import Paths

Snapshot = dict[str, dict[str, object]]


def snapshot(paths: Paths) -> Snapshot:
    return {str(row["name"]): row for row in runtime.list_all(paths)}


def _transition(old: str, new: str) -> str | None:
    if new == "frozen" and old != "frozen":
        return "frozen"
    if old == "frozen" and new == "running":
        return "thawed"
    if new == "running" and old in ("created", "exited", "restarting"):
        return "started"
    if new in ("exited", "restarting") and old in ("running", "frozen"):
        return "died"
    return None


def diff(before: Snapshot, after: Snapshot) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []

    def emit(kind: str, row: dict[str, object]) -> None:
        events.append({"event": kind, "name": row["name"], "state": row["state"], "time": time.time()})

    for name in sorted(after.keys() - before.keys()):
        emit("created", after[name])
        if after[name]["state"] == "running":
            emit("started", after[name])
    for name in sorted(before.keys() - after.keys()):
        emit("removed", before[name])
    for name in sorted(before.keys() & after.keys()):
        old, new = before[name], after[name]
        if int(str(new["restarts"])) > int(str(old["restarts"])):
            emit("restarted", new)
        elif kind := _transition(str(old["state"]), str(new["state"])):
            emit(kind, new)
    return events


def follow(paths: Paths, interval: float = 0.25) -> Iterator[dict[str, object]]:
    """Events from now on, forever (the caller stops reading to stop)."""
    before = snapshot(paths)
    while True:
        time.sleep(interval)
        after = snapshot(paths)
        yield from diff(before, after)
        before = after
