"""cgroup v2's limit files, as prodng writes and reads them: memory.max, memory.high, memory.swap.max, pids.max,
cpu.max, and the OOM count in memory.events.

This CI VM has v1 controllers and a v2 hierarchy that offers none of memory, pids or cpu (cat
/sys/fs/cgroup/unified/cgroup.controllers: hugetlb), so no cgroup on it can have these files, and the v2
limit path cannot run against the kernel here. What the real v2 hierarchy does here (freeze, kill, the BPF
device program, cpu.stat) is tested where it runs (test_runtime, test_hostfiles); the v1 fallbacks of
memory.high and the OOM count are tested for real in test_limits. This file runs the v2 code on a
directory laid out as a v2 cgroup with those controllers, with the kernel's own file formats."""

from __future__ import annotations

from pathlib import Path

from prodng.container import cgroups
from prodng.container.state import Limits

MiB = 1024**2
# A v2 cgroup's files with memory, pids and cpu enabled (a subset), as read on a pure-v2 Debian 12 host.
V2_FILES = {
    "cgroup.procs": "",
    "cgroup.type": "domain\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cgroup.events": "populated 1\nfrozen 0\n",
    "memory.max": "max\n",
    "memory.high": "max\n",
    "memory.swap.max": "max\n",
    "memory.current": "52428800\n",
    "memory.events": "low 0\nhigh 12\nmax 40\noom 3\noom_kill 2\noom_group_kill 0\n",
    "pids.max": "max\n",
    "pids.current": "7\n",
    "cpu.max": "max 100000\n",
    "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n",
}


def _v2_cgroup(tmp_path: Path) -> Path:
    group = tmp_path / "prodng" / "box"
    group.mkdir(parents=True)
    for name, text in V2_FILES.items():
        (group / name).write_text(text)
    return group


def test_limits_are_written_to_the_v2_files(tmp_path: Path) -> None:
    group = _v2_cgroup(tmp_path)
    cgroups._apply_limits([group], Limits(memory=64 * MiB, pids=40, cpus=1.5, memory_high=48 * MiB))
    written = {name: (group / name).read_text() for name in ("memory.max", "memory.high", "pids.max", "cpu.max")}
    assert written == {
        "memory.max": str(64 * MiB),
        "memory.high": str(48 * MiB),
        "pids.max": "40",
        "cpu.max": "150000 100000",
    }
    assert (group / "memory.swap.max").read_text() == "0", "no swap beyond the memory limit"


def test_v2_is_preferred_over_the_v1_soft_limit(tmp_path: Path) -> None:
    """Both mounted (this VM's kind of host, on a kernel whose v2 has memory): memory.high, not the v1 soft limit."""
    group = _v2_cgroup(tmp_path)
    v1 = tmp_path / "memory" / "box"
    v1.mkdir(parents=True)
    (v1 / "memory.soft_limit_in_bytes").write_text("9223372036854771712\n")
    cgroups._apply_limits([group, v1], Limits(memory_high=48 * MiB))
    assert (group / "memory.high").read_text() == str(48 * MiB)
    assert (v1 / "memory.soft_limit_in_bytes").read_text() == "9223372036854771712\n"


def test_oom_kills_and_stats_are_read_from_the_v2_files(tmp_path: Path) -> None:
    group = _v2_cgroup(tmp_path)
    paths = (str(group),)
    assert cgroups.oom_file(paths) == str(group / "memory.events"), "the monitor watches memory.events"
    assert cgroups.oom_kills(paths) == 2, "oom_kill, not oom (an OOM that killed nothing) nor oom_group_kill"
    assert cgroups.stats(paths) == {"cpu_ns": 1_500_000, "memory_bytes": 50 * MiB, "pids": 7, "oom_kills": 2}


def test_a_missing_controller_is_said_not_ignored(tmp_path: Path) -> None:
    """A v2 cgroup whose parent could not delegate memory (its parent holds processes: the no-internal-process
    rule) has no memory.max: the run is refused with the flag's name, never started unlimited."""
    import pytest

    from prodng.errors import InvalidRequest

    group = _v2_cgroup(tmp_path)
    for name in ("memory.max", "memory.high", "memory.swap.max", "memory.current", "memory.events"):
        (group / name).unlink()
    with pytest.raises(InvalidRequest, match="--memory is not supported here"):
        cgroups._apply_limits([group], Limits(memory=64 * MiB))
