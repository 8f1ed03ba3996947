"""Followers of rotated files lose nothing and print no fragments (issue 17, 9): a writer rotating the way
the monitor rotates a log (PATH -> PATH.1 mid-line) and the way events.emit rotates the journal."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from prodng.config import Paths
from prodng.container import events
from prodng.container.tailing import RotatingFile

LINES = 30_000


def _monitor_like_writer(path: Path, limit: int, stop: Any) -> None:
    """Chunks that split lines, rotated on size like native/monitor.c's write_log."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    size, pending = 0, b""
    for number in range(LINES):
        pending += f"line {number} {'x' * (number % 50)}\n".encode()
        if len(pending) < 700 and number != LINES - 1:
            continue
        for chunk in (pending[: len(pending) // 2], pending[len(pending) // 2 :]):  # mid-line
            if size + len(chunk) > limit:
                os.rename(path, f"{path}.1")
                os.close(fd)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                size = 0
            os.write(fd, chunk)
            size += len(chunk)
        pending = b""
        time.sleep(0.0005)  # ~1.4 MB/s: a fast service, a rotation every ~0.1 s
    os.close(fd)
    stop.set()


def _check(lines: list[bytes], gaps: bool = False) -> None:
    numbers = []
    for line in lines:
        word, number, tail = (line.decode().split(" ") + ["", ""])[:3]
        assert word == "line" and tail == "x" * (int(number) % 50), f"a fragment: {line!r}"
        numbers.append(int(number))
    if gaps:
        assert numbers == sorted(set(numbers)) and numbers[-1] == LINES - 1
    else:
        assert numbers == list(range(LINES)), f"{LINES - len(numbers)} lines lost or repeated"


@pytest.mark.parametrize("pause", [0.0, 0.35])  # 0.35: several rotations between two looks
def test_rotating_log_loses_nothing_and_splits_nothing(tmp_path: Path, pause: float) -> None:
    path = tmp_path / "log"
    path.touch()
    follower = RotatingFile(path, from_start=True)
    stop = multiprocessing.get_context("fork").Event()
    # Another process, as the monitor is: the follower's pace is its own, not the GIL's.
    writer = multiprocessing.get_context("fork").Process(target=_monitor_like_writer, args=(path, 128 * 1024, stop))
    writer.start()
    seen: list[bytes] = []
    while not stop.is_set():
        seen += follower.lines()
        time.sleep(pause)
    writer.join()
    assert writer.exitcode == 0
    seen += follower.lines()
    assert follower.rest() == b""
    follower.close()
    if pause:  # a reader slower than two rotations misses whole files (the log is bounded), never parts of lines
        _check(seen, gaps=True)
        return
    _check(seen)


def test_event_followers_lose_nothing_across_journal_rotations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "ROTATE_BYTES", 128 * 1024)  # a rotation every ~1500 events
    paths = Paths(tmp_path)
    (tmp_path / "locks").mkdir()
    follower = events.follow(paths, heartbeat=0.2)
    next(follower)  # started (a heartbeat): from here on every event counts
    total = 6000
    received: list[int] = []

    def read() -> None:
        while len(received) < total:
            event = next(follower)
            if event is not None:
                received.append(int(str(event["name"])))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def write(first: int) -> None:
        for i in range(first, total, 3):
            events.emit(paths, "started", str(i))
            time.sleep(0.0002)  # a busy host, not a flood: a rotation is ~100 ms apart, the follower looks every 50

    writers = [threading.Thread(target=write, args=(k,)) for k in range(3)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    reader.join(timeout=30)
    assert (tmp_path / "events.jsonl.1").exists(), "the journal never rotated"
    assert sorted(received) == list(range(total))
