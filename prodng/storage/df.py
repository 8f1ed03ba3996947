"""`prodng pool`: the pool's size, use and free space, and what each template, cached install
and container takes of it (as `docker system df -v` does)."""

from __future__ import annotations

import os
from pathlib import Path

from prodng.config import Paths
from prodng.storage import btrfs, quota


def human(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return str(value)


def _row(kind: str, name: str, used: int | None, limit: int | None, free: int | None = None) -> dict[str, object]:
    return {
        "kind": kind,
        "name": name,
        "used": human(used),
        "limit": human(limit),
        "free": human(free),
        "used_bytes": used,
        "limit_bytes": limit,
        "free_bytes": free,
    }


def _filesystem_rows(paths: Paths) -> list[dict[str, object]]:
    fs = os.statvfs(paths.pool)
    rows = [
        _row(
            "pool",
            str(paths.pool),
            (fs.f_blocks - fs.f_bfree) * fs.f_frsize,
            fs.f_blocks * fs.f_frsize,
            fs.f_bavail * fs.f_frsize,
        )
    ]
    if paths.pool_image.exists():  # what the sparse image really takes of the host's disk
        image, host = os.stat(paths.pool_image), os.statvfs(paths.pool_image.parent)
        rows.append(
            _row("image", str(paths.pool_image), image.st_blocks * 512, image.st_size, host.f_bavail * host.f_frsize)
        )
    return rows


def _subvolume_rows(paths: Paths, kind: str, folder: Path) -> list[dict[str, object]]:
    rows = []
    for root in sorted(folder.iterdir()) if folder.is_dir() else []:
        if root.name.startswith(".") or not btrfs.is_subvolume(root):
            continue  # builds in progress, an upgrade's previous roots
        usage = quota.usage(paths.pool, root)
        rows.append(_row(kind, root.name, usage.used if usage else None, usage.limit if usage else None))
    return rows


def pool_usage(paths: Paths) -> list[dict[str, object]]:
    """Used is the qgroup's count: under simple quotas what the subvolume wrote itself (a
    container's share of its template is the template's). The kernel counts at commit, so this
    commits first (info and metrics do not: theirs may be up to 30 s old)."""
    btrfs.commit(paths.pool)
    return [
        *_filesystem_rows(paths),
        *_subvolume_rows(paths, "template", paths.templates),
        *_subvolume_rows(paths, "install", paths.pool / "cache"),
        *_subvolume_rows(paths, "container", paths.containers),
    ]
