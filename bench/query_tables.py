"""Time of SELECT * FROM prodng_processes with N containers, against `ps` run per container."""

from __future__ import annotations

import os
import subprocess
import time

from common import bench_context, remove_all, start_idle

from prodng.container import cgroups, state
from prodng.inspect.query import run_query

COUNT = int(os.environ.get("BENCH_CONTAINERS", "100"))


def main() -> None:
    ctx = bench_context()
    names = start_idle(ctx, "bench-q", COUNT)
    try:
        start = time.perf_counter()
        rows = run_query(ctx.paths, "SELECT * FROM prodng_processes").rows
        sql_time = time.perf_counter() - start
        start = time.perf_counter()
        ps_rows = 0
        for name in names:
            pids = ",".join(map(str, cgroups.procs(state.load(ctx.paths, name).cgroups)))
            out = subprocess.run(
                ["ps", "-o", "pid=,user=,rss=,time=,stat=,args=", "-p", pids], capture_output=True, text=True
            ).stdout
            ps_rows += len(out.splitlines())
        ps_time = time.perf_counter() - start
        print(
            f"{COUNT} containers: SELECT * FROM prodng_processes {sql_time * 1000:.1f} ms ({len(rows)} rows) | "
            f"ps per container {ps_time * 1000:.1f} ms ({ps_rows} rows) | ratio ps/query {ps_time / sql_time:.2f}x"
        )
    finally:
        remove_all(ctx, names)


if __name__ == "__main__":
    main()
