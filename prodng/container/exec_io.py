"""The bytes of an exec: pipes for a command's stdio, or a pty of the container's own.

No host file and no host terminal ever reach the command: the CLI and the agent read its output
from pipes (the agent up to a cap), and an interactive command gets a pty allocated inside the
container (prodng-exec sends its master back) while the CLI relays the operator's keys and window
size. Reading stops when prodng-exec exits, so a process the command left behind cannot keep
writing to anything of ours.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator

from prodng import terminal

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import TextIO

Sink = Callable[[bytes], None]
CHUNK = 65536
STOP_POLL = 0.5  # how often a bounded exec looks at its deadline
TIMED_OUT = 124  # the exit code of an exec ended at its deadline, as timeout(1)'s


def _drain(fd: int, sink: Sink, limit: int = 16 * CHUNK) -> None:
    """What is already in the pipe, without waiting for more."""
    os.set_blocking(fd, False)
    with contextlib.suppress(BlockingIOError, OSError):
        while limit > 0 and (data := os.read(fd, CHUNK)) and _delivered(sink, data):
            limit -= len(data)


class _Ending:
    """A command past its deadline: TERM (prodng-exec passes it on), then, GRACE later, the helper is
    killed and whatever the command still does is the container's (its output goes nowhere)."""

    GRACE = 3.0

    def __init__(self, proc: subprocess.Popen[bytes], stop: Callable[[], bool] | None) -> None:
        self.proc, self.stop = proc, stop
        self.since: float | None = None

    def check(self) -> None:
        if self.since is None and self.stop and self.stop():
            self.since = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
        elif self.since is not None and time.monotonic() - self.since > self.GRACE:
            self.proc.kill()


class _Feed:
    """The caller's input on its way to the command, never blocking us: what the command has not taken yet
    waits here (and no more is read) while its output and its end are still watched. A daemon the command
    left holding its stdin, never reading, blocked the CLI in write() for ever (a Ctrl-C only went on to
    the helper, gone by then)."""

    def __init__(self, sel: selectors.BaseSelector, source: int, sink: int) -> None:
        self.sel, self.source, self.sink = sel, source, sink
        self.pending = b""
        os.set_blocking(sink, False)
        sel.register(source, selectors.EVENT_READ)

    def ready(self, fd: int) -> bool:
        """fd (source or sink) is ready: read or write; False once the feed is over (and closed)."""
        if fd == self.source:
            data = _read(fd)
            if data is None:
                return True
            if not data:  # the caller's input ended: so does the command's
                return self.close()
            self.pending = data
        try:
            self.pending = self.pending[os.write(self.sink, self.pending) :]
        except BlockingIOError:
            pass
        except OSError:  # EPIPE: no one reads it any more
            return self.close()
        waiting, watched = (self.sink, self.source) if self.pending else (self.source, self.sink)
        if fd == watched:  # switch: wait for room to write, or for more to read
            self.sel.unregister(watched)
            self.sel.register(waiting, selectors.EVENT_WRITE if waiting == self.sink else selectors.EVENT_READ)
        return True

    def close(self) -> bool:
        for fd in (self.source, self.sink):
            if fd in self.sel.get_map():
                self.sel.unregister(fd)
        os.close(self.sink)
        return False


