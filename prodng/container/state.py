"""One record per container: atomic writes (temp, fsync, rename) under a per-container lock."""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prodng import locks
from prodng.config import Paths
from prodng.errors import InvalidRequest, NotFound
from prodng.frozen import asdict, fields, frozen
from prodng.network.modes import Forward, Mode, parse_forwards, parse_mode

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs CLI start-up time
if TYPE_CHECKING:
    from typing import Any

UNIT_FIELDS = ("name", "state", "pid", "restarts", "exit_code", "boot_failed", "since", "error")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or ".." in name:  # fullmatch: $ alone lets a trailing newline through
        raise InvalidRequest(
            f"invalid container name {name[:80]!r}",
            hint="1-64 letters, digits, '_', '.', '-'; no '/', '..' or NUL",
        )
    return name


def starttime(pid: int) -> int:
    """Field 22 of /proc/PID/stat: with the pid, it names one process for its whole life.
    0 for a zombie: it has ended, whenever its parent gets round to reaping it."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    fields = text.rsplit(")", 1)[1].split()
    return 0 if fields[0] == "Z" else int(fields[19])


def same_process(pid: int, start: int) -> bool:
    return pid > 0 and start > 0 and starttime(pid) == start


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@frozen
class Limits:
    """The limits in force, host defaults filled in at create (validation.with_defaults)."""

    memory: int | None = None  # bytes
    pids: int | None = None
    cpus: float | None = None
    memory_high: int | None = None  # bytes, cgroup v2: throttled and reclaimed above it
    tmpfs_size: int | None = None  # bytes, size= of /run, /tmp, /dev/shm and /dev inside
    disk: int | None = None  # bytes, the btrfs qgroup limit of the container's root


@frozen
class Bind:
    source: str
    target: str
    read_only: bool = True
    dev: bool = False  # device nodes in the bound tree work (nodev otherwise)
    suid: bool = False  # setuid bits in the bound tree count (nosuid otherwise)
    owner: str = ""  # a user of the container: the source's owner's files are its (an idmapped mount)

    def options(self, owner_ids: tuple[int, int] | None = None) -> str:
        """The monitor's word for the bind's flags: "ro", "rw,dev", "rw,owner=101:103" (owner_ids: the
        owner's uid and gid in the root, found at each start)."""
        words = ["ro" if self.read_only else "rw"] + ["dev"] * self.dev + ["suid"] * self.suid
        return ",".join(words + ([f"owner={owner_ids[0]}:{owner_ids[1]}"] if owner_ids else []))

    def spec(self) -> str:
        """As --bind takes it."""
        return f"{self.source}:{self.target}:{self.options()}" + (f",owner={self.owner}" if self.owner else "")


class Restart(enum.StrEnum):
    """What the monitor does when the service ends (with ContainerRecord.restart_max for on-failure)."""

    NO = "no"
    ALWAYS = "always"
    ON_FAILURE = "on-failure"


@frozen
class ContainerRecord:
    """What was asked for; what is happening now is read from the kernel and the monitor.

    Parsed values (the network mode, forwards, restart policy) are kept parsed; the JSON
    holds their text forms, as it always has, so records of older versions load."""

    name: str
    template: str
    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    binds: tuple[Bind, ...] = ()
    limits: Limits = Limits()
    restart: Restart = Restart.NO
    restart_max: int = 0
    network: Mode = Mode("none")
    workdir: str = "/"
    payloads: tuple[str, ...] = ()
    created: float = 0.0
    boot_id: str = ""
    cgroups: tuple[str, ...] = ()
    started: bool = False
    uid: int = 0
    gid: int = 0
    forking: bool = False  # Type=forking: the service daemonizes
    run_dirs: tuple[str, ...] = ()  # RuntimeDirectory=, made in /run for uid:gid before the service starts
    explicit_exec: bool = False  # --exec given: an upgrade keeps it instead of reading the new unit
    forwards: tuple[Forward, ...] = ()  # -p HOSTPORT:CONTAINERPORT/PROTO, for dhcp and static networks
    nat: bool = False  # --nat: reaches beyond the bridge, masqueraded as the host (dhcp and static)
    unit_env: tuple[str, ...] = ()  # Environment= of the payload's unit; `env` (the user's -e) overrides it
    pending_start: str = ""  # "PID STARTTIME" of a `run` between create and start (a dead one is swept)
    units: tuple[str, ...] = ()  # --unit: the units to start; none: what systemd would start at boot
    recommends: bool = True  # payloads installed with their Recommends (not with --no-recommends)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(restart=str(self.restart), network=str(self.network), forwards=[str(f) for f in self.forwards])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["binds"] = tuple(Bind(**b) for b in data.get("binds", ()))
        data["limits"] = Limits(**data.get("limits", {}))
        for key in ("argv", "env", "payloads", "cgroups", "run_dirs", "unit_env", "units"):
            data[key] = tuple(data.get(key, ()))
        data["restart"] = Restart(data.get("restart", "no"))
        data["network"] = parse_mode(data.get("network", "none"))
        data["forwards"] = parse_forwards(data.get("forwards", ()))
        return cls(**data)


def write_atomic(path: Path, text: str | bytes, mode: int = 0o600, durable: bool = True) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode() if isinstance(text, str) else text)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def record_path(paths: Paths, name: str) -> Path:
    return paths.container_state(name) / "record.json"


