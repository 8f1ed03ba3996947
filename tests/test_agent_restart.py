"""An agent killed with SIGKILL and restarted sees the same containers, and stopped none of them."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from agent_helpers import PORT, Client, start_agent

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
