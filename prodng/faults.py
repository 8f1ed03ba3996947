"""Fault injection for the crash tests: PRODNG_FAULT=POINT makes prodng SIGKILL itself at POINT.

The kill-injection harness (tests/test_crash.py) names the points; nothing else reads the
variable. A kill -9 is what a crash, an OOM kill or a power cut leaves behind, so every
point must leave a state the next command repairs.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "create.dir",  # the state directory made, nothing in it
    "create.root",  # the root snapshotted, no record yet
    "run.created",  # the record written, not started
    "start.spawned",  # the monitor runs, the verb has not answered
    "upgrade.staged",  # the new root staged beside the old one
    "swap.journal",  # the swap's journal written, nothing moved
    "swap.previous",  # the old previous version moved aside
    "swap.root",  # the running root moved to previous: no root at all
    "swap.incoming",  # the new root in place, records still old
    "swap.records",  # the new records written, the service not started
    "swap.started",  # the new version started, the journal still there
    "rm.record",  # the record gone, root and state directory still there
    "rm.root",  # the root gone, state directory still there
)


def point(name: str) -> None:
    if os.environ.get("PRODNG_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
