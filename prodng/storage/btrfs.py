"""Adapter over btrfsutil (untyped); the rest of prodng talks to this module."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import btrfsutil  # type: ignore[import-not-found]

from prodng.errors import SystemFailure

BTRFS_SUPER_MAGIC = 0x9123683E


def _fail(action: str, path: Path, err: Exception) -> SystemFailure:
    reason = os.strerror(err.errno) if isinstance(err, OSError) and err.errno else str(err)
    return SystemFailure(f"cannot {action} {path}: {reason}")


def is_btrfs(path: Path) -> bool:
    """True if path lives on a btrfs filesystem (statfs f_type)."""
    import ctypes

    class StatFs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 120)]

    libc = ctypes.CDLL(None, use_errno=True)
    buf = StatFs()
    if libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        return False
    return (int(buf.f_type) & 0xFFFFFFFF) == BTRFS_SUPER_MAGIC


def is_subvolume(path: Path) -> bool:
    try:
        return bool(btrfsutil.is_subvolume(str(path)))
    except (btrfsutil.BtrfsUtilError, OSError):
        return False


def create_subvolume(path: Path) -> None:
    try:
        btrfsutil.create_subvolume(str(path))
    except (btrfsutil.BtrfsUtilError, OSError) as err:
        raise _fail("create subvolume", path, err) from None


def snapshot(source: Path, dest: Path, *, read_only: bool = False) -> None:
    """Copy-on-write snapshot: O(1) in the size of source."""
    try:
        btrfsutil.create_snapshot(str(source), str(dest), read_only=read_only)
    except (btrfsutil.BtrfsUtilError, OSError) as err:
        raise _fail("snapshot", source, err) from None


@contextmanager
def staged(
    work: Path, final: Path, *, source: Path | None = None, make_room: Callable[[], None] = lambda: None
) -> Iterator[Path]:
    """A subvolume at work to fill (a snapshot of source, or empty), published read-only at
    final only if the body succeeds (make_room clears the way just before), deleted otherwise.
    Templates and cached installs are made this way: no one ever sees a half-made root."""
    if source is None:
        create_subvolume(work)
    else:
        snapshot(source, work)
    try:
        yield work
        set_read_only(work)
        make_room()
        os.rename(work, final)
    except BaseException:
        delete_subvolume(work)
        raise


def delete_subvolume(path: Path) -> None:
    """Delete path and any subvolumes nested in it (a payload may create some)."""
    try:
        if is_subvolume(path):
            set_read_only(path, False)
            btrfsutil.delete_subvolume(str(path), recursive=True)
    except (btrfsutil.BtrfsUtilError, OSError) as err:
        raise _fail("delete subvolume", path, err) from None


def commit(path: Path) -> None:
    """Commit the running transaction and wait for it: qgroup counts are then up to date."""
    try:
        btrfsutil.sync(str(path))
    except (btrfsutil.BtrfsUtilError, OSError) as err:
        raise _fail("commit", path, err) from None


def start_commit(path: Path) -> None:
    """Start a transaction commit now (not in up to 30 s): deleted subvolumes are then freed,
    and discarded from the image, in about 10 s instead of 40."""
    try:
        btrfsutil.start_sync(str(path))
    except (btrfsutil.BtrfsUtilError, OSError) as err:
        raise _fail("commit", path, err) from None


def subvolume_id(path: Path) -> int:
    try:
        return int(btrfsutil.subvolume_id(str(path)))
    except (btrfsutil.BtrfsUtilError, OSError) as err:
        raise _fail("read the subvolume id of", path, err) from None


def set_read_only(path: Path, read_only: bool = True) -> None:
    try:
        btrfsutil.set_subvolume_read_only(str(path), read_only)
    except (btrfsutil.BtrfsUtilError, OSError) as err:
        raise _fail("change read-only flag of", path, err) from None


def is_read_only(path: Path) -> bool:
    return bool(btrfsutil.get_subvolume_read_only(str(path)))
