"""The download phase's only way out of its sandbox: an HTTP proxy that reaches the apt mirrors and nothing else.

apt downloads in the install's first job, and the code of that job is the template's: apt itself and any
hook the template's apt.conf.d sets (APT::Update::Pre-Invoke, Acquire::http::Proxy-Auto-Detect, ...). It
used to run in the host's network namespace, where such a hook reached every service on the host's
127.0.0.1. Now the job runs in a network namespace of its own with nothing but loopback, made here by a
thread that then starts the job's monitor (a process is born in the namespace of the thread that forks it).
The relay listens on that loopback and apt is pointed at it (-o Acquire::http::Proxy, which wins over any
apt.conf). Each connection names its destination once, in its first request (an absolute-URI GET, or
CONNECT for https); the relay connects, from prodng's own namespace, only to a host and port of the apt
sources, never to a loopback or link-local address unless the host's own sources name it (a local apt
cache), and from then on only copies bytes. The job reaches the mirrors: not the host, not the internet.
"""

from __future__ import annotations

import ctypes
import ipaddress
import queue
import re
import select
import socket
import threading
from collections.abc import Callable
from types import TracebackType

from prodng import run

CLONE_NEWNET = 0x40000000
URI = re.compile(r"\b(https?)://(?:[^/\s@]*@)?(\[[0-9A-Fa-f:.]+\]|[^/\s:\[\]]+)(?::([0-9]{1,5}))?", re.IGNORECASE)
HEADER_LIMIT = 64 * 1024
IDLE_TIMEOUT = 300.0  # seconds without a byte either way: the connection is dropped
CONNECT_TIMEOUT = 30.0
MAX_CONNECTIONS = 64  # apt keeps one a host; more at once is something else, refused (a thread each)
REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
UNREACHABLE = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"

Destination = tuple[str, int]


def destinations(text: str) -> set[Destination]:
    """The hosts and ports that apt sources (one-line or deb822 format) download from."""
    found = set()
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for scheme, host, port in URI.findall(line):
            found.add((host.strip("[]").lower(), int(port) if port else 443 if scheme.lower() == "https" else 80))
    return found


def requested(head: bytes) -> tuple[Destination, bool] | None:
    """Where a proxy request's first line asks to go, and whether it is a CONNECT tunnel; None if neither."""
    words = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        return None
    method, target = words[0], words[1]
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        return ((host.strip("[]").lower(), int(port)), True) if port.isdigit() and host else None
    found = destinations(target) if target.lower().startswith("http://") else set()
    return (found.pop(), False) if len(found) == 1 else None


def _unshare_network() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) for the download job")


class Relay:
    """`with Relay(allowed, local) as relay:` a namespace with the relay on its loopback (relay.port);
    relay.in_namespace(start) runs start in it, so what start spawns lives there."""

    def __init__(self, allowed: set[Destination], local: set[Destination]) -> None:
        self.allowed = allowed
        self.local = local  # the host's own sources: these may be on a loopback address
        self.port = 0
        self._calls: queue.Queue[Callable[[], object] | None] = queue.Queue()
        self._done: queue.Queue[BaseException | None] = queue.Queue()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def __enter__(self) -> Relay:
        threading.Thread(target=self._namespace, name="apt-relay-namespace", daemon=True).start()
        if error := self._done.get():
            raise error
        threading.Thread(target=self._serve, name="apt-relay", daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._calls.put(None)
        with self._lock:
            for sock in [s for s in (self._listener, *self._open) if s is not None]:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked on it; close alone does not
                except OSError:
                    pass
            self._open.clear()

    def in_namespace(self, call: Callable[[], object]) -> None:
        self._calls.put(call)
        if error := self._done.get():
            raise error

    def _namespace(self) -> None:
        """The thread that lives in the new namespace: it makes it, then runs what in_namespace gets."""
        try:
            _unshare_network()
            run.run(["ip", "link", "set", "lo", "up"])
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            self._listener, self.port = listener, listener.getsockname()[1]
        except BaseException as err:  # handed to __enter__'s caller
            self._done.put(err)
            return
        self._done.put(None)
        while (call := self._calls.get()) is not None:
            try:
                call()
                self._done.put(None)
            except BaseException as err:
                self._done.put(err)

    def _serve(self) -> None:
        assert self._listener is not None
        with self._listener:
            while True:
                try:
                    client, _ = self._listener.accept()
                except OSError:  # shut down: the download is over
                    return
                if not self._slots.acquire(blocking=False):
                    client.close()
                    continue
                threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket, keep: bool) -> None:
        with self._lock:
            (self._open.add if keep else self._open.discard)(sock)

    def _relay(self, client: socket.socket) -> None:
        self._track(client, True)
        try:
            with client:
                head = _read_head(client)
                asked = requested(head)
                upstream = self._connect(asked[0]) if asked else None
                if upstream is None:
                    client.sendall(REFUSED if asked is None or asked[0] not in self.allowed else UNREACHABLE)
                    return
                self._track(upstream, True)
                with upstream:
                    if asked and asked[1]:
                        client.sendall(ESTABLISHED)
                    else:
                        upstream.sendall(head)
                    _pump(client, upstream)
                self._track(upstream, False)
        except OSError:
            pass
        finally:
            self._track(client, False)
            self._slots.release()

    def _connect(self, destination: Destination) -> socket.socket | None:
        """A connection to an allowed destination, at an address it may have; None otherwise."""
        if destination not in self.allowed:
            return None
        host, port = destination
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return None
        for family, kind, proto, _, address in addresses:
            ip = ipaddress.ip_address(address[0])
            if (ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast) and (
                destination not in self.local
            ):
                continue
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(address)
                sock.settimeout(None)
                return sock
            except OSError:
                sock.close()
        return None


def _read_head(sock: socket.socket) -> bytes:
    """The bytes of a request up to the end of its header (and whatever came with them)."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < HEADER_LIMIT:
        ready, _, _ = select.select([sock], [], [], IDLE_TIMEOUT)
        chunk = sock.recv(65536) if ready else b""
        if not chunk:
            break
        head += chunk
    return head


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both ends are done, or nothing moved for IDLE_TIMEOUT."""
    peer = {a: b, b: a}
    reading = [a, b]
    while reading:
        ready, _, _ = select.select(reading, [], [], IDLE_TIMEOUT)
        if not ready:
            return
        for sock in ready:
            chunk = sock.recv(65536)
            if chunk:
                peer[sock].sendall(chunk)
                continue
            reading.remove(sock)
            try:
                peer[sock].shutdown(socket.SHUT_WR)
            except OSError:
                pass
