"""Container lifecycle: create, start, stop, kill, rm (freeze and thaw: container.freezer).
The spawn path starts here.

Spawn path, in the order things happen:
1. `create` (the request checked by handlers/create.py) snapshots the template, or the root
   the payloads were installed into (payload.install), in the pool (storage.btrfs; the
   storage path is in storage/pool.py), and writes the record (container.state) last.
2. `start_locked`, under the container's lock: a wired container's address, ports and the
   host side (`start_network_daemons`; the network path is in network/host.py), the disk
   quota, the cgroups (container.cgroups), the record saved, the monitor's config written
   (container.monitor) and native/prodng-shim started (`spawn_monitor`).
3. prodng-shim (native/shim_main.c, monitor.c) daemonizes, makes the cgroups its own, clones
   the init into new namespaces (native/rootfs.c: mounts and pivot; sandbox.c: capabilities,
   seccomp; init.c: runs the service) and answers "ok PID START" or "error MSG" on a pipe.
From then on the monitor supervises (restarts, log, status file), and every verb reads the
truth from the kernel and the status file (container.observe).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from pathlib import Path

from prodng import faults, pidfd, polling, run
from prodng.config import Paths
from prodng.container import cgroups, events, services, state
from prodng.container.monitor import SHIM, config_bytes
from prodng.container.observe import ACTIVE, ContainerState, Observation, observe, running_container
from prodng.container.state import ContainerRecord
from prodng.errors import Conflict, InvalidRequest, SystemFailure, from_native
from prodng.frozen import replace
from prodng.network import claims, modes, wiring
from prodng.storage import btrfs, quota

log = logging.getLogger(__name__)
KEEPER_TEARDOWN_WAIT = 30.0  # seconds a start waits for the keeper of the previous run to finish its teardown

# ---- lifecycle ----


def create(
    paths: Paths, record: ContainerRecord, source: Path | None = None, *, to_start: bool = False
) -> ContainerRecord:
    """Snapshot the template (or an installed root made from it) and write the record; all or nothing.

    The record is written last: it is the commit. A state directory without one is what a
    killed create (or rm) left, and the next holder of the name's lock discards it. With
    to_start (run), the record says so until start; a run killed before it is discarded."""
    from prodng.storage import templates  # debian, for templates only: stop and freeze start faster without

    state.check_name(record.name)
    template_root = source or templates.require(paths, record.template)
    with state.locked(paths, record.name):
        if state.exists(paths, record.name):
            raise Conflict(f"container {record.name} already exists")
        directory = paths.container_state(record.name)
        try:
            directory.mkdir(parents=True, mode=0o700)
            faults.point("create.dir")
            btrfs.snapshot(template_root, paths.container_root(record.name))
            record = _limit_disk(paths, record)
            faults.point("create.root")
            pending = f"{os.getpid()} {state.starttime(os.getpid())}" if to_start else ""
            record = replace(record, created=time.time(), boot_id=state.boot_id(), pending_start=pending)
            state.save(paths, record)
        except BaseException:
            discard(paths, record.name)
            raise
    events.emit(paths, "created", record.name)
    return record


def _limit_disk(paths: Paths, record: ContainerRecord) -> ContainerRecord:
    """The root's quota; the record then says what is in force."""
    root = paths.container_root(record.name)
    if record.limits.disk and not quota.apply(paths.pool, root, record.limits.disk):
        log.warning("prodng: no btrfs quotas on %s: %s gets no disk limit", paths.pool, record.name)
        return replace(record, limits=replace(record.limits, disk=None))
    return record


def discard(paths: Paths, name: str) -> None:
    """Remove a container's files; the record goes first, so a kill leaves a record-less (swept) directory."""
    state.record_path(paths, name).unlink(missing_ok=True)
    faults.point("rm.record")
    btrfs.delete_subvolume(paths.container_root(name))
    for leftover in (".previous", ".older", ".incoming", ".next"):
        btrfs.delete_subvolume(paths.containers / f".{name}{leftover}")
    faults.point("rm.root")
    shutil.rmtree(paths.container_state(name), ignore_errors=True)


def start(paths: Paths, name: str) -> Observation:
    with state.locked(paths, name):
        return start_locked(paths, name)


