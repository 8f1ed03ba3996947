"""Agent throughput: GET /prodng/ls with N containers and freeze/thaw pairs, over TLS and the unix socket."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from common import ROOT, bench_context, remove_all, start_idle

from prodng.agent import credentials

COUNT = int(os.environ.get("BENCH_CONTAINERS", "100"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1000"))
PAIRS = int(os.environ.get("BENCH_PAIRS", "200"))
CONCURRENCY = 8
# The same measurement on the agent's old shared 6-thread pool, 2026-12-01, this host (2 cores).
BEFORE = "GET /prodng/ls with 6 slow execs: 10 req/s, p50 1.29 ms, p99 19187.79 ms"
SLOW_SECONDS = int(os.environ.get("BENCH_SLOW_SECONDS", "20"))
PORT = 14337


def summary(label: str, latencies: list[float], elapsed: float) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"  {label:34} {len(latencies) / elapsed:8.0f} req/s   p50 {statistics.median(ordered) * 1000:6.2f} ms"
        f"   p99 {p99 * 1000:6.2f} ms"
    )


async def hammer(
    session: aiohttp.ClientSession, base: str, method: str, path: str, total: int, concurrency: int
) -> tuple[list[float], float]:
    latencies: list[float] = []
    remaining = iter(range(total))

    async def worker() -> None:
        for _ in remaining:
            start = time.perf_counter()
            async with session.request(method, base + path) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


async def freeze_thaw(session: aiohttp.ClientSession, base: str, name: str) -> tuple[list[float], float]:
    latencies = []
    start = time.perf_counter()
    for _ in range(PAIRS):
        t = time.perf_counter()
        for verb in ("freeze", "thaw"):
            async with session.post(f"{base}/prodng/{verb}?{name}") as response:
                await response.read()
                assert response.status == 200
        latencies.append(time.perf_counter() - t)
    return latencies, time.perf_counter() - start


async def measure(paths) -> None:  # type: ignore[no-untyped-def]
    tls = credentials.client_context(paths)
    for label, connector, base in (
        ("TLS", lambda: aiohttp.TCPConnector(ssl=tls, limit=CONCURRENCY), f"https://localhost:{PORT}"),
        (
            "unix socket",
            lambda: aiohttp.UnixConnector(path=str(paths.root / "agent.sock"), limit=CONCURRENCY),
            "http://localhost",
        ),
    ):
        async with aiohttp.ClientSession(connector=connector()) as session:
            await hammer(session, base, "GET", "/prodng/ls", 20, CONCURRENCY)  # warm up
            lat, elapsed = await hammer(session, base, "GET", "/prodng/ls", REQUESTS, CONCURRENCY)
            print(summary(f"GET /prodng/ls ({COUNT} ctrs), {label}", lat, elapsed))
            lat, elapsed = await freeze_thaw(session, base, "bench-agent-0")
            print(summary(f"freeze+thaw pair, {label}", lat, elapsed))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls, limit=64)) as session:
        await under_slow_verbs(session, f"https://localhost:{PORT}")


async def under_slow_verbs(session: aiohttp.ClientSession, base: str) -> None:
    """Issue 17's starvation: six `exec sleep` on the agent's old shared 6-thread pool made GET info
    take 19 s; with a pool per class of verbs reads do not wait for them."""

    async def slow(index: int) -> None:
        body = {"name": f"bench-agent-{index}", "command": ["sleep", str(SLOW_SECONDS)]}
        async with session.post(f"{base}/prodng/exec", json=body) as response:
            await response.read()

    execs = [asyncio.create_task(slow(i)) for i in range(6)]
    await asyncio.sleep(1.0)
    for path in ("/prodng/ls", "/prodng/info?bench-agent-50"):
        lat, elapsed = await hammer(session, base, "GET", path, 200, CONCURRENCY)
        print(summary(f"GET {path.split('?')[0]} with 6 slow execs", lat, elapsed))
    print(f"  (before the per-class pools, 83e1dd1: {BEFORE})")
    if all(task.done() for task in execs):
        print(f"  (the execs ended before the reads did: raise BENCH_SLOW_SECONDS above {SLOW_SECONDS})")
    await asyncio.gather(*execs)


def main() -> None:
    ctx = bench_context()
    names = start_idle(ctx, "bench-agent", COUNT)
    # cwd: the repository, so this file (bench/agent.py) cannot shadow the agent package.
    agent = subprocess.Popen(
        [sys.executable, "-m", "prodng", "--root", str(ROOT), "agent", "--port", str(PORT)],
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        while not (ROOT / "agent.sock").exists():
            if agent.poll() is not None:
                raise SystemExit(f"the agent exited with {agent.returncode}")
            time.sleep(0.1)
        print(f"agent with {COUNT} containers, {CONCURRENCY} concurrent clients:")
        asyncio.run(measure(ctx.paths))
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait()
        remove_all(ctx, names)


if __name__ == "__main__":
    main()
