"""Freeze and thaw: the cgroup freezer, under the container's lock.

Apart from container.lifecycle so that `prodng freeze` and `thaw` load only this, the record
and the kernel's view (container.observe), not the spawn path (issue 11: CLI start-up).
"""

from __future__ import annotations

from prodng.config import Paths
from prodng.container import cgroups, events, state
from prodng.container.observe import ContainerState, Observation, observe, running_container


def set_frozen(paths: Paths, name: str, frozen: bool) -> Observation:
    with state.locked(paths, name):
        record, before = running_container(paths, name)
        cgroups.set_frozen(record.cgroups, frozen)
        if (before.state == ContainerState.FROZEN) != frozen:
            events.emit(paths, "frozen" if frozen else "thawed", name)
        return observe(paths, record)
