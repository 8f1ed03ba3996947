"""A container's services: the plan compiled from its root for the init's service manager (native/
services.c), and waiting for the units to start (their states, as the manager reports them in
status.units, are read by container.state).

A container run from a .deb without --exec or X-Prodng-Exec runs its plan: the units systemd would
start at boot, or those picked with --unit.
"""

from __future__ import annotations

import time
from pathlib import Path

from prodng.config import Paths
from prodng.container import state
from prodng.container.monitor import DEFAULT_CAPS
from prodng.container.state import ContainerRecord
from prodng.errors import InvalidRequest, ServiceFailed
from prodng.payload.plan import Plan, ServicePlan, compile_plan, id_table

__all__ = ["Plan", "compile_for", "plan_pairs", "wait_started"]
from prodng.payload.rootfiles import RootFiles

BOOT_WAIT_MAX = 600.0  # seconds: no unit's TimeoutStartSec= makes `start` wait longer


def uses_plan(record: ContainerRecord) -> bool:
    return not record.argv and bool(record.payloads)


def compile_for(paths: Paths, record: ContainerRecord, root: Path | None = None) -> Plan:
    files = RootFiles(root or paths.container_root(record.name), tuple((b.source, b.target) for b in record.binds))
    env = dict(e.split("=", 1) for e in record.env)
    names = tuple(label.split("=", 1)[0] for label in record.payloads)
    return compile_plan(files, record.name, record.units, env, frozenset(DEFAULT_CAPS), names)


def bind_owners(paths: Paths, record: ContainerRecord, root: Path | None = None) -> dict[str, tuple[int, int]]:
    """The uid and primary gid of each bind's owner= user, read from the root's /etc/passwd at every start
    (an upgrade may have made the user, or given it another uid)."""
    wanted = {b.owner for b in record.binds if b.owner}
    if not wanted:
        return {}
    files = RootFiles(root or paths.container_root(record.name), tuple((b.source, b.target) for b in record.binds))
    users = id_table(files, "passwd")
    found = {}
    for name in sorted(wanted):
        if name in users:
            found[name] = users[name]
        elif name.isdigit():  # a uid: its user's group if it has a user, else the same number
            found[name] = next((ids for ids in users.values() if ids[0] == int(name)), (int(name), int(name)))
        else:
            raise InvalidRequest(f"bind owner {name} is no user of the container {record.name}")
    return found


def hosts_file(name: str) -> str:
    return f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{name}\n"


def ms(seconds: float) -> str:
    return str(int(seconds * 1000)) if seconds >= 0 else "-1"


def _unit_pairs(unit: ServicePlan, restart_override: str) -> list[tuple[str, str]]:
    pairs = [
        ("unit", unit.name),
        ("u_type", unit.type),
        ("u_uid", str(unit.uid)),
        ("u_gid", str(unit.gid)),
        ("u_workdir", unit.workdir),
        ("u_pidfile", unit.pidfile),
        ("u_killmode", unit.kill_mode),
        ("u_killsig", str(unit.kill_signal)),
        ("u_sigkill", str(int(unit.send_sigkill))),
        ("u_remain", str(int(unit.remain))),
        ("u_start_timeout", ms(unit.start_timeout)),
        ("u_stop_timeout", ms(unit.stop_timeout)),
        ("u_restart", restart_override if restart_override != "no" else unit.restart),
        ("u_restart_ms", ms(unit.restart_sec)),
    ]
    if unit.ambient:
        pairs.append(("u_ambient", str(sum(1 << DEFAULT_CAPS[name] for name in set(unit.ambient)))))
    if unit.skip:
        pairs.append(("u_skip", unit.skip))
    pairs += [("u_group", str(g)) for g in unit.groups]
    pairs += [("u_env", e) for e in unit.env]
    pairs += [("u_dir", d.encode()) for d in unit.dirs]
    for phase, command in unit.commands:
        pairs.append(("u_cmd", "\x1f".join((phase, command.flags(), command.path, *command.argv))))
    return pairs


def plan_pairs(plan: Plan, record: ContainerRecord) -> list[tuple[str, str]]:
    """The plan as monitor config keys (native/config.c, set_unit)."""
    pairs = [("hosts", hosts_file(record.name))]
    pairs += [("tmpfile", op.encode()) for op in plan.tmpfiles]
    for unit in plan.services:
        pairs += _unit_pairs(unit, record.restart)
    return pairs


def failures(units: list[dict[str, object]]) -> list[dict[str, object]]:
    return [u for u in units if u["boot_failed"] or u["state"] == "failed"]


def wait_started(paths: Paths, record: ContainerRecord, plan: Plan, init_alive) -> None:  # type: ignore[no-untyped-def]
    """Until the manager has started every unit; ServiceFailed (with the last log lines) when one failed."""
    limit = min(BOOT_WAIT_MAX, sum(max(u.start_timeout, 0) + 5 for u in plan.services) or 30)
    deadline = time.monotonic() + limit
    delay = 0.005
    while time.monotonic() < deadline:
        boot, units = state.read_units(paths, record.name)
        if boot == "done" or (boot and not init_alive()):
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    else:
        raise ServiceFailed(f"container {record.name}: its units did not start within {limit:.0f} s")
    from prodng.container.logs import log_lines  # logs reads observe, which reads this module

    essential = {u.name for u in plan.services if u.essential}
    failed = [u for u in failures(units) if u["name"] in essential]
    logged = [r["line"] for r in log_lines(paths, record.name, 12)]
    lines = "\n".join(logged)
    if failed:
        first = failed[0]
        # The unit's own last lines came with its failure report; the log's may not be written yet
        # (the monitor copies it from another pipe), so they are added to, not relied on.
        own = [str(line) for line in first["log"]] if isinstance(first.get("log"), list) else []  # type: ignore[attr-defined]
        said = "\n".join([*(line for line in logged if line not in own), *own])
        raise ServiceFailed(f"{record.name}: unit {first['name']} failed: {first['error']}\n{said}")
    if not any(u["state"] in ("running", "exited") for u in units):
        why = "; ".join(f"{u['name']} {u['state']}" + (f" ({u['error']})" if u["error"] else "") for u in units)
        raise ServiceFailed(f"{record.name}: no unit is running: {why}\n{lines}")
