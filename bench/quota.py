"""What disk quotas cost: snapshot (create) and start latency of a container on three pools in
one run: quotas off, simple quotas (squota, what prodng enables) and classic qgroups.

Each pool is its own loop image under PRODNG_BENCH_ROOT/quota-MODE with the bookworm template
received from the test cache (tests/template_cache.py; run the tests once to fill it), or built.
"""

from __future__ import annotations

import glob
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, ms

from prodng import verbs
from prodng.config import Paths
from prodng.container import lifecycle, state
from prodng.container.state import ContainerRecord, Limits
from prodng.settings import Settings
from prodng.storage import pool, quota, templates

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
QUOTA_CTL_DISABLE = 2


def _set_mode(pool_dir: Path, mode: str) -> None:
    """Quotas as MODE ('', squota, qgroup) on a fresh pool; prodng itself only ever enables squota."""
    if quota.mode(pool_dir):
        quota._ioctl(pool_dir, quota.IOC_QUOTA_CTL, bytearray(struct.pack("=QQ", QUOTA_CTL_DISABLE, 0)))
    command = {"squota": quota.QUOTA_CTL_ENABLE_SIMPLE, "qgroup": quota.QUOTA_CTL_ENABLE}.get(mode)
    if command:
        quota._ioctl(pool_dir, quota.IOC_QUOTA_CTL, bytearray(struct.pack("=QQ", command, 0)))
    assert quota.mode(pool_dir) == mode, (quota.mode(pool_dir), mode)


def _template(paths: Paths) -> None:
    streams = sorted(glob.glob(os.path.expanduser("~/.cache/prodng-tests/template-bookworm-*.btrfs")))
    if streams:
        subprocess.run(["btrfs", "receive", "-q", "-f", streams[-1], str(paths.templates)], check=True)
    else:
        templates.build(paths, "bookworm", lambda line: None)


def _pool(mode: str) -> verbs.Context:
    root = ROOT / f"quota-{mode or 'off'}"
    if (root / "pool").is_mount():
        pool.close_pool(Paths(root))
    shutil.rmtree(root, ignore_errors=True)
    ctx = verbs.Context(Paths(root, Settings(pool_size=8 * 1024**3)))
    ctx.pool()
    _set_mode(ctx.paths.pool, mode)
    _template(ctx.paths)  # written after the mode is set, so each mode accounts it its own way
    return ctx


def _measure(ctx: verbs.Context, disk: int | None) -> tuple[list[float], list[float]]:
    creates, starts = [], []
    limits = Limits(disk=disk, pids=2048)
    for i in range(RUNS):
        name = f"q{i}"
        record = ContainerRecord(name=name, template="bookworm", argv=("sleep", "1000"), limits=limits)
        began = time.perf_counter()
        lifecycle.create(ctx.paths, record)
        created = time.perf_counter()
        lifecycle.start(ctx.paths, name)
        creates.append(created - began)
        starts.append(time.perf_counter() - created)
    for i in range(RUNS):
        if state.exists(ctx.paths, f"q{i}"):
            lifecycle.remove(ctx.paths, f"q{i}", force=True)
    return creates, starts


def main() -> None:
    print(f"{RUNS} containers per pool, bookworm template, on {sys.platform} {os.uname().release}")
    for mode, disk in (("", None), ("squota", 1024**3), ("qgroup", 1024**3)):
        ctx = _pool(mode)
        try:
            creates, starts = _measure(ctx, disk)
            label = mode or "off"
            print(f"quotas {label:>6}: create (snapshot + quota) {ms(creates)} | start {ms(starts)}")
        finally:
            pool.close_pool(ctx.paths)
            shutil.rmtree(ctx.paths.root, ignore_errors=True)


if __name__ == "__main__":
    main()
