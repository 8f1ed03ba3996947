"""Upgrade and rollback: swap a new root (and record) in, keeping the previous for rollback."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import replace
from pathlib import Path

from prodng.config import Paths
from prodng.container import state
from prodng.container.lifecycle import halt, release_network, start_locked
from prodng.container.observe import ACTIVE, Observation, observe
from prodng.container.state import ContainerRecord
from prodng.errors import Conflict
from prodng.storage import btrfs

# ---- upgrade and rollback: a new root beside the running one, the old one kept ----


def _previous(paths: Paths, name: str) -> tuple[Path, Path]:
    return paths.containers / f".{name}.previous", paths.container_state(name) / "record.previous.json"


def swap_in(paths: Paths, name: str, incoming_root: Path, incoming: ContainerRecord) -> Observation:
    """Replace the container's root and record; the current ones become the previous version.

    incoming_root must be a subvolume in the pool. If the new version fails to start,
    everything is put back as it was (the incoming root returns to incoming_root) and
    the old version is started again before the error is raised."""
    with state.locked(paths, name):
        current = state.load(paths, name)
        was_active = observe(paths, current).state in ACTIVE
        previous_root, previous_record = _previous(paths, name)
        older = paths.containers / f".{name}.older"
        root = paths.container_root(name)
        old_previous_text = previous_record.read_text() if previous_record.exists() else None
        halt(paths, current, signal.SIGTERM, 10.0)
        release_network(paths, current)
        btrfs.delete_subvolume(older)
        if previous_root.exists():
            os.rename(previous_root, older)
        os.rename(root, previous_root)
        os.rename(incoming_root, root)
        state.write_atomic(previous_record, json.dumps(replace(current, cgroups=(), started=False).to_json()))
        state.save(
            paths,
            replace(incoming, name=name, cgroups=(), started=False, created=current.created, boot_id=state.boot_id()),
        )
        try:
            observed = start_locked(paths, name) if was_active else observe(paths, state.load(paths, name))
        except BaseException:
            failed = state.load(paths, name)
            halt(paths, failed, signal.SIGKILL, 0)
            release_network(paths, failed)
            os.rename(root, incoming_root)
            os.rename(previous_root, root)
            if older.exists():
                os.rename(older, previous_root)
            if old_previous_text is None:
                previous_record.unlink(missing_ok=True)
            else:
                state.write_atomic(previous_record, old_previous_text)
            state.save(paths, replace(current, cgroups=(), started=False))
            start_locked(paths, name)
            raise
        btrfs.delete_subvolume(older)
        return observed


def rollback(paths: Paths, name: str) -> Observation:
    """Return to the previous root and record (a second rollback returns to the newer one)."""
    previous_root, previous_record = _previous(paths, name)
    state.load(paths, name)
    if not (previous_root.exists() and previous_record.exists()):
        raise Conflict(f"container {name} has no previous version to roll back to")
    incoming = ContainerRecord.from_json(json.loads(previous_record.read_text()))
    staged = paths.containers / f".{name}.incoming"
    btrfs.delete_subvolume(staged)
    os.rename(previous_root, staged)
    try:
        return swap_in(paths, name, staged, incoming)
    finally:
        if staged.exists() and not previous_root.exists():
            os.rename(staged, previous_root)  # a failed rollback keeps its previous version
