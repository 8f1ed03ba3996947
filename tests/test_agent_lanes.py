"""The agent runs each class of verbs on its own bounded pool: slow verbs never starve reads (issue 17, 7)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from agent_helpers import Client, start_agent

from prodng.agent.app import Lane, lane_of
from prodng.config import Paths
from prodng.errors import SystemFailure
from prodng.verbs import BY_NAME

from conftest import Prodng


def test_verbs_have_their_lanes() -> None:
    assert {lane_of(BY_NAME[v]) for v in ("exec", "run", "upgrade", "query", "template build")} == {"slow"}
    assert {lane_of(BY_NAME[v]) for v in ("ls", "info", "template ls")} == {"read"}
    assert {lane_of(BY_NAME[v]) for v in ("stop", "freeze", "rm")} == {"change"}


def test_a_full_lane_refuses_at_once() -> None:
    async def scenario() -> list[object]:
        lane = Lane("slow", workers=1, queue=1)
        calls = [lane.run(time.sleep, 0.3) for _ in range(3)]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    started = time.monotonic()
    outcomes = asyncio.run(scenario())
    assert [type(o) for o in outcomes].count(SystemFailure) == 1
    assert time.monotonic() - started < 2


@pytest.fixture
def unix(prodng: Prodng) -> Iterator[Client]:
    proc = start_agent(prodng)
    yield Client(Paths(prodng.root), unix=prodng.root / "agent.sock")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


@pytest.mark.root
def test_reads_answer_while_six_slow_execs_run(
    prodng: Prodng, probe_template: str, container: str, unix: Client
) -> None:
    """The fault of the report: six `exec sleep` made GET info take 19 s on the default 6-thread pool."""
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    answers: list[int] = []

    def slow() -> None:
        status, _ = unix.request("POST", "/prodng/exec", {"name": container, "command": ["probe", "sleep", "6"]})
        answers.append(status)

    threads = [threading.Thread(target=slow) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # all six are inside the container now
    latencies = []
    for _ in range(20):
        started = time.monotonic()
        status, info = unix.request("GET", f"/prodng/info?name={container}")
        latencies.append(time.monotonic() - started)
        assert status == 200 and isinstance(info, dict) and info["state"] == "running"
        status, _ = unix.request("GET", "/prodng/ls")
        assert status == 200
    assert all(thread.is_alive() for thread in threads), "the execs ended before the reads were measured"
    assert max(latencies) < 1.0, latencies
    for thread in threads:
        thread.join(timeout=30)
    assert answers == [200] * 6
