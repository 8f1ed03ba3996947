"""Following a file its writer rotates (PATH -> PATH.1, then a new PATH): nothing lost, no fragments.

The follower reads an open descriptor, not the name, so a rotation never takes its file
away: when PATH names another inode it finishes the old file, reads PATH.1 too if that is
a file it never opened (two rotations between two looks), then moves to the new PATH.
A writer may still append to the old file just after the rename (it opened it before),
so the old descriptor is read for a little while longer. Only whole lines come out; a
partial line waits for its end (across the rotation too: the writer may split a line).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

LATE_WRITERS = 2.0  # seconds the file before a rotation is still read


class RotatingFile:
    def __init__(self, path: Path | str, *, from_start: bool) -> None:
        self.path = Path(path)
        self.fd = -1
        self.inode = 0
        self.partial = b""
        self.old: list[tuple[int, float]] = []  # (fd, when it was left)
        self._open_current(from_start)

    def _open_current(self, from_start: bool) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self.fd, self.inode = fd, os.fstat(fd).st_ino
        if not from_start:
            os.lseek(fd, 0, os.SEEK_END)
        return True

    def lines(self) -> list[bytes]:
        """Every whole line written since the last call, in order."""
        out = self.feed(self._drain_old())
        if self.fd < 0:
            self._open_current(True)
        if self.fd >= 0:
            out += self.feed(_read_all(self.fd))
            out += self._follow_rotation()
        return out

    def _follow_rotation(self) -> list[bytes]:
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            return []
        if current == self.inode:
            return []
        out = self.feed(_read_all(self.fd))  # what was appended before the rename
        self.old.append((self.fd, time.monotonic()))
        self.fd = -1
        opened = self._open_current(True)  # before PATH.1 is looked at: nothing can come between them
        if unseen := self._read_previous():
            # Two or more rotations since the last look: whole files may be gone in between,
            # so the old file's unfinished line and the unseen file's first are dropped.
            self.partial = b""
            out += self.feed(unseen[unseen.find(b"\n") + 1 :])
        if opened:
            out += self.feed(_read_all(self.fd))
        return out

    def previous(self) -> bytes:
        """PATH.1 as it is now (the part before the current file)."""
        return self._read_previous()

    def _read_previous(self) -> bytes:
        """PATH.1 unless it is a file we hold open (the one just left, or the current one).
        Inode numbers are compared only with open files: a closed one's number is reused."""
        try:
            fd = os.open(f"{self.path}.1", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return b""
        try:
            held = {os.fstat(f).st_ino for f in [self.fd, *(f for f, _ in self.old)] if f >= 0}
            return b"" if os.fstat(fd).st_ino in held else _read_all(fd)
        finally:
            os.close(fd)

    def _drain_old(self) -> bytes:
        data, keep = b"", []
        for fd, left in self.old:
            data += _read_all(fd)
            if time.monotonic() - left < LATE_WRITERS:
                keep.append((fd, left))
            else:
                os.close(fd)
        self.old = keep
        return data

    def feed(self, data: bytes) -> list[bytes]:
        """The whole lines of data after what came before; its last partial line is kept."""
        if not data:
            return []
        data = self.partial + data
        end = data.rfind(b"\n") + 1
        self.partial = data[end:]
        return data[:end].split(b"\n")[:-1]  # only \n ends a line: \r and the like are the writer's

    def rest(self) -> bytes:
        """A last line without its newline, when following ends."""
        rest, self.partial = self.partial, b""
        return rest

    def close(self) -> None:
        for fd in [self.fd, *(fd for fd, _ in self.old)]:
            if fd >= 0:
                os.close(fd)
        self.fd, self.old = -1, []


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
