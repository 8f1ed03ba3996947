"""Shared set-up for the benchmarks: a bench root with a built bookworm template."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prodng import templates, verbs  # noqa: E402
from prodng.config import Paths  # noqa: E402

ROOT = Path(os.environ.get("PRODNG_BENCH_ROOT", "/var/tmp/prodng-bench"))


def bench_context() -> verbs.Context:
    ctx = verbs.Context(Paths(ROOT), progress=lambda line: None)
    ctx.pool()
    if "bookworm" not in templates.names(ctx.paths):
        print("building the bookworm template once (~35 s) ...", flush=True)
        templates.build(ctx.paths, "bookworm", lambda line: None)
    return ctx


def ms(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:8.2f} ms   p99 {p99 * 1000:8.2f} ms"
