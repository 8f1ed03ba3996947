"""Start latency against runc, bwrap and unshare+chroot on the same root; freeze/thaw; memory per container.

prodng's figure is the library call lifecycle.start() until the service has been
exec'd inside (the monitor reports it); the peers' figure is the whole command
running /bin/true in the same root (their fastest observable equivalent).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from common import bench_context, fresh_container, ms, remove_all, start_idle

from prodng.container import freezer, lifecycle, state
from prodng.storage import btrfs

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
IDLE = int(os.environ.get("BENCH_IDLE", "100"))


def prodng_start(ctx) -> list[float]:  # type: ignore[no-untyped-def]
    fresh_container(ctx, "bench-start", "/bin/true")
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        lifecycle.start(ctx.paths, "bench-start")
        times.append(time.perf_counter() - start)
        lifecycle.stop(ctx.paths, "bench-start", 0)
    lifecycle.remove(ctx.paths, "bench-start", force=True)
    return times


def timed(cmd: list[str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def runc_bundle(root: Path) -> Path:
    bundle = root.parent / "bench-runc-bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"] = {"path": str(root), "readonly": False}
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    spec["linux"]["cgroupsPath"] = "prodng-bench/runc"  # relative: under our own cgroup
    (bundle / "config.json").write_text(json.dumps(spec))
    return bundle


def freeze_thaw(ctx) -> list[float]:  # type: ignore[no-untyped-def]
    fresh_container(ctx, "bench-freeze", "sh -c 'for i in $(seq 49); do sleep 100000 & done; wait'")
    lifecycle.start(ctx.paths, "bench-freeze")
    record = state.load(ctx.paths, "bench-freeze")
    from prodng.container import cgroups

    deadline = time.monotonic() + 30
    while len(cgroups.procs(record.cgroups)) < 51:
        if time.monotonic() > deadline:
            raise SystemExit("the 50-process service did not come up")
        time.sleep(0.05)
    times = []
    for _ in range(RUNS * 5):
        start = time.perf_counter()
        freezer.set_frozen(ctx.paths, "bench-freeze", True)
        freezer.set_frozen(ctx.paths, "bench-freeze", False)
        times.append(time.perf_counter() - start)
    lifecycle.remove(ctx.paths, "bench-freeze", force=True)
    return times


def pss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def idle_memory(ctx) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    names = start_idle(ctx, "bench-idle", IDLE)
    time.sleep(1)
    total = 0
    for name in names:
        status = state.read_status(ctx.paths, name)
        total += pss_kib(int(status["monitor_pid"])) + pss_kib(int(status["init_pid"]))
    rss = statistics.mean(
        sum(
            int(line.split()[1])
            for line in Path(f"/proc/{state.read_status(ctx.paths, n)[k]}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        for n in names
        for k in ("monitor_pid", "init_pid")
    )
    remove_all(ctx, names)
    return total / IDLE / 1024, rss / 1024


def main() -> None:
    ctx = bench_context()
    root = ctx.paths.pool / "bench-peer-root"
    btrfs.delete_subvolume(root)
    btrfs.snapshot(ctx.paths.template_root("bookworm"), root)
    try:
        results = {"prodng start (library call -> exec)": prodng_start(ctx)}
        results["unshare ... chroot ROOT true"] = timed(
            ["unshare", "--mount", "--pid", "--uts", "--ipc", "--net", "--fork", "chroot", str(root), "/bin/true"]
        )
        results["bwrap --unshare-all ... true"] = timed(
            ["bwrap", "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all", "/bin/true"]
        )
        bundle = runc_bundle(root)
        results["runc run (true)"] = timed(["runc", "run", "-b", str(bundle), "prodng-bench"])
        shutil.rmtree(bundle, ignore_errors=True)
    finally:
        btrfs.delete_subvolume(root)
    print(f"start latency, {RUNS} runs each, same bookworm root:")
    for label, times in results.items():
        print(f"  {label:40} {ms(times)}")
    base = statistics.median(results["prodng start (library call -> exec)"])
    floor = statistics.median(results["unshare ... chroot ROOT true"])
    runc = statistics.median(results["runc run (true)"])
    print(
        f"  prodng / unshare floor = {base / floor:.2f}x (target <= 3)   runc / prodng = {runc / base:.2f}x (target >= 3)"
    )
    ft = freeze_thaw(ctx)
    print(f"freeze+thaw of 50 processes, {len(ft)} pairs: {ms(ft)} (target < 5 ms)")
    pss, rss = idle_memory(ctx)
    print(
        f"memory per idle container ({IDLE} containers, monitor + init): PSS {pss:.2f} MiB, "
        f"RSS {rss:.2f} MiB per process (target < 2 MB)"
    )


if __name__ == "__main__":
    main()