def start_locked(paths: Paths, name: str) -> Observation:
    record = state.load(paths, name)
    if observe(paths, record).state in ACTIVE:
        raise Conflict(f"container {name} is already running")
    # A keeper's teardown goes by the container's name (veth, DNS name, lease, claims, net.json):
    # beside a new run it would undo the new run's network as it went. halt waited 5 s for it.
    if not polling.until(lambda: not wiring.keeper_alive(paths, name), KEEPER_TEARDOWN_WAIT):
        raise Conflict(f"the network of container {name}'s previous run is still being undone", hint="try again")
    release_network(paths, record)
    mode = record.network
    if mode.wired:
        _claim_network(paths, record)
    directory = paths.container_state(name)
    plan = services.compile_for(paths, record) if services.uses_plan(record) else None
    owners = services.bind_owners(paths, record)
    (directory / "status").unlink(missing_ok=True)
    if record.limits.disk:  # again at every start: an upgrade or rollback swaps the root subvolume
        quota.apply(paths.pool, paths.container_root(name), record.limits.disk)
    (directory / "status.units").unlink(missing_ok=True)
    created = cgroups.create(paths.cgroup_leaf(name), record.limits)
    record = replace(record, cgroups=created, boot_id=state.boot_id(), started=True)
    # Saved before anything runs: a start killed now reads as exited, its cgroups on record
    # (and a run's pending_start stays until the monitor answered: the sweep discards a killed one).
    state.save(paths, record)
    config = directory / "config"
    pairs = services.plan_pairs(plan, record) if plan else None
    state.write_atomic(
        config, config_bytes(paths, record, plan=pairs, owners=owners), durable=False
    )  # rewritten every start
    try:
        spawn_monitor(config)
    except BaseException:
        cgroups.kill_all(record.cgroups)
        release_network(paths, record)  # also undoes what a keeper made and could not undo
        if mode.wired:
            claims.release_claims(paths, name)  # taken above, before any keeper
        state.save(paths, replace(record, cgroups=(), started=False))
        raise
    if record.pending_start:  # the run's container is made: from now on it is an ordinary one
        record = replace(record, pending_start="")
        state.save(paths, record)
    events.emit(paths, "started", name)
    faults.point("start.spawned")
    if plan:
        _await_units(paths, record, plan)
    return observe(paths, record)


def _claim_network(paths: Paths, record: ContainerRecord) -> None:
    """The address and host ports are checked and taken before anything starts; the host side
    (bridge, dnsmasq, keeper server) is made by the first wired start and reused after."""
    net = modes.bridge(paths.settings)
    claims.claim(paths, record.name, record.network, record.forwards, net)
    try:
        wiring.write_resolv_conf(paths, record.name, net)
        start_network_daemons(paths, net)
    except BaseException:
        claims.release_claims(paths, record.name)
        raise


def _await_units(paths: Paths, record: ContainerRecord, plan: services.Plan) -> None:
    """Truth at start: every unit up, or the container stopped and the failure raised."""

    def init_alive() -> bool:
        return observe(paths, record).state in ACTIVE

    try:
        services.wait_started(paths, record, plan, init_alive)
    except BaseException:
        halt(paths, record, signal.SIGTERM, 5.0)
        raise


def start_network_daemons(paths: Paths, net: modes.Bridge) -> None:
    """The bridge, its nft tables, dnsmasq and the warm keeper server, before a wired
    container's monitor starts: made by the first such start, found and reused after."""
    from prodng.network import host  # pyroute2 (~0.1 s to import): wired containers only

    host.ensure_host_side(paths, net)


def spawn_monitor(config: Path) -> None:
    if not SHIM.exists():
        raise SystemFailure(f"{SHIM} is missing", hint="rebuild: python native/build_native.py")
    read_end, write_end = os.pipe()
    # The config goes by fd: the monitor and the container's init then show no host path
    # in their command line (PID 1's is readable inside the container).
    config_fd = os.open(config, os.O_RDONLY | os.O_CLOEXEC)
    try:
        status = run.spawn_daemon(
            [SHIM, f"/proc/self/fd/{config_fd}", str(write_end)], pass_fds=[write_end, config_fd], argv0="prodng-shim"
        )
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
        raise from_native(text.removeprefix("error ") or f"system prodng-shim exited with {status}", "cannot start")


