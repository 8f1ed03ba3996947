"""The shared helpers for processes and deadlines (prodng/pidfd.py, prodng/polling.py, run.spawn_daemon), on real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from prodng import pidfd, polling, run


def test_a_process_that_is_no_longer_the_one_meant_is_not_signalled() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert not pidfd.send_signal(child.pid, signal.SIGTERM, still_it=lambda: False)
        assert child.poll() is None
        assert pidfd.send_signal(child.pid, signal.SIGTERM, still_it=lambda: True)
        assert child.wait(5) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait()
    assert not pidfd.send_signal(child.pid, signal.SIGTERM)  # reaped: nothing to signal
    assert not pidfd.send_signal(0, signal.SIGTERM) and not pidfd.send_signal(-1, signal.SIGTERM)


def test_send_signal_can_wait_until_the_process_has_ended() -> None:
    # Not our child: a child would stay a zombie until reaped, and its pidfd polls readable only
    # once it has exited, which is what the wait is for (dnsmasq, the keeper server).
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
    try:
        assert shell.stdout is not None
        pid = int(shell.stdout.readline())
        began = time.monotonic()
        assert pidfd.send_signal(pid, signal.SIGTERM, wait=5)
        assert time.monotonic() - began < 4
        assert shell.wait(5) == 0  # its wait returned: the sleep had ended
    finally:
        shell.kill()
        shell.wait()


def test_until_answers_as_soon_as_the_condition_holds_and_gives_up_at_the_deadline() -> None:
    ready_at = time.monotonic() + 0.05
    assert polling.until(lambda: time.monotonic() >= ready_at, 5)
    assert time.monotonic() - ready_at < 0.2
    began = time.monotonic()
    assert not polling.until(lambda: False, 0.1)
    assert 0.1 <= time.monotonic() - began < 1


def test_spawn_daemon_passes_fds_to_its_child_alone(tmp_path: Path) -> None:
    """The fds a daemon is given stay close-on-exec here: made inheritable in the parent, they went
    to whatever another thread spawned meanwhile (bench/network.py, 20 starts at once: a keeper
    server kept one start's ready pipe open, and that start waited for its EOF for 6 minutes)."""
    read_end, write_end = os.pipe()
    seen = tmp_path / "seen"
    try:
        status = run.spawn_daemon(
            ["/bin/sh", "-c", f"[ -e /proc/self/fd/{write_end} ] && : > {seen}"], pass_fds=[write_end]
        )
        assert status == 0 and seen.exists()  # the daemon has it ...
        assert not os.get_inheritable(write_end)  # ... and nothing else spawned from here gets it
    finally:
        os.close(read_end)
        os.close(write_end)
