"""Container lifecycle: create, start, stop, kill, freeze, thaw, rm, observe, logs, exec.

The truth about a container comes from the kernel (pid + start time, cgroup
freezer state) and from its monitor's status file, never from a cached field:
the record holds only what was asked for.
"""

from __future__ import annotations

import enum
import json
import os
import posixpath
import re
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from . import btrfs, cgroups, events, network, run, state, templates
from .config import Paths
from .errors import Conflict, InvalidRequest, NotFound, SystemFailure, from_native
from .state import Bind, ContainerRecord, Limits

SHIM = Path(__file__).resolve().parent / "libexec" / "prodng-shim"
LOG_MAX = 4 * 1024**2
# Docker's default set without MKNOD and NET_RAW: enough for daemons that bind
# low ports and drop to a user, nothing that reaches the kernel or the host.
DEFAULT_CAPS = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7,
    "SETPCAP": 8, "NET_BIND_SERVICE": 10, "SYS_CHROOT": 18, "AUDIT_WRITE": 29, "SETFCAP": 31,
}
CAP_MKNOD = 27
RESERVED_TARGETS = ("/proc", "/sys", "/dev")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    FROZEN = "frozen"
    RESTARTING = "restarting"
    EXITED = "exited"


ACTIVE = (ContainerState.RUNNING, ContainerState.FROZEN, ContainerState.RESTARTING)


@dataclass(frozen=True)
class Observation:
    state: ContainerState
    pid: int | None = None
    monitor_pid: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str = ""


# ---- parsing user input: every check happens before anything is created ----

def parse_binds(specs: list[str]) -> tuple[Bind, ...]:
    binds = []
    for spec in specs:
        parts = spec.split(":")
        mode = parts.pop() if len(parts) == 3 else "ro"
        if len(parts) != 2 or mode not in ("ro", "rw"):
            raise InvalidRequest(f"malformed --bind {spec!r}", hint="HOST:CONTAINER[:ro|rw]")
        source, target = parts
        if not os.path.isabs(source) or not os.path.exists(source):
            raise InvalidRequest(f"bind source {source!r} must be an existing absolute path")
        clean = posixpath.normpath(target)
        if not target.startswith("/") or ".." in target.split("/") or clean == "/" or "\x1f" in spec:
            raise InvalidRequest(f"bind target {target!r} must be an absolute path inside the container")
        if any(clean == r or clean.startswith(r + "/") for r in RESERVED_TARGETS):
            raise InvalidRequest(f"bind target {target!r} is managed by prodng")
        binds.append(Bind(source, clean, mode == "ro"))
    return tuple(binds)


def parse_env(specs: list[str]) -> tuple[str, ...]:
    for spec in specs:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", spec) or "\0" in spec:
            raise InvalidRequest(f"malformed -e {spec!r}", hint="KEY=VALUE")
    return tuple(specs)


def parse_restart(policy: str) -> tuple[str, int]:
    name, _, count = policy.partition(":")
    if name not in ("no", "always", "on-failure") or (count and (name != "on-failure" or not count.isdigit())):
        raise InvalidRequest(f"unknown restart policy {policy!r}", hint="no, always, on-failure[:N]")
    return name, int(count or 0)


def check_limits(limits: Limits) -> Limits:
    for label, value in (("--memory", limits.memory), ("--pids", limits.pids), ("--cpus", limits.cpus)):
        if value is not None and value <= 0:
            raise InvalidRequest(f"{label} must be positive, not {value}")
    if limits.memory is not None and limits.memory < 4 * 1024**2:
        raise InvalidRequest("--memory must be at least 4M")
    return limits


def check_network(name: str, mode: str, forwards: list[str]) -> tuple[str, tuple[str, ...]]:
    """The network mode and port forwards, checked; returned as the record keeps them."""
    parsed = network.parse_mode(mode)
    published = network.parse_forwards(forwards)
    if published and not parsed.wired:
        raise InvalidRequest(f"-p needs a dhcp or static network, not {mode!r}")
    network.check_name(name, parsed)
    if parsed.address:
        network.check_static(parsed, network.bridge())
    return mode, tuple(str(f) for f in published)


