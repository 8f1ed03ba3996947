"""Repairing what a killed command or a killed monitor left behind.

Every verb that changes a container holds its lock; a kill -9 frees the lock but not the
half-done work. The next holder of the lock repairs it first (recover_locked, called by
state.locked), and commands that open the pool sweep every container (sweep), taking
each lock without waiting: a held lock means a live command that will finish its work.

What is repaired: a state directory without a record (create or rm killed: discarded),
an upgrade or rollback that did not commit (undone from its journal), a `run` killed
between create and start (discarded, its creator dead), leftovers of staging (deleted),
and a container whose monitor was killed (marked dead, `died` emitted, restarted if its
policy says so).
"""

from __future__ import annotations

import os

from prodng.config import Paths
from prodng.container import events, state
from prodng.container.state import ContainerRecord
from prodng.errors import Conflict, NotFound, ProdngError
from prodng.frozen import replace
from prodng.logger import Logger

log = Logger(__name__)

STAGING = (".next", ".older", ".incoming")


def recover_locked(paths: Paths, name: str) -> None:
    """Repair NAME's half-done work; the caller holds NAME's lock. What repairs imports lifecycle
    (which needs this module): imported only when there is something to repair, so that a verb
    that finds nothing (most of them, and `freeze`) starts without it."""
    directory = paths.container_state(name)
    if not directory.is_dir():
        return
    if not state.exists(paths, name):
        from prodng.container import lifecycle

        log.info("container %s: discarding what a killed create or rm left", name)
        lifecycle.discard(paths, name)
        return
    if state.swap_journal(paths, name).exists():
        from prodng.container import upgrade

        log.info("container %s: undoing an upgrade that did not finish", name)
        upgrade.recover_swap(paths, name)
    record = state.load(paths, name)
    if record.pending_start and not _alive(record.pending_start):
        if _discard_killed_run(paths, record):
            return
    for suffix in STAGING:
        if os.path.lexists(paths.containers / f".{name}{suffix}"):
            from prodng.storage import btrfs

            btrfs.delete_subvolume(paths.containers / f".{name}{suffix}")


def _discard_killed_run(paths: Paths, record: ContainerRecord) -> bool:
    """A `run` killed before its start finished: all or nothing, so nothing (True), unless its
    service did start, which makes it an ordinary container (False)."""
    from prodng.container import lifecycle
    from prodng.container.observe import ACTIVE, observe
    from prodng.network import claims

    if record.started and observe(paths, record).state in ACTIVE:
        state.save(paths, replace(record, pending_start=""))
        return False
    log.info("container %s: discarding a run killed before its start", record.name)
    lifecycle.release_network(paths, record)
    claims.release_claims(paths, record.name)
    lifecycle.discard(paths, record.name)
    events.emit(paths, "removed", record.name, error="run killed before start")
    return True


def _alive(identity: str) -> bool:
    pid, _, start = identity.partition(" ")
    return state.same_process(int(pid), int(start or 0))


def dead_monitor(paths: Paths, record: ContainerRecord) -> bool:
    """Its monitor was killed while it supervised (it writes a final state when it ends)."""
    from prodng.container.observe import MONITOR_KILLED, observe

    return record.started and observe(paths, record).error == MONITOR_KILLED


def bury(paths: Paths, record: ContainerRecord) -> None:
    """A container whose monitor was killed: undo what the monitor would have, say so once."""
    from prodng.container import cgroups
    from prodng.container.lifecycle import release_network
    from prodng.container.observe import MONITOR_KILLED

    cgroups.kill_all(record.cgroups)
    release_network(paths, record)
    status = state.read_status(paths, record.name)
    status.update(state="dead", error=MONITOR_KILLED, init_pid="0")
    text = "".join(f"{key}={value}\n" for key, value in status.items())
    state.write_atomic(paths.container_state(record.name) / "status", text)
    events.emit(paths, "died", record.name, error=MONITOR_KILLED)


def restartable(record: ContainerRecord) -> bool:
    return record.restart in ("always", "on-failure")


def sweep(paths: Paths, *, restart: bool = False) -> list[str]:
    """Repair every container nobody is working on; with restart, start the restartable ones
    that are down because their monitor was killed or the host rebooted. Returns the started."""
    started = []
    for directory in sorted(paths.state.iterdir()) if paths.state.is_dir() else []:
        if directory.name.startswith(".") or not directory.is_dir():
            continue
        try:
            with state.locked(paths, directory.name, wait=False):  # repairs on entry
                if _sweep_one(paths, directory.name, restart):
                    started.append(directory.name)
        except (Conflict, NotFound):
            continue  # busy (a live command) or gone
        except ProdngError as err:
            log.warning("container %s: %s", directory.name, err)
    return started


def _sweep_one(paths: Paths, name: str, restart: bool) -> bool:
    from prodng.container.lifecycle import release_network, start_locked
    from prodng.container.observe import ACTIVE, ContainerState, observe

    if not state.exists(paths, name):
        return False
    record = state.load(paths, name)
    if dead_monitor(paths, record):
        bury(paths, record)
    elif record.started and record.cgroups and observe(paths, record).state not in ACTIVE:
        # What a killed start or stop, or a previous boot, left: cgroups and network of nothing running.
        release_network(paths, record)
        record = replace(record, cgroups=())
        state.save(paths, record)
    if not (restart and restartable(record) and record.started):
        return False
    observed = observe(paths, record)
    if observed.state in ACTIVE:
        return False
    if record.boot_id == state.boot_id() and observed.state != ContainerState.DEAD:
        return False  # it ended under a live monitor: its policy was applied
    if state.read_status(paths, name).get("state") == "stopped":
        return False  # someone stopped it: a reboot does not undo that
    start_locked(paths, name)
    return True
