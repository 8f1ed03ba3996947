"""Who is at the other end of a TCP connection: the uid that made its socket, when it is on this host.

Every local user reaches the agent from 127.0.0.1, so an address cannot tell an unprivileged user
flooding the TLS port from root's CLI. For a connection whose other end is a socket of this network
namespace (loopback, or one of the host's own addresses) the kernel knows the uid that created that
socket: one exact sock_diag lookup (NETLINK_SOCK_DIAG, no dump) asks it, in microseconds. Other
peers, and sockets their owner has closed already (the kernel says uid 0 for those: they must not
pass for root's), are told apart by their address.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
NO_COOKIE = 0xFFFFFFFF
ALL_STATES = 0xFFFFFFFF
_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_REQUEST = struct.Struct("=BBBxI")  # struct inet_diag_req_v2 up to its sockid
_SOCKID = struct.Struct("!HH16s16s")  # struct inet_diag_sockid: ports and addresses, network order ...
_SOCKID_TAIL = struct.Struct("=III")  # ... then the interface and the cookie, host order
_UID_OFFSET = 4 + _SOCKID.size + _SOCKID_TAIL.size + 12  # struct inet_diag_msg: after expires, rqueue, wqueue


def _packed(address: str) -> tuple[int, bytes]:
    ip = ipaddress.ip_address(address.split("%")[0])
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return family, ip.packed.ljust(16, b"\0")


class Peers:
    """Keeps one netlink socket (the agent asks from its event loop's thread alone)."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.seq = 0

    def uid(self, local: tuple[str, int], remote: tuple[str, int]) -> int | None:
        """The uid owning the socket at remote that is connected to local, or None if it is not ours to see."""
        try:
            family, peer = _packed(remote[0])
            family_local, ours = _packed(local[0])
        except ValueError:
            return None
        if family != family_local:
            return None
        self.seq += 1
        # The other end's socket: its source is the peer, its destination us.
        sockid = _SOCKID.pack(remote[1], local[1], peer, ours) + _SOCKID_TAIL.pack(0, NO_COOKIE, NO_COOKIE)
        body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, ALL_STATES) + sockid
        message = _HEADER.pack(_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, self.seq, 0) + body
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
                self.sock.settimeout(0.5)
            self.sock.send(message)
            while True:
                answer = self.sock.recv(8192)
                _, kind, _, seq, _ = _HEADER.unpack_from(answer)
                if seq == self.seq:
                    break
        except OSError:
            self.close()
            return None
        if kind == NLMSG_ERROR or len(answer) < _HEADER.size + _UID_OFFSET + 8:
            return None  # ENOENT: not a socket of this namespace, or gone already
        uid, inode = struct.unpack_from("=II", answer, _HEADER.size + _UID_OFFSET)
        # A socket its owner closed already (orphaned, or a TIME_WAIT entry) reports uid 0: it names no one.
        return int(uid) if inode else None

    def key(self, local: tuple[str, int], remote: tuple[str, int]) -> str:
        """What the agent counts a connection's peer by: "uid N" on this host, else its address."""
        uid = self.uid((str(local[0]), int(local[1])), (str(remote[0]), int(remote[1])))
        return f"uid {uid}" if uid is not None else str(remote[0])

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