def generate_name(paths: Paths, template: str) -> str:
    while True:
        name = f"{template}-{secrets.token_hex(3)}"
        if not state.exists(paths, name):
            return name


# ---- the kernel's view ----

def observe(paths: Paths, record: ContainerRecord) -> Observation:
    status = state.read_status(paths, record.name)
    if not record.started:
        return Observation(ContainerState.CREATED, error=status.get("error", ""))
    if record.boot_id != state.boot_id():
        return Observation(ContainerState.EXITED, error="host rebooted")
    init_pid, init_start = int(status.get("init_pid", 0)), int(status.get("init_start", 0))
    monitor_pid, monitor_start = int(status.get("monitor_pid", 0)), int(status.get("monitor_start", 0))
    monitor_alive = state.same_process(monitor_pid, monitor_start)
    seen = Observation(
        ContainerState.EXITED,
        monitor_pid=monitor_pid if monitor_alive else None,
        restarts=int(status.get("restarts", 0)),
        started_at=float(status.get("started_at", 0)) or None,
        error=status.get("error", ""),
    )
    if state.same_process(init_pid, init_start):
        frozen = cgroups.is_frozen(record.cgroups)
        return replace(seen, state=ContainerState.FROZEN if frozen else ContainerState.RUNNING, pid=init_pid)
    if monitor_alive and status.get("state") in ("restarting", "running", "starting"):
        return replace(seen, state=ContainerState.RESTARTING)
    finished = float(status.get("finished_at", 0)) or None
    code = int(status["exit_code"]) if "exit_code" in status else None
    return replace(seen, exit_code=code, finished_at=finished)


# ---- lifecycle ----

def create(paths: Paths, record: ContainerRecord, source: Path | None = None) -> ContainerRecord:
    """Snapshot the template (or an installed root made from it) and write the record; all or nothing."""
    state.check_name(record.name)
    template_root = source or templates.require(paths, record.template)
    with state.locked(paths, record.name):
        if state.exists(paths, record.name):
            raise Conflict(f"container {record.name} already exists")
        directory = paths.container_state(record.name)
        root = paths.container_root(record.name)
        try:
            # The record comes first: a CLI killed after it leaves a container `rm` can find.
            directory.mkdir(parents=True, mode=0o700)
            record = replace(record, created=time.time(), boot_id=state.boot_id())
            state.save(paths, record)
            btrfs.snapshot(template_root, root)
        except BaseException:
            _discard(paths, record.name)
            raise
    events.emit(paths, "created", record.name)
    return record


def _discard(paths: Paths, name: str) -> None:
    btrfs.delete_subvolume(paths.container_root(name))
    for leftover in (".previous", ".older", ".incoming", ".next"):
        btrfs.delete_subvolume(paths.containers / f".{name}{leftover}")
    shutil.rmtree(paths.container_state(name), ignore_errors=True)


