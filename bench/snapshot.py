"""Snapshot-create time of a template and of the template plus 2 GB, beside `cp -a` of the same roots."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from common import bench_context, ms

from prodng.storage import btrfs

EXTRA_GB = int(os.environ.get("BENCH_EXTRA_GB", "2"))


def timed_snapshots(source: Path, dest: Path, runs: int = 5) -> list[float]:
    times = []
    for _ in range(runs):
        os.sync()
        start = time.perf_counter()
        btrfs.snapshot(source, dest)
        times.append(time.perf_counter() - start)
        btrfs.delete_subvolume(dest)
    return times


def timed_copy(source: Path, dest: Path) -> float:
    os.sync()
    start = time.perf_counter()
    subprocess.run(["cp", "-a", "--reflink=never", str(source), str(dest)], check=True)
    os.sync()
    elapsed = time.perf_counter() - start
    subprocess.run(["rm", "-rf", str(dest)], check=True)
    return elapsed


def main() -> None:
    ctx = bench_context()
    pool = ctx.paths.pool
    template = ctx.paths.template_root("bookworm")
    big = pool / "bench-big"
    btrfs.delete_subvolume(big)
    btrfs.snapshot(template, big)
    chunk = os.urandom(1 << 20)
    with open(big / "extra", "wb") as f:
        for _ in range(EXTRA_GB * 1024):
            f.write(chunk)
    try:
        size = subprocess.run(["du", "-sh", str(template)], capture_output=True, text=True).stdout.split()[0]
        print(f"template bookworm ({size}) vs template + {EXTRA_GB} GB, on {pool}")
        for label, source in (("template", template), (f"template+{EXTRA_GB}GB", big)):
            snap = timed_snapshots(source, pool / "bench-snap")
            copy = timed_copy(source, pool / "bench-copy")
            print(
                f"{label:>16}: btrfs snapshot {ms(snap)} | cp -a {copy * 1000:10.1f} ms"
                f" | ratio cp/snapshot {copy / sorted(snap)[len(snap) // 2]:8.0f}x"
            )
    finally:
        btrfs.delete_subvolume(big)


if __name__ == "__main__":
    main()
