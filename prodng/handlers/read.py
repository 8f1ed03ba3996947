"""Reads: ls, info, logs, events, query. Light imports: `prodng ls` starts fast."""

from __future__ import annotations

from collections.abc import Iterator

from prodng.container import observe, state
from prodng.container.events import follow as follow_events
from prodng.container.logs import LogRecord, follow_log, log_lines
from prodng.errors import InvalidRequest
from prodng.verbs import Context


def ls(ctx: Context) -> list[dict[str, object]]:
    return observe.list_all(ctx.paths)


def pool(ctx: Context) -> list[dict[str, object]]:
    from prodng.storage.df import pool_usage  # btrfsutil: for this verb only

    return pool_usage(ctx.paths) if ctx.pool_if_present() else []


def info(ctx: Context, name: str) -> dict[str, object]:
    return observe.describe(ctx.paths, name, detail=True)


def logs(ctx: Context, name: str, follow: bool, tail: int | None) -> Iterator[LogRecord | None] | list[LogRecord]:
    if tail is not None and tail < 0:
        raise InvalidRequest("--tail must not be negative")
    if follow:
        state.load(ctx.paths, name)
        return follow_log(ctx.paths, name, tail)
    return log_lines(ctx.paths, name, tail)


def events(ctx: Context) -> Iterator[dict[str, object] | None]:
    return follow_events(ctx.paths)


def query(ctx: Context, sql: str, timeout: float) -> list[dict[str, object]]:
    from prodng.inspect.query import run_query  # sqlite3, osquery's tables: for this verb only

    return run_query(ctx.paths, sql, timeout).rows