def _config_bytes(paths: Paths, record: ContainerRecord, rootfs: Path | None = None,
                  directory: Path | None = None, caps: tuple[int, ...] = tuple(DEFAULT_CAPS.values())) -> bytes:
    directory = directory or paths.container_state(record.name)
    env = {"PATH": DEFAULT_PATH, "HOME": "/root", "container": "prodng", "HOSTNAME": record.name}
    env.update(e.split("=", 1) for e in record.unit_env + record.env)  # type: ignore[misc]
    pairs: list[tuple[str, str]] = [
        ("name", record.name), ("rootfs", str(rootfs or paths.container_root(record.name))),
        ("uid", str(record.uid)), ("gid", str(record.gid)), ("forking", str(int(record.forking))),
        ("workdir", record.workdir), ("log", str(directory / "log")), ("log_max", str(LOG_MAX)),
        ("status", str(directory / "status")), ("restart", record.restart),
        ("restart_max", str(record.restart_max)), ("net", record.network),
    ]
    if directory == paths.container_state(record.name):  # one-shot jobs (installs) are not containers
        pairs.append(("events", events.journal(paths)))
    pairs += [("arg", a) for a in record.argv]
    pairs += [("env", f"{k}={v}") for k, v in env.items()]
    pairs += [("cgroup", c) for c in record.cgroups]
    pairs += [("bind", f"{'ro' if b.read_only else 'rw'}\x1f{b.source}\x1f{b.target}") for b in record.binds]
    pairs += [("cap", str(c)) for c in caps]
    pairs += [("rundir", d) for d in record.run_dirs]
    if network.parse_mode(record.network).wired and directory == paths.container_state(record.name):
        pairs += [("bind", f"ro\x1f{network.resolv_conf_path(paths, record.name)}\x1f/etc/resolv.conf")]
        pairs += [("keeper", a) for a in network.keeper_argv(paths, record.name)]
        pairs += [("keeper_server", str(network.keeper_server(paths)))]
    for key, value in pairs:
        if "\0" in value:
            raise InvalidRequest(f"{key} must not contain NUL")
    return b"".join(f"{k}\0{v}\0".encode() for k, v in pairs)


def start(paths: Paths, name: str) -> Observation:
    with state.locked(paths, name):
        return _start_locked(paths, name)


def _start_locked(paths: Paths, name: str) -> Observation:
    record = state.load(paths, name)
    if observe(paths, record).state in ACTIVE:
        raise Conflict(f"container {name} is already running")
    _release(paths, record)
    mode = network.parse_mode(record.network)
    if mode.wired:  # the address and host ports are checked and taken before anything starts
        network.claim(paths, name, mode, network.parse_forwards(record.forwards), network.bridge())
        network.write_resolv_conf(paths, name, network.bridge())
    directory = paths.container_state(name)
    (directory / "status").unlink(missing_ok=True)
    created = cgroups.create(paths.cgroup_leaf(name), record.limits)
    record = replace(record, cgroups=created, boot_id=state.boot_id(), started=True)
    # Saved before anything runs: a start killed now reads as exited, its cgroups on record.
    state.save(paths, record)
    config = directory / "config"
    state.write_atomic(config, _config_bytes(paths, record), durable=False)  # rewritten every start
    try:
        _spawn_monitor(config)
    except BaseException:
        cgroups.kill_all(record.cgroups)
        _release(paths, record)  # also undoes what a keeper made and could not undo
        if mode.wired:
            network.release_claims(paths, name)  # taken above, before any keeper
        state.save(paths, replace(record, cgroups=(), started=False))
        raise
    events.emit(paths, "started", name)
    return observe(paths, record)


def _spawn_monitor(config: Path) -> None:
    if not SHIM.exists():
        raise SystemFailure(f"{SHIM} is missing", hint="rebuild: python native/build_native.py")
    read_end, write_end = os.pipe()
    # The config goes by fd: the monitor and the container's init then show no host path
    # in their command line (PID 1's is readable inside the container).
    config_fd = os.open(config, os.O_RDONLY | os.O_CLOEXEC)
    try:
        status = run.spawn_daemon([SHIM, f"/proc/self/fd/{config_fd}", str(write_end)],
                                  pass_fds=[write_end, config_fd], argv0="prodng-shim")
        os.close(write_end)
        write_end = -1
        answer = b""
        while chunk := os.read(read_end, 4096):
            answer += chunk
    finally:
        os.close(read_end)
        os.close(config_fd)
        if write_end >= 0:
            os.close(write_end)
    text = answer.decode(errors="replace").strip()
    if status != 0 or not text.startswith("ok "):
        raise from_native(text.removeprefix("error ") or f"system prodng-shim exited with {status}",
                          "cannot start")


def _release(paths: Paths, record: ContainerRecord) -> None:
    """Remove the recorded cgroups and any a killed `start` made before recording them, and
    whatever network the container's keeper could not undo itself (it was killed)."""
    cgroups.remove(tuple(dict.fromkeys(record.cgroups + cgroups.expected(paths.cgroup_leaf(record.name)))))
    wired = network.read(paths, record.name)
    if wired and not network.keeper_alive(paths, record.name):
        network.teardown(paths, record.name, network.parse_forwards(record.forwards))