def save(paths: Paths, record: ContainerRecord) -> None:
    write_atomic(record_path(paths, record.name), json.dumps(record.to_json(), indent=1))


def load(paths: Paths, name: str) -> ContainerRecord:
    check_name(name)
    try:
        return ContainerRecord.from_json(json.loads(record_path(paths, name).read_text()))
    except FileNotFoundError:
        raise NotFound(f"no such container: {name}") from None


def swap_journal(paths: Paths, name: str) -> Path:
    """An upgrade's or rollback's journal (container.upgrade): there while one is unfinished."""
    return paths.container_state(name) / "swap.json"


def exists(paths: Paths, name: str) -> bool:
    return record_path(paths, name).is_file()


def names(paths: Paths) -> list[str]:
    if not paths.state.is_dir():
        return []
    return sorted(p.parent.name for p in paths.state.glob("*/record.json"))


@contextmanager
def locked(paths: Paths, name: str, *, wait: bool = True) -> Iterator[None]:
    """Serialize verbs on one container; the lock dies with its holder. Whoever takes it
    first repairs what a killed holder left half-done (container.recovery)."""
    lock = paths.locks / f"container-{check_name(name)}.lock"  # a name becomes a path only once checked
    with locks.hold(lock, wait=wait, what=f"container {name}"):
        from prodng.container import recovery  # it needs lifecycle, which needs this module

        recovery.recover_locked(paths, name)
        yield


def read_status(paths: Paths, name: str) -> dict[str, str]:
    return read_status_file(paths.container_state(name) / "status")


def read_status_file(path: Path) -> dict[str, str]:
    """A monitor's status file: key=value lines, replaced atomically by prodng-shim; {} before the first."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def read_units(paths: Paths, name: str) -> tuple[str, list[dict[str, object]]]:
    """('starting'|'done'|'', the units as the manager last reported them)."""
    try:
        text = (paths.container_state(name) / "status.units").read_text()
    except FileNotFoundError:
        return "", []
    boot, units = "", []
    for line in text.splitlines():
        if line.startswith("boot="):
            boot = line[5:]
        elif line.startswith("unit\t"):
            values = line.split("\t")[1:]
            if len(values) == len(UNIT_FIELDS):  # an init from before the output's tail was reported
                values.append("")
            if len(values) == len(UNIT_FIELDS) + 1:
                row: dict[str, object] = dict(zip(UNIT_FIELDS, values, strict=False))
                row["log"] = [text for text in values[-1].split("\x1f") if text]  # its last lines of output
                for key in ("pid", "restarts", "exit_code", "boot_failed"):
                    row[key] = int(str(row[key]))
                row["since"] = float(str(row["since"]))
                units.append(row)
    return boot, units
