"""What a container is doing, from the kernel and the monitor's status file.

The truth comes from the kernel (pid + start time, cgroup freezer state) and from the
monitor's status file, never from a cached field: the record holds only what was asked for.
"""

from __future__ import annotations

import enum

from prodng import locks
from prodng.config import Paths
from prodng.container import cgroups, state
from prodng.container.state import ContainerRecord, Limits
from prodng.errors import Conflict, NotFound
from prodng.frozen import asdict, frozen, replace
from prodng.network import wiring


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    FROZEN = "frozen"
    RESTARTING = "restarting"
    EXITED = "exited"
    DEAD = "dead"  # its monitor was killed: nobody supervises or restarts it (error says so)


ACTIVE = (ContainerState.RUNNING, ContainerState.FROZEN, ContainerState.RESTARTING)
SUPERVISED = ("restarting", "running", "starting")  # a monitor's states while it should be alive
MONITOR_KILLED = "monitor killed"


@frozen
class Observation:
    state: ContainerState
    pid: int | None = None
    pid_start: int = 0  # the init's start time: with pid, names it for good (exec joins only that process)
    monitor_pid: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str = ""


# ---- the kernel's view ----


def observe(paths: Paths, record: ContainerRecord) -> Observation:
    status = state.read_status(paths, record.name)
    if not record.started:
        return Observation(ContainerState.CREATED, error=status.get("error", ""))
    if record.boot_id != state.boot_id():
        return Observation(ContainerState.EXITED, error="host rebooted")
    init_pid, init_start = int(status.get("init_pid", 0)), int(status.get("init_start", 0))
    monitor_pid, monitor_start = int(status.get("monitor_pid", 0)), int(status.get("monitor_start", 0))
    monitor_alive = state.same_process(monitor_pid, monitor_start)
    seen = Observation(
        ContainerState.EXITED,
        monitor_pid=monitor_pid if monitor_alive else None,
        restarts=int(status.get("restarts", 0)),
        started_at=float(status.get("started_at", 0)) or None,
        error=status.get("error", ""),
    )
    if state.same_process(init_pid, init_start):
        frozen = cgroups.is_frozen(record.cgroups)
        running = ContainerState.FROZEN if frozen else ContainerState.RUNNING
        return replace(seen, state=running, pid=init_pid, pid_start=init_start)
    if status.get("state") in SUPERVISED:
        if monitor_alive:
            return replace(seen, state=ContainerState.RESTARTING)
        return replace(seen, state=ContainerState.DEAD, error=MONITOR_KILLED)
    if status.get("state") == "dead":
        return replace(seen, state=ContainerState.DEAD)
    finished = float(status.get("finished_at", 0)) or None
    code = int(status["exit_code"]) if "exit_code" in status else None
    return replace(seen, exit_code=code, finished_at=finished)


def running_container(paths: Paths, name: str) -> tuple[ContainerRecord, Observation]:
    record = state.load(paths, name)
    observed = observe(paths, record)
    if observed.state not in (ContainerState.RUNNING, ContainerState.FROZEN):
        raise Conflict(f"container {name} is not running (it is {observed.state})")
    return record, observed


# ---- reading ----


def describe(paths: Paths, name: str, *, detail: bool = False) -> dict[str, object]:
    record = state.load(paths, name)
    return summarize(paths, record, observe(paths, record), detail=detail)


def summarize(
    paths: Paths, record: ContainerRecord, observed: Observation, *, detail: bool = False
) -> dict[str, object]:
    name = record.name
    wired = wiring.describe(paths, name) if observed.state in ACTIVE else {}
    _boot, units = state.read_units(paths, name)
    summary: dict[str, object] = {
        "name": name,
        "state": str(observed.state),
        "template": record.template,
        "pid": observed.pid,
        "network": str(record.network),
        "ip": wired.get("ip", ""),
        "command": " ".join(record.argv) or " ".join(str(u["name"]) for u in units),
        "units": count_up(units),
        "created": record.created,
        "started_at": observed.started_at,
        "restarts": observed.restarts,
        "exit_code": observed.exit_code,
        "limits": limits_text(record.limits),
    }
    if detail:
        summary.update(
            root=str(paths.container_root(name)),
            monitor_pid=observed.monitor_pid,
            finished_at=observed.finished_at,
            error=_unfinished_swap(paths, name) or observed.error,
            restart=str(record.restart),
            restart_max=record.restart_max,
            env=list(record.env),
            unit_env=list(record.unit_env),
            payloads=list(record.payloads),
            binds=[b.spec() for b in record.binds],
            limits=asdict(record.limits),
            disk=_disk(paths, name),
            hermetic=record.network.kind != "host",
            cgroups=list(record.cgroups),
            forwards=[str(f) for f in record.forwards],
            services=units,
            picked_units=list(record.units),
            interface=wired or None,
            stats=cgroups.stats(record.cgroups) if observed.state in ACTIVE else None,
        )
    return summary


def _unfinished_swap(paths: Paths, name: str) -> str:
    """An upgrade's journal (container.upgrade): the record may not match the root until it is done."""
    if not state.swap_journal(paths, name).exists():
        return ""
    if locks.is_held(paths.locks / f"container-{name}.lock"):
        return "an upgrade or rollback is in progress"
    return "an upgrade or rollback was interrupted: the next prodng command undoes it"


def _disk(paths: Paths, name: str) -> dict[str, int | None] | None:
    from prodng.storage import quota  # info only: ls starts without it

    used = quota.usage(paths.pool, paths.container_root(name))
    return {"used": used.used, "limit": used.limit} if used else None


def limits_text(limits: Limits) -> str:
    """The limits in force, short, for `ls`."""
    words = [
        f"mem={_size(limits.memory)}" if limits.memory else "",
        f"pids={limits.pids}" if limits.pids else "",
        f"cpus={limits.cpus:g}" if limits.cpus else "",
        f"disk={_size(limits.disk)}" if limits.disk else "",
    ]
    return " ".join(w for w in words if w) or "-"


def _size(value: int) -> str:
    for unit, scale in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return str(value)


def list_all(paths: Paths) -> list[dict[str, object]]:
    rows = []
    for name in state.names(paths):
        try:
            rows.append(describe(paths, name))
        except NotFound:
            continue  # removed while we looked
    return rows


def count_up(units: list[dict[str, object]]) -> str:
    """For ls: units up (running, or exited with RemainAfterExit) of those planned."""
    up = sum(1 for u in units if u["state"] in ("running", "exited"))
    return f"{up}/{len(units)}" if units else ""