def _running(paths: Paths, name: str) -> tuple[ContainerRecord, Observation]:
    record = state.load(paths, name)
    observed = observe(paths, record)
    if observed.state not in (ContainerState.RUNNING, ContainerState.FROZEN):
        raise Conflict(f"container {name} is not running (it is {observed.state})")
    return record, observed


def _signal(pid: int, sig: int) -> None:
    """Signal through a pidfd, so a pid reused after our check is never hit."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def _wait_gone(pid: int, start: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.001
    while state.same_process(pid, start):
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def stop(paths: Paths, name: str, timeout: float = 10.0) -> Observation:
    """TERM the service (through the monitor, so it does not restart it), then KILL."""
    if timeout < 0:
        raise InvalidRequest("stop timeout must not be negative")
    with state.locked(paths, name):
        record = state.load(paths, name)
        _halt(paths, record, signal.SIGTERM, timeout)
        return observe(paths, record)


def _halt(paths: Paths, record: ContainerRecord, sig: int, timeout: float) -> None:
    observed = observe(paths, record)
    if observed.state not in ACTIVE:
        return
    status = state.read_status(paths, record.name)
    if observed.state == ContainerState.FROZEN:
        cgroups.set_frozen(record.cgroups, False)
    if observed.monitor_pid:
        _signal(observed.monitor_pid, signal.SIGTERM)  # no restart; it forwards TERM to the init
    if observed.pid and sig != signal.SIGTERM:
        _signal(observed.pid, sig)
    init_pid, init_start = int(status.get("init_pid", 0)), int(status.get("init_start", 0))
    if not (init_pid and _wait_gone(init_pid, init_start, timeout)):
        cgroups.kill_all(record.cgroups)
        _wait_gone(init_pid, init_start, 5.0)
    if observed.monitor_pid:
        _wait_gone(observed.monitor_pid, int(status.get("monitor_start", 0)), 5.0)
    wired = network.read(paths, record.name)
    if wired:  # the monitor's end closed the keeper's lifeline: it is undoing the network
        _wait_gone(int(str(wired.get("keeper_pid", 0))), int(str(wired.get("keeper_start", 0))), 5.0)


def kill(paths: Paths, name: str, sig: int = signal.SIGKILL) -> Observation:
    """SIGKILL ends the container for good; any other signal goes to the service."""
    with state.locked(paths, name):
        record, observed = _running(paths, name)
        if sig == signal.SIGKILL:
            _halt(paths, record, sig, 0)
        else:
            assert observed.pid
            _signal(observed.pid, sig)  # the init forwards it to the service
        return observe(paths, record)


def set_frozen(paths: Paths, name: str, frozen: bool) -> Observation:
    with state.locked(paths, name):
        record, before = _running(paths, name)
        cgroups.set_frozen(record.cgroups, frozen)
        if (before.state == ContainerState.FROZEN) != frozen:
            events.emit(paths, "frozen" if frozen else "thawed", name)
        return observe(paths, record)


def remove(paths: Paths, name: str, force: bool = False) -> None:
    with state.locked(paths, name):
        record = state.load(paths, name)
        if observe(paths, record).state in ACTIVE:
            if not force:
                raise Conflict(f"container {name} is running", hint="stop it first or use rm -f")
            _halt(paths, record, signal.SIGKILL, 0)
        _release(paths, record)
        _discard(paths, name)
        events.emit(paths, "removed", name)


# ---- reading ----

def describe(paths: Paths, name: str, *, detail: bool = False) -> dict[str, object]:
    record = state.load(paths, name)
    observed = observe(paths, record)
    wired = network.describe(paths, name) if observed.state in ACTIVE else {}
    summary: dict[str, object] = {
        "name": name, "state": str(observed.state), "template": record.template,
        "pid": observed.pid, "network": record.network, "ip": wired.get("ip", ""), "command": " ".join(record.argv),
        "created": record.created, "started_at": observed.started_at, "restarts": observed.restarts,
        "exit_code": observed.exit_code,
    }
    if detail:
        summary.update(
            root=str(paths.container_root(name)), monitor_pid=observed.monitor_pid,
            finished_at=observed.finished_at, error=observed.error, restart=record.restart,
            restart_max=record.restart_max, env=list(record.env), unit_env=list(record.unit_env),
            payloads=list(record.payloads),
            binds=[f"{b.source}:{b.target}:{'ro' if b.read_only else 'rw'}" for b in record.binds],
            limits={"memory": record.limits.memory, "pids": record.limits.pids, "cpus": record.limits.cpus},
            hermetic=record.network != "host", cgroups=list(record.cgroups),
            forwards=list(record.forwards), interface=wired or None,
            stats=cgroups.stats(record.cgroups) if observed.state in ACTIVE else None,
        )
    return summary


def list_all(paths: Paths) -> list[dict[str, object]]:
    rows = []
    for name in state.names(paths):
        try:
            rows.append(describe(paths, name))
        except NotFound:
            continue  # removed while we looked
    return rows


def log_lines(paths: Paths, name: str, tail: int | None = None) -> list[str]:
    state.load(paths, name)
    directory = paths.container_state(name)
    text = ""
    for part in ("log.1", "log"):
        try:
            text += (directory / part).read_text(errors="replace")
        except FileNotFoundError:
            pass
    lines = text.splitlines()
    return lines[-tail:] if tail is not None and tail >= 0 else lines


def follow_log(paths: Paths, name: str, tail: int | None = None) -> Iterator[str | None]:
    """The log so far, then new lines until the container stops; None about once a second
    while nothing is written (a heartbeat for readers that must notice a gone client)."""
    yield from log_lines(paths, name, tail)
    log = paths.container_state(name) / "log"
    position = log.stat().st_size if log.exists() else 0
    idle = 0
    while True:
        size = log.stat().st_size if log.exists() else 0
        if size < position:  # rotated
            position = 0
        if size > position:
            with open(log, errors="replace") as f:
                f.seek(position)
                chunk = f.read()
                position = f.tell()
            yield from chunk.splitlines()
            idle = 0
            continue
        if not state.exists(paths, name) or observe(paths, state.load(paths, name)).state not in ACTIVE:
            return
        time.sleep(0.2)
        idle += 1
        if idle % 5 == 0:
            yield None


def exec_in(paths: Paths, name: str, argv: list[str], stdio: tuple[int, int, int] = (-1, -1, -1)) -> int:
    """Run argv inside the container (its namespaces, cgroups, capabilities, seccomp); returns its status.

    stdio gives the command's stdin, stdout and stderr fds; -1 keeps the caller's own.
    """
    if not argv:
        raise InvalidRequest("exec needs a command", hint="prodng exec NAME -- CMD ARGS...")
    from ._native import ffi, lib  # type: ignore[import-not-found]

    with state.locked(paths, name):
        _, observed = _running(paths, name)
        if observed.state == ContainerState.FROZEN:
            raise Conflict(f"container {name} is frozen", hint=f"prodng thaw {name}")
        assert observed.pid
        args = [ffi.new("char[]", os.fsencode(a)) for a in argv]
        c_argv = ffi.new("char *[]", [*args, ffi.NULL])
        err = ffi.new("char[]", 512)
        config = os.fsencode(paths.container_state(name) / "config")
        pid = lib.pn_exec(config, observed.pid, c_argv, ffi.new("int[3]", list(stdio)), err, 512)
    if pid < 0:
        raise from_native(ffi.string(err).decode(errors="replace"), f"exec in {name}")
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def run_job(paths: Paths, record: ContainerRecord, rootfs: Path, directory: Path, timeout: float) -> tuple[int, str]:
    """Run argv once in rootfs with full isolation (an install phase); returns exit code and output."""
    leaf = paths.cgroup_leaf(f"job-{directory.name}")
    groups = cgroups.create(leaf, record.limits)
    job = replace(record, cgroups=groups, restart="no")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config"
    try:
        # dpkg may unpack device nodes: allowed, and inert, since every root is mounted nodev.
        install_caps = (*DEFAULT_CAPS.values(), CAP_MKNOD)
        state.write_atomic(config, _config_bytes(paths, job, rootfs, directory, install_caps), durable=False)
        _spawn_monitor(config)
        status_file = directory / "status"
        deadline = time.monotonic() + timeout
        while "state=exited" not in (status_file.read_text() if status_file.exists() else ""):
            if time.monotonic() > deadline:
                cgroups.kill_all(groups)
                raise SystemFailure(f"{record.name}: gave up after {timeout:g} s")
            time.sleep(0.1)
        status = dict(line.split("=", 1) for line in status_file.read_text().splitlines() if "=" in line)
        log = (directory / "log").read_text(errors="replace") if (directory / "log").exists() else ""
        return int(status.get("exit_code", 1)), log
    finally:
        cgroups.kill_all(groups)
        cgroups.remove(groups)


# ---- upgrade and rollback: a new root beside the running one, the old one kept ----

def _previous(paths: Paths, name: str) -> tuple[Path, Path]:
    return paths.containers / f".{name}.previous", paths.container_state(name) / "record.previous.json"


def swap_in(paths: Paths, name: str, incoming_root: Path, incoming: ContainerRecord) -> Observation:
    """Replace the container's root and record; the current ones become the previous version.

    incoming_root must be a subvolume in the pool. If the new version fails to start,
    everything is put back as it was (the incoming root returns to incoming_root) and
    the old version is started again before the error is raised."""
    with state.locked(paths, name):
        current = state.load(paths, name)
        was_active = observe(paths, current).state in ACTIVE
        previous_root, previous_record = _previous(paths, name)
        older = paths.containers / f".{name}.older"
        root = paths.container_root(name)
        old_previous_text = previous_record.read_text() if previous_record.exists() else None
        _halt(paths, current, signal.SIGTERM, 10.0)
        _release(paths, current)
        btrfs.delete_subvolume(older)
        if previous_root.exists():
            os.rename(previous_root, older)
        os.rename(root, previous_root)
        os.rename(incoming_root, root)
        state.write_atomic(previous_record, json.dumps(replace(current, cgroups=(), started=False).to_json()))
        state.save(paths, replace(incoming, name=name, cgroups=(), started=False, created=current.created,
                                  boot_id=state.boot_id()))
        try:
            observed = _start_locked(paths, name) if was_active else observe(paths, state.load(paths, name))
        except BaseException:
            failed = state.load(paths, name)
            _halt(paths, failed, signal.SIGKILL, 0)
            _release(paths, failed)
            os.rename(root, incoming_root)
            os.rename(previous_root, root)
            if older.exists():
                os.rename(older, previous_root)
            if old_previous_text is None:
                previous_record.unlink(missing_ok=True)
            else:
                state.write_atomic(previous_record, old_previous_text)
            state.save(paths, replace(current, cgroups=(), started=False))
            _start_locked(paths, name)
            raise
        btrfs.delete_subvolume(older)
        return observed


def rollback(paths: Paths, name: str) -> Observation:
    """Return to the previous root and record (a second rollback returns to the newer one)."""
    previous_root, previous_record = _previous(paths, name)
    state.load(paths, name)
    if not (previous_root.exists() and previous_record.exists()):
        raise Conflict(f"container {name} has no previous version to roll back to")
    incoming = ContainerRecord.from_json(json.loads(previous_record.read_text()))
    staged = paths.containers / f".{name}.incoming"
    btrfs.delete_subvolume(staged)
    os.rename(previous_root, staged)
    try:
        return swap_in(paths, name, staged, incoming)
    finally:
        if staged.exists() and not previous_root.exists():
            os.rename(staged, previous_root)  # a failed rollback keeps its previous version
