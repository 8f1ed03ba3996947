"""Upgrade and rollback: swap a new root (and record) in, keeping the previous for rollback.

Everything happens under the container lock, staging included, so two upgrades (or an
upgrade and a rollback) of one container take turns. The swap is a few renames and two
record writes; a journal (state/NAME/swap.json) written before them lists the renames
and how many are done, so a swap killed at any point is undone by the next command that
takes the lock (recover_swap) and the container is again exactly its old version.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

from prodng import faults
from prodng.config import Paths
from prodng.container import state
from prodng.container.lifecycle import halt, release_network, start_locked
from prodng.container.observe import ACTIVE, Observation, observe
from prodng.container.state import ContainerRecord
from prodng.errors import Conflict, ProdngError
from prodng.frozen import replace
from prodng.storage import btrfs

log = logging.getLogger(__name__)

Stage = Callable[[ContainerRecord, Path], ContainerRecord]


def _previous(paths: Paths, name: str) -> tuple[Path, Path]:
    return paths.containers / f".{name}.previous", paths.container_state(name) / "record.previous.json"


def upgrade(paths: Paths, name: str, stage: Stage) -> Observation:
    """stage(current, path) makes the new root at path and returns its record; then swap it in."""
    with state.locked(paths, name):
        current = state.load(paths, name)
        staged = paths.containers / f".{name}.next"
        btrfs.delete_subvolume(staged)  # a killed upgrade's, never a live one's: we hold the lock
        try:
            incoming = stage(current, staged)
            faults.point("upgrade.staged")
            previous_root = _previous(paths, name)[0]
            moves = [(previous_root, paths.containers / f".{name}.older")] if previous_root.exists() else []
            moves += [(paths.container_root(name), previous_root), (staged, paths.container_root(name))]
            return _swap(paths, current, incoming, moves)
        finally:
            btrfs.delete_subvolume(staged)
            btrfs.delete_subvolume(paths.containers / f".{name}.older")


def rollback(paths: Paths, name: str) -> Observation:
    """Return to the previous root and record (a second rollback returns to the newer one)."""
    with state.locked(paths, name):
        current = state.load(paths, name)
        previous_root, previous_record = _previous(paths, name)
        if not (previous_root.exists() and previous_record.exists()):
            raise Conflict(f"container {name} has no previous version to roll back to")
        incoming = ContainerRecord.from_json(json.loads(previous_record.read_text()))
        staged = paths.containers / f".{name}.incoming"
        btrfs.delete_subvolume(staged)
        moves = [
            (previous_root, staged),
            (paths.container_root(name), previous_root),
            (staged, paths.container_root(name)),
        ]
        return _swap(paths, current, incoming, moves)


def _swap(
    paths: Paths, current: ContainerRecord, incoming: ContainerRecord, moves: list[tuple[Path, Path]]
) -> Observation:
    """The renames, then the records, then the start; any failure (or a kill) undoes them all."""
    name = current.name
    previous_record = _previous(paths, name)[1]
    journal = {
        "moves": [[str(src), str(dst)] for src, dst in moves],
        "done": 0,
        "record": current.to_json(),
        "previous_record": previous_record.read_text() if previous_record.exists() else None,
        "was_active": observe(paths, current).state in ACTIVE,
    }
    _write_journal(paths, name, journal)  # first: a kill from here on is undone, the service restarted
    try:
        faults.point("swap.journal")
        halt(paths, current, signal.SIGTERM, 10.0)
        release_network(paths, current)
        for index, (src, dst) in enumerate(moves):
            os.rename(src, dst)
            _write_journal(paths, name, {**journal, "done": index + 1})
            faults.point(("swap.previous", "swap.root", "swap.incoming")[index - len(moves) + 3])
        state.write_atomic(previous_record, json.dumps(replace(current, cgroups=(), started=False).to_json()))
        incoming = replace(incoming, name=name, cgroups=(), started=False, created=current.created)
        state.save(paths, replace(incoming, boot_id=state.boot_id()))
        faults.point("swap.records")
        # An exited container runs its new version too (it was started); only a created one stays so.
        start = journal["was_active"] or current.started
        observed = start_locked(paths, name) if start else observe(paths, state.load(paths, name))
        faults.point("swap.started")
    except BaseException:
        recover_swap(paths, name)
        raise
    state.swap_journal(paths, name).unlink()  # the commit: from here on the new version stays
    return observed


def _write_journal(paths: Paths, name: str, journal: dict[str, object]) -> None:
    state.write_atomic(state.swap_journal(paths, name), json.dumps(journal))


def recover_swap(paths: Paths, name: str) -> None:
    """Undo a swap that did not commit (failed, or killed at any point); the caller holds the lock.

    Renames are undone newest first; the one in flight when a kill came is done exactly
    when its source is gone (each source exists before its rename, each destination not)."""
    path = state.swap_journal(paths, name)
    journal = json.loads(path.read_text())
    on_disk = state.load(paths, name)
    halt(paths, on_disk, signal.SIGKILL, 0)
    release_network(paths, on_disk)
    moves = [(Path(src), Path(dst)) for src, dst in journal["moves"]]
    done = int(journal["done"])
    if done < len(moves) and not moves[done][0].exists():
        done += 1  # killed between a rename and its journal entry
    for index in reversed(range(done)):
        src, dst = moves[index]
        os.rename(dst, src)
        _write_journal(paths, name, {**journal, "done": index})
    old = ContainerRecord.from_json(journal["record"])
    previous_record = _previous(paths, name)[1]
    if journal["previous_record"] is None:
        previous_record.unlink(missing_ok=True)
    else:
        state.write_atomic(previous_record, journal["previous_record"])
    state.save(paths, replace(old, cgroups=(), started=False))
    path.unlink()
    if journal["was_active"]:
        try:
            start_locked(paths, name)
        except ProdngError as err:  # the old version is back, stopped; its status says why
            log.warning("container %s: restarting after an undone upgrade failed: %s", name, err)
