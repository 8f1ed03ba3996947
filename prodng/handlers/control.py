"""Verbs on an existing container: start, stop, kill, rm, rollback, exec (freeze, thaw: handlers.freezer)."""

from __future__ import annotations

import signal as signals

from prodng.container import enter, lifecycle, observe, state, upgrade
from prodng.errors import InvalidRequest, NotFound
from prodng.verbs import Context


def rollback(ctx: Context, name: str) -> dict[str, object]:
    upgrade.rollback(ctx.paths, name)
    return observe.describe(ctx.paths, name)


def start(ctx: Context, name: str) -> dict[str, object]:
    lifecycle.start(ctx.paths, name)
    return observe.describe(ctx.paths, name)


def stop(ctx: Context, name: str, timeout: float) -> dict[str, object]:
    lifecycle.stop(ctx.paths, name, timeout)
    return observe.describe(ctx.paths, name)


def restart(ctx: Context, name: str, timeout: float) -> dict[str, object]:
    lifecycle.restart(ctx.paths, name, timeout)
    return observe.describe(ctx.paths, name)


def reload(ctx: Context, name: str) -> dict[str, object]:
    lifecycle.kill(ctx.paths, name, signals.SIGHUP)  # the init runs each unit's ExecReload= or sends it HUP
    return observe.describe(ctx.paths, name)


def parse_signal(text: str) -> int:
    raw = text.upper().removeprefix("SIG")
    if raw.isdigit() and 0 < int(raw) < signals.NSIG:
        return int(raw)
    try:
        return int(signals.Signals[f"SIG{raw}"])
    except KeyError:
        raise InvalidRequest(f"unknown signal {text!r}", hint="e.g. TERM, HUP, KILL or a number") from None


def kill(ctx: Context, name: str, signal: str) -> dict[str, object]:
    lifecycle.kill(ctx.paths, name, parse_signal(signal))
    return observe.describe(ctx.paths, name)


def rm(ctx: Context, name: str, force: bool) -> dict[str, object]:
    # A state directory without a record is what a killed create left: rm goes on to the lock,
    # whose repair discards it (and then finds no such container); rm of a name never made
    # mounts nothing.
    if not ctx.paths.container_state(state.check_name(name)).is_dir():
        raise NotFound(f"no such container: {name}")
    ctx.pool()
    lifecycle.remove(ctx.paths, name, force=force)
    return {"name": name, "removed": True}


def recover(ctx: Context) -> dict[str, object]:
    return {"started": ctx.restarted}


EXEC_OUTPUT_MAX = 1024 * 1024
EXEC_TIMEOUT = 600.0  # over REST: an agent thread is never held without end by what a container runs


def exec(
    ctx: Context, name: str, command: list[str], tty: bool, interactive: bool, user: str | None, timeout: float
) -> dict[str, object]:
    if ctx.interactive and tty:  # the CLI relays the operator's terminal to a pty made in the container
        stop = enter.bounded(timeout, ctx.cancelled)
        return {"name": name, "exit_code": enter.exec_terminal(ctx.paths, name, command, user, stop)}
    if ctx.interactive:
        stop = enter.bounded(timeout, ctx.cancelled)
        code = enter.exec_attached(ctx.paths, name, command, stdin=interactive, user=user, stop=stop)
        return {"name": name, "exit_code": code}
    if tty or interactive:
        raise InvalidRequest("-t and -i need the CLI", hint="over REST, exec returns the command's output")
    stop = enter.bounded(timeout or EXEC_TIMEOUT, ctx.cancelled)
    return enter.exec_captured(ctx.paths, name, command, EXEC_OUTPUT_MAX, user, stop)
