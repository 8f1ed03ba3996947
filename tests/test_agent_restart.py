"""An agent killed with SIGKILL and restarted sees the same containers, and stopped none of them; an agent
told to stop does, whatever a container runs for its calls."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from agent_helpers import PORT, Client, start_agent

from prodng.agent import remote
from prodng.config import Paths

from conftest import Prodng


@pytest.mark.root
def test_agent_restart_changes_no_container(prodng: Prodng, probe_template: str, container: str) -> None:
    names = [f"{container}-{s}" for s in ("run", "frozen", "stopped")]
    for name in names:
        prodng("run", probe_template, "--name", name, "--exec", "probe sleep 100000")
    prodng("freeze", names[1])
    prodng("stop", names[2], "-t", "0")
    before = {n: (prodng.info(n)["state"], prodng.info(n)["pid"]) for n in names}
    proc = start_agent(prodng)
    second = subprocess.run(
        [sys.executable, "-m", "prodng", "agent", "--port", str(PORT + 1000)],
        env=prodng.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 4 and "another agent" in second.stderr
    proc.kill()
    proc.wait()
    after_kill = {n: (prodng.info(n)["state"], prodng.info(n)["pid"]) for n in names}
    assert (
        after_kill
        == before
        == {
            names[0]: ("running", before[names[0]][1]),
            names[1]: ("frozen", before[names[1]][1]),
            names[2]: ("exited", None),
        }
    )
    proc = start_agent(prodng)
    try:
        status, rows = Client(Paths(prodng.root), unix=prodng.root / "agent.sock").request("GET", "/prodng/ls")
        assert {r["name"]: r["state"] for r in rows if r["name"] in names} == {  # type: ignore[union-attr, index]
            n: s for n, (s, _) in before.items()
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        for name in names:
            prodng("rm", "-f", name)


@pytest.mark.root
def test_a_stopping_agent_ends_the_execs_in_flight(prodng: Prodng, probe_template: str, container: str) -> None:
    """A REST exec's command that never ends (sleep, or a binary the container replaced) held a thread of the
    agent, and a TERMed agent waited on that thread for ever."""
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    proc = start_agent(prodng)
    unix = Client(Paths(prodng.root), unix=prodng.root / "agent.sock")
    answers: list[object] = []

    def call() -> None:
        try:
            answers.append(
                unix.request("POST", "/prodng/exec", {"name": container, "command": ["probe", "sleep", "1e6"]})
            )
        except OSError as err:  # the agent may close the connection before it answers
            answers.append(err)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    prodng.wait_for(lambda: _running(b"probe\0sleep\x001e6\0"), what="the exec's command")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0, "the agent ends its execs and exits"
    finally:
        proc.kill()
        proc.wait()
    assert time.monotonic() - started < 20
    caller.join(10)
    assert answers and not caller.is_alive()


def _running(cmdline: bytes) -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline:
                return True
    return False


@pytest.mark.root
def test_a_rest_exec_ends_when_its_client_goes(prodng: Prodng, probe_template: str, container: str) -> None:
    """A client that gave up left its exec running, and an agent thread held, until the deadline (600 s)."""
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    proc = start_agent(prodng)
    try:
        conn = remote.UnixConnection(str(prodng.root / "agent.sock"), timeout=60)
        body = json.dumps({"name": container, "command": ["probe", "sleep", "2e6"]})
        conn.request("POST", "/prodng/exec", body=body, headers={"Content-Type": "application/json"})
        prodng.wait_for(lambda: _running(b"probe\0sleep\x002e6\0"), what="the exec's command")
        conn.close()
        prodng.wait_for(lambda: not _running(b"probe\0sleep\x002e6\0"), 10, "the command to end with its call")
    finally:
        proc.terminate()
        proc.wait(30)
