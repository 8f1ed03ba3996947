"""Raw frames for the bridge's attack tests: run as root inside a test-made network namespace
(`nsenter --net=... python netattack.py ...`), so it can do what a compromised container with
CAP_NET_RAW could. Nothing here leaves the namespaces the tests made.

    sniff IFACE SECONDS MARKER...        "ready", then {"MARKER": frames seen} after SECONDS
    dhcpwatch IFACE CHADDR SECONDS       "ready", then one JSON line per DHCP message from CHADDR
    udp IFACE SRC_MAC DST_MAC SRC_IP DST_IP SPORT DPORT PAYLOAD
    arp IFACE OP SRC_MAC DST_MAC SENDER_MAC SENDER_IP TARGET_MAC TARGET_IP
    ipv6 IFACE SRC_MAC DST_MAC PAYLOAD
    dhcp IFACE TYPE XID CHADDR YIADDR SRC_MAC SRC_IP SERVER_ID SPORT   (broadcast, three times)
    frames IFACE HEX...                  raw frames, as built by the tests with the helpers here
    flood IFACE SECONDS HEX...           those frames again and again, as fast as they go, then how many
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
DHCP_TYPES = {"DISCOVER": 1, "OFFER": 2, "REQUEST": 3, "DECLINE": 4, "ACK": 5, "NAK": 6, "RELEASE": 7, "INFORM": 8}
BROADCAST = "ff:ff:ff:ff:ff:ff"


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ether(src: str, dst: str, kind: int, payload: bytes) -> bytes:
    return mac(dst) + mac(src) + struct.pack(">H", kind) + payload


def checksum(data: bytes) -> int:
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload  # no UDP checksum: allowed in IPv4
    header = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, *map(socket.inet_aton, (src, dst)))
    return header[:10] + struct.pack(">H", checksum(header)) + header[12:] + udp


def ipv4_fragments(src: str, dst: str, sport: int, dport: int, payload: bytes, first: int = 8) -> list[bytes]:
    """One UDP datagram as two IPv4 fragments: the first carries `first` bytes (the UDP header
    alone by default), the second the rest, so a filter reading the payload finds nothing to read."""
    datagram = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    pieces = [(0, datagram[:first], 0x2000), (first // 8, datagram[first:], 0)]  # more fragments; the last
    packets = []
    for offset, data, flags in pieces:
        header = struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(data),
            0x4242,
            flags | offset,
            64,
            17,
            0,
            *map(socket.inet_aton, (src, dst)),
        )
        packets.append(header[:10] + struct.pack(">H", checksum(header)) + header[12:] + data)
    return packets


def dhcp_message(kind: str, xid: int, chaddr: str, yiaddr: str, server_id: str) -> bytes:
    fixed = struct.pack(">BBBBIHH", 2, 1, 6, 0, xid, 0, 0x8000) + socket.inet_aton("0.0.0.0")
    fixed += socket.inet_aton(yiaddr) + socket.inet_aton(server_id) + socket.inet_aton("0.0.0.0")
    fixed += mac(chaddr) + b"\0" * 10 + b"\0" * 192
    options = bytes([53, 1, DHCP_TYPES[kind], 54, 4]) + socket.inet_aton(server_id)
    if kind != "NAK":
        options += bytes([51, 4]) + struct.pack(">I", 3600)
        options += bytes([1, 4]) + socket.inet_aton("255.255.0.0") + bytes([3, 4]) + socket.inet_aton(server_id)
    return fixed + struct.pack(">I", 0x63825363) + options + b"\xff"


def dhcp_request(
    kind: str,
    xid: int,
    chaddr: str,
    requested: str = "",
    *,
    ciaddr: str = "0.0.0.0",
    htype: int = 1,
    hlen: int = 6,
    giaddr: str = "0.0.0.0",
    extra: bytes = b"",
    options: bytes = b"",
) -> bytes:
    """A client's message (BOOTREQUEST, broadcast flag set): chaddr is the MAC then `extra` (hlen may cover it)."""
    fixed = struct.pack(">BBBBIHH", 1, htype, hlen, 0, xid, 0, 0x8000) + socket.inet_aton(ciaddr)
    fixed += socket.inet_aton("0.0.0.0") * 2 + socket.inet_aton(giaddr)
    fixed += (mac(chaddr) + extra).ljust(16, b"\0") + b"\0" * 192
    body = bytes([53, 1, DHCP_TYPES[kind]]) + options
    if requested:
        body += bytes([50, 4]) + socket.inet_aton(requested)
    return fixed + struct.pack(">I", 0x63825363) + body + b"\xff"


