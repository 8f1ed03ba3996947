"""Cgroups, v1 and v2: one cgroup per container under the caller's own cgroup.

Hosts differ: pure v2 (most today), or v1 controllers beside an empty v2 mount
(this kind of VM). We create `<own cgroup>/prodng/<name>` in every hierarchy
that has something for us (v2 for freeze/kill when its cgroup.freeze works, v1
for memory/pids/cpu/freezer) and never touch processes we did not start.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
from pathlib import Path

from prodng import polling
from prodng.container.state import Limits
from prodng.errors import InvalidRequest, SystemFailure
from prodng.frozen import frozen
from prodng.logger import Logger

log = Logger(__name__)

V1_CONTROLLERS = ("freezer", "memory", "pids", "cpu", "cpuacct", "devices")
# The devices a container (and an install job) may open or make, as docker and runc allow them: the
# nodes prodng puts in its /dev and the pty pairs of its devpts. Anything else (a disk, /dev/kmsg,
# /dev/mem) is refused by the kernel even with a node in reach, e.g. through a `:dev` bind.
DEVICE_ALLOW = (
    "c 1:3 rwm",  # null
    "c 1:5 rwm",  # zero
    "c 1:7 rwm",  # full
    "c 1:8 rwm",  # random
    "c 1:9 rwm",  # urandom
    "c 5:0 rwm",  # tty
    "c 5:2 rwm",  # ptmx
    "c 136:* rwm",  # pts/*
)
CPU_PERIOD_US = 100_000


@frozen
class Hierarchy:
    mount: Path
    version: int
    controllers: frozenset[str]
    own_path: str  # our process's cgroup in this hierarchy


@functools.cache
def hierarchies() -> tuple[Hierarchy, ...]:
    """Read once per process: mounts and our own cgroup do not move under us."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        own[names] = path
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, mountpoint, fstype, options, *_ = line.split()
        if fstype == "cgroup2":
            offered = frozenset((Path(mountpoint) / "cgroup.controllers").read_text().split())
            found.append(Hierarchy(Path(mountpoint), 2, offered, own.get("", "/")))
        elif fstype == "cgroup":
            offered = frozenset(o for o in options.split(",") if o in V1_CONTROLLERS)
            key = next((k for k in own if k and set(k.split(",")) == set(offered)), None)
            if offered and key is not None:
                found.append(Hierarchy(Path(mountpoint), 1, offered, own[key]))
    return tuple(found)


def _v2_usable(h: Hierarchy) -> bool:
    return h.version == 2 and (h.mount / h.own_path.lstrip("/") / "cgroup.procs").exists()


@functools.cache
def _chosen() -> list[Hierarchy]:
    v2 = [h for h in hierarchies() if _v2_usable(h)]
    v1 = [h for h in hierarchies() if h.version == 1]
    return v2[:1] + v1


def _parent(h: Hierarchy) -> Path:
    return h.mount / h.own_path.lstrip("/") / "prodng"


def expected(name: str) -> tuple[str, ...]:
    """Where create() would put this container's cgroups from this process."""
    return tuple(str(_parent(h) / name) for h in _chosen())


def create(name: str, limits: Limits) -> tuple[str, ...]:
    """Create the container's cgroups and apply limits; returns their directories."""
    if not _chosen():  # never run a container that could not be frozen, limited or reliably killed
        raise SystemFailure(
            "no cgroup hierarchy is mounted in this mount namespace",
            hint="`ip netns exec` remounts /sys without /sys/fs/cgroup: use nsenter --net=/run/netns/NAME",
        )
    created: list[Path] = []
    try:
        for h in _chosen():
            parent = _parent(h)
            parent.mkdir(exist_ok=True)
            if h.version == 2:
                _enable_v2_controllers(h, parent)
            path = parent / name
            path.mkdir(exist_ok=True)
            created.append(path)
        _apply_limits(created, limits)
        _allow_devices(created)
    except OSError as err:
        remove(tuple(map(str, created)))
        raise SystemFailure(f"cannot create cgroups for {name}: {err.strerror} ({err.filename})") from None
    except BaseException:
        remove(tuple(map(str, created)))
        raise
    return tuple(map(str, created))