def release_network(paths: Paths, record: ContainerRecord) -> None:
    """Remove the recorded cgroups and any a killed `start` made before recording them, and
    whatever network the container's keeper could not undo itself (it was killed)."""
    cgroups.remove(tuple(dict.fromkeys(record.cgroups + cgroups.expected(paths.cgroup_leaf(record.name)))))
    wired = wiring.read(paths, record.name)
    if wired and not wiring.keeper_alive(paths, record.name):
        from prodng.network import host  # pyroute2 (~0.1 s to import): only for a killed keeper's leftovers

        host.teardown(paths, record.name, record.forwards)


def _signal(pid: int, start: int, sig: int) -> None:
    """Signal pid only while it is the process that started at start (pidfd: no reused pid is hit)."""
    pidfd.send_signal(pid, sig, still_it=lambda: state.same_process(pid, start))


def _wait_gone(pid: int, start: int, timeout: float) -> bool:
    return polling.until(lambda: not state.same_process(pid, start), timeout)


def stop(paths: Paths, name: str, timeout: float = 10.0) -> Observation:
    """TERM the service (through the monitor, so it does not restart it), then KILL."""
    if not 0 <= timeout < 1e9:  # also refuses nan, which would wait forever holding the lock
        raise InvalidRequest(f"stop timeout must be between 0 and 1e9 seconds, not {timeout}")
    with state.locked(paths, name):
        record = state.load(paths, name)
        halt(paths, record, signal.SIGTERM, timeout)
        release_network(paths, record)  # what a killed keeper could not undo: forwards, name, lease, claims
        return observe(paths, record)


def restart(paths: Paths, name: str, timeout: float = 10.0) -> Observation:
    with state.locked(paths, name):
        record = state.load(paths, name)
        halt(paths, record, signal.SIGTERM, timeout)
        return start_locked(paths, name)


def halt(paths: Paths, record: ContainerRecord, sig: int, timeout: float) -> None:
    observed = observe(paths, record)
    if observed.state not in ACTIVE:
        return
    status = state.read_status(paths, record.name)
    if observed.state == ContainerState.FROZEN:
        cgroups.set_frozen(record.cgroups, False)
    init_pid, init_start = int(status.get("init_pid", 0)), int(status.get("init_start", 0))
    monitor_start = int(status.get("monitor_start", 0))
    if observed.monitor_pid:
        _signal(observed.monitor_pid, monitor_start, signal.SIGTERM)  # no restart; it forwards TERM to the init
    if init_pid and sig != signal.SIGTERM:
        _signal(init_pid, init_start, sig)
    if not (init_pid and _wait_gone(init_pid, init_start, timeout)):
        cgroups.kill_all(record.cgroups)
        _wait_gone(init_pid, init_start, 5.0)
    if observed.monitor_pid:
        _wait_gone(observed.monitor_pid, monitor_start, 5.0)
    wired = wiring.read(paths, record.name)
    if wired:  # the monitor's end closed the keeper's lifeline: it is undoing the network
        _wait_gone(int(str(wired.get("keeper_pid", 0))), int(str(wired.get("keeper_start", 0))), 5.0)


def kill(paths: Paths, name: str, sig: int = signal.SIGKILL) -> Observation:
    """SIGKILL ends the container for good; any other signal goes to the service."""
    with state.locked(paths, name):
        record, observed = running_container(paths, name)
        if sig == signal.SIGKILL:
            halt(paths, record, sig, 0)
        else:
            status = state.read_status(paths, name)
            _signal(int(status.get("init_pid", 0)), int(status.get("init_start", 0)), sig)  # the init forwards it
        return observe(paths, record)


def remove(paths: Paths, name: str, force: bool = False) -> None:
    with state.locked(paths, name):
        record = state.load(paths, name)
        if observe(paths, record).state in ACTIVE:
            if not force:
                raise Conflict(f"container {name} is running", hint="stop it first or use rm -f")
            halt(paths, record, signal.SIGKILL, 0)
        release_network(paths, record)
        discard(paths, name)
        btrfs.start_commit(paths.pool)  # the space goes back to the host sooner (see storage.pool)
        events.emit(paths, "removed", name)