def parse_dhcp(frame: bytes) -> dict[str, object] | None:
    """A DHCP message in an Ethernet frame: its type, xid, chaddr and requested address."""
    if len(frame) < 14 + 20 + 8 + 240 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    sport, dport = struct.unpack(">HH", frame[14 + ihl : 18 + ihl])
    if {sport, dport} != {67, 68}:
        return None
    body = frame[14 + ihl + 8 :]
    found: dict[str, object] = {"xid": struct.unpack(">I", body[4:8])[0], "chaddr": body[28:34].hex(":")}
    found["yiaddr"] = socket.inet_ntoa(body[16:20])
    options, i = body[240:], 0
    while i + 1 < len(options) and options[i] != 255:
        code, length = options[i], options[i + 1]
        value = options[i + 2 : i + 2 + length]
        if code == 53:
            found["type"] = next((k for k, v in DHCP_TYPES.items() if v == value[0]), str(value[0]))
        elif code == 50:
            found["requested"] = socket.inet_ntoa(value)
        i += 2 + length
    return found


def packet_socket(iface: str) -> socket.socket:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    return s


def frames(s: socket.socket, seconds: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if select.select([s], [], [], left)[0]:
            data, address = s.recvfrom(65535)
            if address[2] != socket.PACKET_OUTGOING:
                yield data


def main(command: str, iface: str, *args: str) -> None:
    s = packet_socket(iface)
    if command == "sniff":
        markers = {m: 0 for m in args[1:]}
        print("ready", flush=True)
        for data in frames(s, float(args[0])):
            for m in markers:
                markers[m] += m.encode() in data
        print(json.dumps(markers), flush=True)
    elif command == "dhcpwatch":
        print("ready", flush=True)
        for data in frames(s, float(args[1])):
            message = parse_dhcp(data)
            if message and message["chaddr"] == args[0]:
                print(json.dumps(message), flush=True)
    elif command == "udp":
        src, dst, sip, dip, sport, dport, text = args
        s.send(ether(src, dst, 0x0800, ipv4_udp(sip, dip, int(sport), int(dport), text.encode())))
    elif command == "arp":
        op, src, dst, sha, spa, tha, tpa = args
        arp = struct.pack(">HHBBH", 1, 0x0800, 6, 4, int(op)) + mac(sha) + socket.inet_aton(spa)
        s.send(ether(src, dst, 0x0806, arp + mac(tha) + socket.inet_aton(tpa)))
    elif command == "ipv6":
        src, dst, text = args
        header = struct.pack(">IHBB", 0x60000000, len(text), 59, 64) + socket.inet_pton(socket.AF_INET6, "fe80::1") * 2
        s.send(ether(src, dst, 0x86DD, header + text.encode()))
    elif command == "dhcp":
        kind, xid, chaddr, yiaddr, src, sip, server_id, sport = args
        payload = dhcp_message(kind, int(xid), chaddr, yiaddr, server_id)
        for _ in range(3):
            s.send(ether(src, BROADCAST, 0x0800, ipv4_udp(sip, "255.255.255.255", int(sport), 68, payload)))
            time.sleep(0.05)
    elif command == "frames":
        for frame in args:
            s.send(bytes.fromhex(frame))
            time.sleep(0.01)
    elif command == "flood":
        packets, sent = [bytes.fromhex(text) for text in args[1:]], 0
        deadline = time.monotonic() + float(args[0])
        while time.monotonic() < deadline:
            for packet in packets:
                try:
                    s.send(packet)
                    sent += 1
                except BlockingIOError:
                    pass
        print(sent, flush=True)
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(*sys.argv[1:])
