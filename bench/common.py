"""Shared set-up for the benchmarks: a bench root with a built bookworm template."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prodng import verbs  # noqa: E402
from prodng.config import open_root  # noqa: E402
from prodng.storage import templates

ROOT = Path(os.environ.get("PRODNG_BENCH_ROOT", "/var/tmp/prodng-bench"))


def bench_context() -> verbs.Context:
    ctx = verbs.Context(open_root(ROOT), progress=lambda line: None)
    ctx.pool()
    if "bookworm" not in templates.names(ctx.paths):
        print("building the bookworm template once (~35 s) ...", flush=True)
        templates.build(ctx.paths, "bookworm", lambda line: None)
    return ctx


def ms(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:8.2f} ms   p99 {p99 * 1000:8.2f} ms"


def fresh_container(ctx: verbs.Context, name: str, command: str) -> None:
    """Create NAME anew (removing a leftover of an interrupted run)."""
    import shlex

    from prodng.container import lifecycle, state
    from prodng.container.state import ContainerRecord

    if state.exists(ctx.paths, name):
        lifecycle.remove(ctx.paths, name, force=True)
    lifecycle.create(ctx.paths, ContainerRecord(name=name, template="bookworm", argv=tuple(shlex.split(command))))


def start_idle(ctx: verbs.Context, prefix: str, count: int) -> list[str]:
    """COUNT running idle containers named PREFIX-0..N."""
    from prodng.container import lifecycle

    names = [f"{prefix}-{i}" for i in range(count)]
    for name in names:
        fresh_container(ctx, name, "sleep 1000000")
        lifecycle.start(ctx.paths, name)
    return names


def remove_all(ctx: verbs.Context, names: list[str]) -> None:
    from prodng.container import lifecycle

    for name in names:
        lifecycle.remove(ctx.paths, name, force=True)
