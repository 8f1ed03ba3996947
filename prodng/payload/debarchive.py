"""A .deb read as dpkg reads it, once through and in bounded memory: its ar members, and
each tar in them decompressed as a stream, one header at a time.

python-debian's DebFile held a zstd member's whole decompressed content in memory (a
33 KB data.tar.zst of 1 GiB of zeros took the CLI to 2 GB), kept every tar header it
had read (a payload of millions of empty files), and decompressed an xz member again
from its start for each file it read after a seek. Here gzip, xz and bzip2 are
decompressed in-process and zstd by the zstd tool through a pipe (Python 3.11 has no
zstd); nothing is kept but the current header.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prodng import run

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60
MAX_AR_MEMBERS = 16  # dpkg's are three, plus a signature or two: more is not a package
COMPRESSORS = ("", ".gz", ".xz", ".zst", ".bz2", ".lzma")


class BadArchive(Exception):
    """The file is not a .deb dpkg would read; the message says where it breaks."""


@dataclass(frozen=True)
class ArMember:
    name: str
    offset: int
    size: int


def ar_members(fd: int) -> list[ArMember]:
    """The ar archive's member table (headers only; nothing of the members is read)."""
    end = os.fstat(fd).st_size
    if os.pread(fd, len(AR_MAGIC), 0) != AR_MAGIC:
        raise BadArchive("not an ar archive")
    members, at = [], len(AR_MAGIC)
    while at < end:
        header = os.pread(fd, AR_HEADER, at)
        if len(header) != AR_HEADER or header[58:60] != b"`\n":
            raise BadArchive(f"bad ar header at byte {at}")
        try:
            size = int(header[48:58].decode("ascii"))
        except ValueError:
            raise BadArchive(f"bad ar member size at byte {at}") from None
        at += AR_HEADER
        if size < 0 or at + size > end:
            raise BadArchive("truncated ar member")
        members.append(ArMember(header[:16].decode("ascii", "replace").rstrip().removesuffix("/"), at, size))
        if len(members) > MAX_AR_MEMBERS:
            raise BadArchive(f"more than {MAX_AR_MEMBERS} ar members")
        at += size + size % 2
    return members


def deb_parts(fd: int) -> tuple[ArMember, ArMember]:
    """control.tar* and data.tar*, where dpkg wants them: after debian-binary, in that order."""
    members = ar_members(fd)
    names = [m.name for m in members]
    if not names or names[0] != "debian-binary":
        raise BadArchive("debian-binary is not the first member")
    if not os.pread(fd, 4, members[0].offset).startswith(b"2."):
        raise BadArchive("not format 2.x")
    parts = [m for m in members[1:] if not m.name.startswith("_")]  # _gpgorigin and the like: dpkg skips them
    if len(parts) < 2 or not all(_compressor(p.name) is not None for p in parts[:2]):
        raise BadArchive(f"members {', '.join(names)}: want control.tar and data.tar")
    control, data = parts[0], parts[1]
    if not control.name.startswith("control.tar") or not data.name.startswith("data.tar"):
        raise BadArchive(f"members {', '.join(names)}: want control.tar and data.tar")
    return control, data


def _compressor(name: str) -> str | None:
    base, _, suffix = name.partition(".tar")
    return suffix if base in ("control", "data") and suffix in COMPRESSORS else None


class _Slice(io.RawIOBase):
    """One ar member's bytes, read from the archive's fd with pread (nothing else moves)."""

    def __init__(self, fd: int, member: ArMember) -> None:
        self._fd, self._at, self._left = fd, member.offset, member.size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = os.pread(self._fd, min(len(buffer), self._left), self._at)
        buffer[: len(data)] = data
        self._at += len(data)
        self._left -= len(data)
        return len(data)


@contextmanager
def tar_stream(fd: int, member: ArMember) -> Iterator[tarfile.TarFile]:
    """The member's tar, read forward only (tarfile's stream mode): a file's content can be read
    only while its header is the current one (extractfile), and skipping it decompresses it."""
    raw = io.BufferedReader(_Slice(fd, member), 1 << 16)
    suffix = _compressor(member.name)
    if suffix == ".zst":
        with run.piped([run.require("zstd", "zstd"), "-dcq"], raw) as plain:
            yield tarfile.open(fileobj=plain, mode="r|")
        return
    opened: io.BufferedIOBase
    if suffix == ".gz":
        opened = gzip.GzipFile(fileobj=raw)
    elif suffix in (".xz", ".lzma"):
        opened = lzma.LZMAFile(raw)
    elif suffix == ".bz2":
        opened = bz2.BZ2File(raw)
    else:
        opened = raw
    with opened:
        yield tarfile.open(fileobj=opened, mode="r|")


def headers(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Each member's header in turn; tarfile would keep them all (its `members` list), which for a
    payload of millions of empty files is gigabytes of the caller's memory."""
    while (member := tar.next()) is not None:
        tar.members.clear()  # type: ignore[attr-defined]  # CPython's list of what next() read; nothing else uses it here
        yield member
