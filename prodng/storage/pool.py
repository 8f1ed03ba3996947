"""The btrfs pool: read-only template subvolumes and one writable snapshot per container.
The storage path starts here.

Storage path, in the order things happen:
1. `open_pool` (here; the verbs' Context.pool on first use): the root directory if it is on
   btrfs, else a sparse loop-backed btrfs image inside it (as machined once did with
   /var/lib/machines.raw), mounted nosuid,nodev; idempotent, and recovers after a reboot.
2. A template (storage.templates): a recipe (storage.recipes) debootstrapped, or a directory
   or tar archive imported, into a staged subvolume published read-only in pool/templates.
3. Payloads (payload.install): the .debs installed by a sandboxed job into a snapshot of the
   template, kept read-only as a cached root in pool/cache, keyed by the template and the
   packages.
4. A container (container.lifecycle.create): a writable snapshot (storage.btrfs) of the
   template or the cached root in pool/containers, under a disk quota if asked
   (storage.quota); upgrade and rollback swap such snapshots (container.upgrade).
Host code reads files inside any of these roots only through storage.inroot (resolved
inside the root); `prodng pool` reports what each uses (storage.df).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from prodng import locks, run
from prodng.config import Paths
from prodng.errors import SystemFailure
from prodng.storage import btrfs, quota

log = logging.getLogger(__name__)

MIN_FREE_BYTES = 256 * 1024**2  # mkfs plus a template's first writes


def open_pool(paths: Paths, size: int) -> Path:
    """Make sure the pool is mounted and laid out; return its path."""
    _make_root(paths.root)
    with locks.hold(paths.locks / "pool.lock", what="the pool"):
        if btrfs.is_btrfs(paths.root):
            paths.pool.mkdir(exist_ok=True)
        elif not (os.path.ismount(paths.pool) and btrfs.is_btrfs(paths.pool)):
            if not paths.pool_image.exists():
                _create_image(paths.pool_image, size)
            _mount_image(paths.pool_image, paths.pool)
        _harden(paths.pool)
        if paths.pool_image.exists():  # our own image; a btrfs root of the host's keeps its own settings
            quota.enable(paths.pool)
        for sub in (paths.templates, paths.containers):
            sub.mkdir(exist_ok=True)
    return paths.pool


def _harden(pool: Path) -> None:
    """The pool holds roots written by package code: a setuid binary or a device node a payload made
    there must mean nothing on the host, so the pool is mounted nosuid,nodev (remounted if an older
    prodng mounted it without; a pool on the host's own btrfs becomes a bind mount of itself)."""
    flags = os.statvfs(pool).f_flag
    if flags & os.ST_NOSUID and flags & os.ST_NODEV and os.path.ismount(pool):
        return
    if not os.path.ismount(pool):
        run.run(["mount", "--bind", pool, pool])
        run.run(["mount", "-o", "remount,bind,nosuid,nodev", pool])
    else:
        run.run(["mount", "-o", "remount,nosuid,nodev", pool])


def close_pool(paths: Paths) -> None:
    """Unmount an image-backed pool (its loop device is freed by autoclear)."""
    if os.path.ismount(paths.pool):
        run.run(["umount", paths.pool])


def _make_root(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / "locks").mkdir(exist_ok=True)
    except OSError as err:
        raise SystemFailure(f"cannot create root directory {root}: {err.strerror}") from None


def _create_image(image: Path, size: int) -> None:
    free = os.statvfs(image.parent)
    available = free.f_bavail * free.f_frsize
    if available < MIN_FREE_BYTES:
        raise SystemFailure(
            f"disk too full for the pool image {image}: "
            f"{available // 1024**2} MiB free, need {MIN_FREE_BYTES // 1024**2} MiB"
        )
    if size > available:  # sparse, so it can be made; but writes past the free space fail with ENOSPC
        log.warning(
            "prodng: warning: the pool image (%d GiB) is larger than the %d GiB free on %s; "
            "it fills before it is full (set pool_size in %s)",
            size // 1024**3,
            available // 1024**3,
            image.parent,
            image.parent / "settings.toml",
        )
    partial = image.with_suffix(".img.partial")
    try:
        with open(partial, "wb") as f:
            f.truncate(size)  # sparse: no blocks are allocated yet
        run.run(["mkfs.btrfs", "-q", "-f", partial])
        os.rename(partial, image)
    except (OSError, SystemFailure) as err:
        partial.unlink(missing_ok=True)
        reason = err.strerror if isinstance(err, OSError) else str(err)
        raise SystemFailure(f"cannot create pool image {image}: {reason}") from None


def _mount_image(image: Path, mountpoint: Path) -> None:
    mountpoint.mkdir(exist_ok=True)
    if run.run(["losetup", "--find"], check=False).returncode != 0:
        raise SystemFailure(
            "no free loop device for the pool image", hint="free one with losetup -d or load the loop module"
        )
    log.info("mounting pool image %s on %s", image, mountpoint)
    # discard=async: space freed in the pool (rm) is punched out of the sparse image in the
    # background, so it returns to the host's disk within seconds without an fstrim.
    run.run(["mount", "-o", "loop,noatime,nosuid,nodev,discard=async", image, mountpoint])
