"""CLI start-up: `prodng ls`, `info` and `freeze` against the bare interpreter, side by side.

Each round runs `python -I -c pass` and then each prodng command once, so load on a shared
machine hits all of them alike; a command's cost is the CPU time (user + system) of its
process, which waiting on other processes does not inflate. Target (issue 11): each
median under 2x the interpreter's.

    sudo .venv/bin/python bench/cli.py [ROUNDS]

Needs root: it imports a template holding only the tests' static probe (tests/probe) and
keeps one container running in PRODNG_BENCH_ROOT (default /var/tmp/prodng-bench-cli).

One run each on the shared 2-core VM (30 rounds; CPU ms, median), before and after the CLI
stopped importing argparse, dataclasses, logging and the service planner for these verbs:

                          before (36cfced)    after (aa1bcc9)
    python -I -c pass       18.2               22.5
    prodng ls               64.4  3.53x        32.8  1.46x
    prodng info             64.6  3.54x        35.0  1.55x
    prodng freeze           70.3  3.85x        34.1  1.51x
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from probe_helpers import build_probe, make_probe_root  # noqa: E402

from prodng import verbs  # noqa: E402
from prodng.config import Paths  # noqa: E402

ROOT = Path(os.environ.get("PRODNG_BENCH_ROOT", "/var/tmp/prodng-bench-cli"))
NAME = "clibench"
TARGET = 2.0


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    """User + system CPU time of one run of argv (which must succeed)."""
    process = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {process.returncode}")
    return usage.ru_utime + usage.ru_stime


def prepare() -> None:
    """The probe template and a running container NAME, made once and kept for later runs."""
    ctx = verbs.Context(Paths(ROOT))
    if not verbs.call(verbs.BY_NAME["template ls"], ctx, {}):
        with tempfile.TemporaryDirectory() as source:
            make_probe_root(Path(source), build_probe())
            verbs.call(verbs.BY_NAME["template import"], ctx, {"name": "probe", "source": source, "force": False})
    if not any(c["name"] == NAME for c in verbs.call(verbs.BY_NAME["ls"], ctx, {})):  # type: ignore[attr-defined]
        arguments = {p.name: p.default for p in verbs.BY_NAME["create"].params}
        arguments.update(args=["probe"], name=NAME, exec="probe sleep 100000000", env=[], bind=[], publish=[])
        verbs.call(verbs.BY_NAME["create"], ctx, arguments)
    if verbs.call(verbs.BY_NAME["info"], ctx, {"name": NAME})["state"] != "running":  # type: ignore[index]
        verbs.call(verbs.BY_NAME["start"], ctx, {"name": NAME})


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    prepare()
    python = sys.executable
    prodng = [python, "-m", "prodng"]  # what the console script runs, minus its one-line wrapper
    commands = {
        "python -I -c pass": [python, "-I", "-c", "pass"],
        "prodng ls": [*prodng, "ls"],
        "prodng info": [*prodng, "info", NAME],
        "prodng freeze": [*prodng, "freeze", NAME],
    }
    # As installed: byte-compiled once, then loaded from __pycache__ (a shell with
    # PYTHONDONTWRITEBYTECODE=1 would compile every module at every start: 2.2x instead of 1.5x).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PRODNG_ROOT": str(ROOT)}
    cpu_seconds([*prodng, "ls"], env)
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(rounds):
        for label, argv in commands.items():
            samples[label].append(cpu_seconds(argv, env))
        cpu_seconds([*prodng, "thaw", NAME], env)  # the next freeze freezes again
    base = statistics.median(samples["python -I -c pass"])
    failed = False
    print(f"CPU time (user + system), median of {rounds} rounds run side by side")
    for label, seconds in samples.items():
        median = statistics.median(seconds)
        ratio = median / base
        verdict = "" if label.startswith("python") else ("ok" if ratio < TARGET else f"OVER {TARGET}x")
        failed |= verdict.startswith("OVER")
        print(f"  {label:20} {median * 1000:7.1f} ms  {ratio:4.2f}x  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