def pump(
    proc: subprocess.Popen[bytes],
    outputs: dict[int, Sink],
    stdin: tuple[int, int] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Copy each output fd to its sink (and stdin[0] to stdin[1]) until the helper exits; its status,
    or TIMED_OUT when stop() turned true first (looked at every STOP_POLL seconds)."""
    pidfd = os.pidfd_open(proc.pid)
    ending = _Ending(proc, stop)
    with selectors.DefaultSelector() as sel:
        sel.register(pidfd, selectors.EVENT_READ)
        for fd in outputs:
            sel.register(fd, selectors.EVENT_READ)
        feed = _Feed(sel, *stdin) if stdin else None
        try:
            while True:
                ready = sel.select(STOP_POLL if stop else None)
                ending.check()
                for key, _ in ready:
                    fd = int(key.fd)
                    if fd == pidfd:
                        for out, sink in outputs.items():
                            _drain(out, sink)
                        status = exit_status(proc.wait())
                        return TIMED_OUT if ending.since is not None else status
                    if feed and fd in (feed.source, feed.sink):
                        feed = feed if feed.ready(fd) else None
                        continue
                    data = _read(fd)
                    if data is None or (data and _delivered(outputs[fd], data)):
                        continue
                    # EOF, or our reader is gone (`exec ... | head`): the command gets EPIPE, as it would
                    sel.unregister(fd)
                    del outputs[fd]
                    os.close(fd)
        finally:
            os.close(pidfd)
            for fd in outputs:
                os.close(fd)
            if feed:
                os.close(feed.sink)


def _delivered(sink: Sink, data: bytes) -> bool:
    try:
        sink(data)
    except BrokenPipeError:
        return False
    return True


def exit_status(status: int) -> int:
    """A status as a shell reports it: 128 + the signal for a killed helper."""
    return 128 - status if status < 0 else status


def _read(fd: int) -> bytes | None:
    """What fd has (b"" at its end); None when it has nothing after all (a pty master we also write to
    is non-blocking)."""
    try:
        return os.read(fd, CHUNK)
    except BlockingIOError:
        return None
    except OSError:  # EIO: a pty whose other side is gone
        return b""


def _write(fd: int, data: bytes) -> bool:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        return False
    return True


@contextlib.contextmanager
def forwarding_signals(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """Ctrl-C and the like at the CLI reach the command (prodng-exec passes them on), as if it ran here:
    the command is in a session of its own, so the terminal's signals would not."""
    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
    previous = {sig: signal.signal(sig, lambda sig, _: proc.send_signal(sig)) for sig in forwarded}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def capped(limit: int) -> tuple[Sink, Callable[[], str]]:
    """A sink keeping the first limit bytes (the rest is read and dropped, so the command never blocks)."""
    kept = bytearray()

    def sink(data: bytes) -> None:
        kept.extend(data[: max(0, limit - len(kept))])

    return sink, lambda: kept.decode(errors="replace")


def to_stream(stream: TextIO) -> Sink:
    """A sink writing to sys.stdout or sys.stderr: escaped on a terminal (prodng/terminal.py), else raw."""
    tty = stream.isatty()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def sink(data: bytes) -> None:
        if tty:
            stream.write(terminal.escape(decoder.decode(data)))
        else:
            stream.buffer.write(data)
        stream.flush()

    return sink


# ---- a pty of the container's ----


def receive_master(sock: socket.socket, timeout: float = 30.0) -> int:
    sock.settimeout(timeout)
    _, fds, _, _ = socket.recv_fds(sock, 1, 1)
    if not fds:
        raise OSError("prodng-exec sent no pty")
    return fds[0]


def _copy_window_size(local: int, master: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(local, termios.TIOCGWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)


@contextlib.contextmanager
def raw_terminal(local: int, master: int) -> Iterator[None]:
    """The operator's terminal in raw mode (keys go to the container's pty as typed), its window size followed;
    both restored after."""
    saved = termios.tcgetattr(local)
    _copy_window_size(local, master)
    previous = signal.signal(signal.SIGWINCH, lambda *_: _copy_window_size(local, master))
    tty.setraw(local, termios.TCSADRAIN)  # not TCSAFLUSH: keys typed ahead are the command's
    try:
        yield
    finally:
        termios.tcsetattr(local, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)


def relay_pty(proc: subprocess.Popen[bytes], master: int, stop: Callable[[], bool] | None = None) -> int:
    """The operator's terminal <-> the container's pty until the helper exits."""
    local_in, local_out = sys.stdin.fileno(), sys.stdout.fileno()
    writer = os.dup(master)

    def show(data: bytes) -> None:
        _write(local_out, data)

    with raw_terminal(local_in, master):
        return pump(proc, {master: show}, (local_in, writer), stop)