def _enable_v2_controllers(h: Hierarchy, parent: Path) -> None:
    """Delegate what the host offers down to prodng/; refused when the parent holds processes."""
    wanted = h.controllers & {"memory", "pids", "cpu"}
    for directory in (parent.parent, parent):
        for ctrl in wanted:
            try:
                (directory / "cgroup.subtree_control").write_text(f"+{ctrl}")
            except OSError as err:
                log.debug("cannot enable %s in %s: %s", ctrl, directory, err.strerror)


def _find(paths: tuple[str, ...] | list[Path], filename: str) -> Path | None:
    for p in paths:
        candidate = Path(p) / filename
        if candidate.exists():
            return candidate
    return None


def _allow_devices(paths: list[Path]) -> None:
    """The allow-list in every hierarchy that can hold one: v1's devices controller (deny all, then
    DEVICE_ALLOW), and on v2 a BPF device program (native/devices.c, the same list). The kernel asks
    both; a host where neither can be set refuses to run containers rather than run them without."""
    applied = []
    for path in paths:
        if (path / "devices.deny").exists():
            (path / "devices.deny").write_text("a")
            for rule in DEVICE_ALLOW:
                (path / "devices.allow").write_text(rule)
            applied.append(path)
        elif (path / "cgroup.procs").exists() and (path / "cgroup.type").exists():  # a v2 cgroup
            if error := attach_device_filter(path):
                log.warning("no BPF device program on %s: %s", path, os.strerror(error))
            else:
                applied.append(path)
    if paths and not applied:
        raise SystemFailure("cannot apply the device allow-list: no v1 devices controller and no BPF on cgroup v2")


def attach_device_filter(path: Path) -> int:
    """Attach the v2 device program to the cgroup directory path; 0 or an errno."""
    from prodng._native import lib  # type: ignore[import-not-found]

    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return -int(lib.pn_attach_device_filter(fd))
    finally:
        os.close(fd)


def _apply_limits(paths: list[Path], limits: Limits) -> None:
    wanted: list[tuple[tuple[str, ...], str, str]] = []
    if limits.memory is not None:
        wanted.append((("memory.max", "memory.limit_in_bytes"), str(limits.memory), "--memory"))
    if limits.pids is not None:
        wanted.append((("pids.max",), str(limits.pids), "--pids"))
    if limits.cpus is not None:
        quota = int(limits.cpus * CPU_PERIOD_US)
        target = _find(paths, "cpu.max")
        if target:
            wanted.append((("cpu.max",), f"{quota} {CPU_PERIOD_US}", "--cpus"))
        else:
            wanted.append((("cpu.cfs_period_us",), str(CPU_PERIOD_US), "--cpus"))
            wanted.append((("cpu.cfs_quota_us",), str(quota), "--cpus"))
    if limits.memory_high is not None:
        # v1 has no memory.high; its soft limit is the nearest thing (reclaimed first under pressure).
        wanted.append((("memory.high", "memory.soft_limit_in_bytes"), str(limits.memory_high), "memory_high"))
    for files, value, flag in wanted:
        target = next((t for f in files if (t := _find(paths, f))), None)
        if target is None:
            raise InvalidRequest(f"{flag} is not supported here: no cgroup controller offers {files[0]}")
        target.write_text(value)
    if limits.memory is not None:
        _no_swap_beyond(paths, limits.memory)


def _no_swap_beyond(paths: list[Path], memory: int) -> None:
    """Swap would let the container hold more than its memory limit: v2 gets none, v1 the same
    limit for memory plus swap (the file exists only when the kernel accounts swap)."""
    if swap := _find(paths, "memory.swap.max"):
        swap.write_text("0")
    elif memsw := _find(paths, "memory.memsw.limit_in_bytes"):
        memsw.write_text(str(memory))


