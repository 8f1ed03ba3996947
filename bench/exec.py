"""exec latency: prodng's exec helper (library call, CLI, REST over the unix socket) beside nsenter's on the same
running container, in one run.

Each figure is the whole round trip of `/bin/true` inside the container: joining its cgroup and every namespace,
taking the service's restrictions, running the command and collecting its exit status (and, for prodng, its
output through pipes). nsenter joins the namespaces only (no cgroup, capabilities, seccomp or fd hygiene): the
floor a safe exec pays on top of.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import ROOT, bench_context, fresh_container, ms

from prodng.agent import remote
from prodng.container import enter, lifecycle, observe, state

RUNS = int(os.environ.get("BENCH_RUNS", "30"))
PORT = 14339
NAME = "bench-exec"


def timed(run: Callable[[], object]) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def checked(cmd: list[str], env: dict[str, str] | None = None) -> Callable[[], object]:
    return lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)


def rest_exec(sock: Path) -> object:
    conn = remote.UnixConnection(str(sock), timeout=30)
    conn.request("POST", "/prodng/exec", body=json.dumps({"name": NAME, "command": ["/bin/true"]}))
    answer = json.loads(conn.getresponse().read())
    conn.close()
    assert answer["exit_code"] == 0, answer
    return answer


def main() -> None:
    ctx = bench_context()
    fresh_container(ctx, NAME, "sleep 1000000")
    lifecycle.start(ctx.paths, NAME)
    pid = observe.observe(ctx.paths, state.load(ctx.paths, NAME)).pid
    env = {**os.environ, "PRODNG_ROOT": str(ROOT)}
    # cwd: the repository, so this directory (bench/) cannot shadow the package.
    repo = Path(__file__).resolve().parent.parent
    agent = subprocess.Popen(
        [sys.executable, "-m", "prodng", "--root", str(ROOT), "agent", "--port", str(PORT)],
        cwd=repo,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not (ROOT / "agent.sock").exists():
            if agent.poll() is not None:
                raise SystemExit(f"the agent exited with {agent.returncode}")
            time.sleep(0.05)
        rows = [
            ("nsenter --all /bin/true", checked(["nsenter", "-t", str(pid), "-a", "/bin/true"])),
            ("prodng exec (library call)", lambda: enter.exec_captured(ctx.paths, NAME, ["/bin/true"], 1024)),
            ("prodng exec (REST, unix socket)", lambda: rest_exec(ROOT / "agent.sock")),
            ("prodng exec (CLI)", checked([sys.executable, "-m", "prodng", "exec", NAME, "--", "/bin/true"], env)),
        ]
        print(f"exec of /bin/true in a running container, {RUNS} runs each:")
        for label, run in rows:
            print(f"  {label:34} {ms(timed(run))}", flush=True)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait()
        lifecycle.remove(ctx.paths, NAME, force=True)


if __name__ == "__main__":
    main()
