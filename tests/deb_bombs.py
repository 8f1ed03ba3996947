"""Hostile .deb files made by hand (ar + tar + a compressor), in well under a second each: archives
that dpkg-deb lists and would unpack in full, whose members expand to gigabytes."""

from __future__ import annotations

import gzip
import io
import lzma
import struct
import tarfile
import zlib
from pathlib import Path

MiB = 1024**2
CONTROL = b"Package: bomb\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: b\n"


def ar_deb(path: Path, control_tar: tuple[str, bytes], data_tar: tuple[str, bytes]) -> Path:
    """An ar archive as dpkg-deb writes it: debian-binary, control.tar*, data.tar*."""
    out = io.BytesIO(b"!<arch>\n")
    out.seek(0, io.SEEK_END)
    for name, blob in (("debian-binary", b"2.0\n"), control_tar, data_tar):
        out.write(f"{name:<16}{0:<12}0     0     100644  {len(blob):<10}`\n".encode())
        out.write(blob + (b"\n" if len(blob) % 2 else b""))
    path.write_bytes(out.getvalue())
    return path


def control_tar(text: bytes = CONTROL) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("./control")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return "control.tar.gz", buffer.getvalue()


def tar_header(name: str, size: int) -> bytes:
    member = tarfile.TarInfo(name)
    member.size = size
    return member.tobuf(format=tarfile.GNU_FORMAT)


# --- zstd: a frame of RLE blocks (RFC 8878): 128 KiB of one byte in 4 bytes, so 8 GiB in 256 KiB.
ZSTD_BLOCK = 128 * 1024


def zstd_frame(pieces: list[bytes | int]) -> bytes:
    """One zstd frame: bytes pieces as raw blocks, int pieces as that many zeros in RLE blocks."""
    blocks: list[tuple[int, int, bytes]] = []  # (type: 0 raw, 1 RLE), size, content
    for piece in pieces:
        if isinstance(piece, bytes):
            blocks += [(0, len(c), c) for c in (piece[i : i + ZSTD_BLOCK] for i in range(0, len(piece), ZSTD_BLOCK))]
        else:
            full, rest = divmod(piece, ZSTD_BLOCK)
            blocks += [(1, ZSTD_BLOCK, b"\0")] * full + ([(1, rest, b"\0")] if rest else [])
    # Magic, a frame header with only a window descriptor (2^17 bytes), then the blocks, the last one marked.
    out = bytearray(b"\x28\xb5\x2f\xfd\x00\x38")
    for i, (kind, size, content) in enumerate(blocks):
        out += ((size << 3) | (kind << 1) | (i == len(blocks) - 1)).to_bytes(3, "little") + content
    return bytes(out)


# --- gzip: one member of 64 MiB of zeros (64 KB), repeated (a gzip file may be many members).
def gzip_zeros(prefix: bytes, zeros: int, suffix: bytes) -> bytes:
    chunk = gzip.compress(bytes(64 * MiB), compresslevel=9, mtime=0)
    full, rest = divmod(zeros, 64 * MiB)
    tail = gzip.compress(bytes(rest) + suffix, mtime=0)
    return gzip.compress(prefix, mtime=0) + chunk * full + tail


# --- xz: one stream whose blocks are compressed once and repeated.
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        n |= (buf[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not buf[i - 1] & 0x80:
            return n, i


def xz_blocks(pieces: list[tuple[bytes, int]]) -> bytes:
    """One xz stream (the .xz format: header, blocks, index, footer) holding each piece's bytes
    `times` times: each piece is compressed once and its block repeated, so 8 GiB of zeros take
    a fraction of a second to make and about 1 MB to hold, and decompress as one ordinary stream."""
    body, records, header = bytearray(), [], b""
    for data, times in pieces:
        xz = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=0)
        index = xz[-12 - (struct.unpack("<I", xz[-8:-4])[0] + 1) * 4 : -12]
        unpadded, at = _read_varint(index, 2)  # after the indicator and a record count of 1
        size, _ = _read_varint(index, at)
        header = xz[:12]
        body += xz[12 : 12 + (unpadded + 3) // 4 * 4] * times
        records += [(unpadded, size)] * times
    xz_index = bytearray(b"\x00" + _varint(len(records)))
    for unpadded, size in records:
        xz_index += _varint(unpadded) + _varint(size)
    xz_index += bytes(-len(xz_index) % 4)
    xz_index += struct.pack("<I", zlib.crc32(xz_index))
    footer = struct.pack("<I", len(xz_index) // 4 - 1) + header[6:8]
    return header + bytes(body) + bytes(xz_index) + struct.pack("<I", zlib.crc32(footer)) + footer + b"YZ"


def xz_zeros(prefix: bytes, zeros: int, suffix: bytes) -> bytes:
    assert zeros % (64 * MiB) == 0
    return xz_blocks([(prefix, 1), (bytes(64 * MiB), zeros // (64 * MiB)), (suffix, 1)])


def bomb_deb(directory: Path, gib: int, compression: str = "xz") -> Path:
    """A .deb whose data.tar.{xz,gz,zst} (well under 10 MB) holds one member of GIB GiB of zeros."""
    size = gib * 1024**3
    header, end = tar_header("./opt/bomb", size), bytes(1024)
    if compression == "zst":
        data = zstd_frame([header, size, end])
    elif compression == "gz":
        data = gzip_zeros(header, size, end)
    else:
        data = xz_zeros(header, size, end)
    return ar_deb(directory / "bomb_1.0_all.deb", control_tar(), (f"data.tar.{compression}", data))
