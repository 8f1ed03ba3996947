"""Disk quotas: one btrfs qgroup limit per container root.

The pool runs simple quotas (squota, Linux 6.7+) where the kernel has them, else classic
qgroups. Under squota an extent counts against the subvolume that wrote it, so a container's
usage is what it wrote, not the template it shares: a snapshot costs nothing against its
quota, and the accounting has no backref walks at commit (classic qgroups have them, and
their cost grows with snapshots). The limit is on *exclusive* bytes: under classic qgroups
a snapshot's referenced bytes include all of its template (a 200M container of a 198 MiB
bookworm could write 2 MB), its exclusive bytes are what it alone holds; under squota the
two are the same. Usage and limits are read from sysfs (/sys/fs/btrfs/FSID/qgroups/0_ID),
so nothing here starts a process.

A subvolume made inside a root would be a qgroup of its own, outside the limit: the
container's seccomp filter refuses those ioctls (native/sandbox.c).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

from prodng.errors import SystemFailure
from prodng.frozen import frozen
from prodng.logger import Logger
from prodng.storage import btrfs

log = Logger(__name__)

# linux/btrfs.h: _IOWR(0x94, 40, quota_ctl_args{u64 cmd, status}), _IOR(0x94, 43, qgroup_limit_args
# {u64 qgroupid; limit{u64 flags, max_rfer, max_excl, rsv_rfer, rsv_excl}}), _IOR(0x94, 31, fs_info_args[1024]).
IOC_QUOTA_CTL = 0xC0109428
IOC_QGROUP_LIMIT = 0x8030942B
IOC_FS_INFO = 0x8400941F
QUOTA_CTL_ENABLE, QUOTA_CTL_ENABLE_SIMPLE = 1, 4
LIMIT_MAX_RFER, LIMIT_MAX_EXCL = 1 << 0, 1 << 1
NO_LIMIT = 2**64 - 1


@frozen
class Usage:
    used: int  # bytes the subvolume's qgroup counts (exclusive)
    limit: int | None  # its max_exclusive, None when unlimited


def _ioctl(path: Path, request: int, arg: bytearray) -> bytearray:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, request, arg, True)
        return arg
    finally:
        os.close(fd)


def _sysfs(pool: Path) -> Path:
    fsid = _ioctl(pool, IOC_FS_INFO, bytearray(1024))[16:32].hex()  # sysfs names it as a UUID
    name = f"{fsid[:8]}-{fsid[8:12]}-{fsid[12:16]}-{fsid[16:20]}-{fsid[20:]}"
    return Path("/sys/fs/btrfs") / name / "qgroups"


def mode(pool: Path) -> str:
    """'squota', 'qgroup' or '' (quotas off)."""
    try:
        return (_sysfs(pool) / "mode").read_text().strip()
    except FileNotFoundError:
        return ""


def enable(pool: Path) -> str:
    """Turn quotas on (once; idempotent): simple quotas if the kernel knows them."""
    if current := mode(pool):
        return current
    for command in (QUOTA_CTL_ENABLE_SIMPLE, QUOTA_CTL_ENABLE):
        try:
            _ioctl(pool, IOC_QUOTA_CTL, bytearray(struct.pack("=QQ", command, 0)))
            break
        except OSError as err:
            if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP) or command == QUOTA_CTL_ENABLE:
                raise SystemFailure(f"cannot enable btrfs quotas on {pool}: {err.strerror}") from None
    chosen = mode(pool)
    log.info("btrfs quotas on %s: %s", pool, chosen)
    return chosen


def set_limit(subvolume: Path, limit: int | None) -> None:
    """The subvolume's exclusive bytes may not pass limit (None: no limit); writers get EDQUOT.
    A referenced limit (what prodng set before) is cleared: a snapshot's would count its template."""
    args = struct.pack("=6Q", 0, LIMIT_MAX_RFER | LIMIT_MAX_EXCL, NO_LIMIT, limit or NO_LIMIT, 0, 0)
    try:
        _ioctl(subvolume, IOC_QGROUP_LIMIT, bytearray(args))
    except OSError as err:
        raise SystemFailure(f"cannot set the disk quota of {subvolume}: {err.strerror}") from None


def apply(pool: Path, subvolume: Path, limit: int | None) -> bool:
    """Set the subvolume's limit; False (and nothing done) when the pool has no quotas."""
    if not mode(pool):
        return False
    set_limit(subvolume, limit)
    return True


def usage(pool: Path, subvolume: Path) -> Usage | None:
    """None when quotas are off or the subvolume is gone."""
    try:
        directory = _sysfs(pool) / f"0_{btrfs.subvolume_id(subvolume)}"
        used = int((directory / "exclusive").read_text())
        # A root limited before limits were on exclusive bytes has only max_referenced.
        limit = int((directory / "max_exclusive").read_text()) or int((directory / "max_referenced").read_text())
    except (OSError, SystemFailure, ValueError):
        return None
    return Usage(used, limit if 0 < limit < 2**63 else None)


def sysfs_dir(pool: Path, subvolume: Path) -> str:
    """For the monitor, which watches the usage (and says when the quota is hit)."""
    try:
        return str(_sysfs(pool) / f"0_{btrfs.subvolume_id(subvolume)}")
    except (OSError, SystemFailure):
        return ""