def _read(paths: tuple[str, ...], filename: str) -> str | None:
    target = _find(paths, filename)
    try:
        return target.read_text() if target else None
    except OSError:
        return None


def procs(paths: tuple[str, ...]) -> list[int]:
    for p in paths:
        try:
            return [int(x) for x in (Path(p) / "cgroup.procs").read_text().split()]
        except OSError:
            continue
    return []


def is_frozen(paths: tuple[str, ...]) -> bool:
    events = _read(paths, "cgroup.events")
    if events is not None and _find(paths, "cgroup.freeze"):
        return "frozen 1" in events
    state = _read(paths, "freezer.state")
    return state is not None and state.strip() == "FROZEN"


def set_frozen(paths: tuple[str, ...], frozen: bool, timeout: float = 10.0) -> None:
    """Freeze or thaw every process of the container, and wait until the kernel says so."""
    if v2 := _find(paths, "cgroup.freeze"):
        v2.write_text("1" if frozen else "0")
    elif v1 := _find(paths, "freezer.state"):
        v1.write_text("FROZEN" if frozen else "THAWED")
    else:
        raise SystemFailure("no freezer: neither cgroup v2 cgroup.freeze nor the v1 freezer is available")
    if not polling.until(lambda: is_frozen(paths) == frozen, timeout, first=0.0002):
        raise SystemFailure(f"the kernel did not {'freeze' if frozen else 'thaw'} the container in {timeout} s")


def kill_all(paths: tuple[str, ...]) -> None:
    """SIGKILL everything in the container, race-free: cgroup.kill, or freeze-kill-thaw on v1."""
    if target := _find(paths, "cgroup.kill"):
        target.write_text("1")
        return
    frozen = _find(paths, "freezer.state") is not None
    if frozen:
        set_frozen(paths, True)
    for pid in procs(paths):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if frozen:
        set_frozen(paths, False)


def stats(paths: tuple[str, ...]) -> dict[str, int | None]:
    cpu_ns: int | None = None
    if (stat := _read(paths, "cpu.stat")) and "usage_usec" in stat:
        fields = dict(line.split() for line in stat.splitlines() if len(line.split()) == 2)
        cpu_ns = int(fields["usage_usec"]) * 1000
    elif (usage := _read(paths, "cpuacct.usage")) is not None:
        cpu_ns = int(usage)
    memory = _read(paths, "memory.current") or _read(paths, "memory.usage_in_bytes")
    pids = _read(paths, "pids.current")
    return {
        "cpu_ns": cpu_ns,
        "memory_bytes": int(memory) if memory else None,
        "pids": int(pids) if pids else len(procs(paths)),
        "oom_kills": oom_kills(paths),
    }


def oom_file(paths: tuple[str, ...]) -> str:
    """The file that counts OOM kills (for the monitor, which watches it)."""
    found = _find(paths, "memory.events") or _find(paths, "memory.oom_control")
    return str(found) if found else ""


def oom_kills(paths: tuple[str, ...]) -> int | None:
    """Processes the OOM killer took in this cgroup: v2 memory.events, v1 memory.oom_control
    (both count `oom_kill`; on v1 the line exists from Linux 4.13)."""
    for filename in ("memory.events", "memory.oom_control"):
        if text := _read(paths, filename):
            counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
            if "oom_kill" in counts:
                return int(counts["oom_kill"])
    return None


def remove(paths: tuple[str, ...], timeout: float = 5.0) -> None:
    """rmdir each cgroup; it may take the kernel a moment to let go of dead tasks."""
    for p in paths:
        try:
            if not polling.until(functools.partial(_rmdir_unless_busy, p), timeout, first=0.02, most=0.02):
                log.warning("cannot remove cgroup %s: still busy after %g s", p, timeout)
        except OSError as err:
            log.warning("cannot remove cgroup %s: %s", p, err.strerror)


def _rmdir_unless_busy(path: str) -> bool:
    """True once the cgroup is gone; False while the kernel still holds dead tasks in it."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        if err.errno != errno.EBUSY:
            raise
        return False
    return True
