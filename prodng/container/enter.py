"""Running a process inside a container: `exec`, and the install jobs of payloads."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from prodng import polling
from prodng.config import Paths
from prodng.container import cgroups, state
from prodng.container.lifecycle import running_container, spawn_monitor
from prodng.container.monitor import config_bytes
from prodng.container.observe import ContainerState
from prodng.container.state import ContainerRecord
from prodng.errors import Conflict, InvalidRequest, SystemFailure, from_native


def exec_in(paths: Paths, name: str, argv: list[str], stdio: tuple[int, int, int] = (-1, -1, -1)) -> int:
    """Run argv inside the container (its namespaces, cgroups, capabilities, seccomp); returns its status.

    stdio gives the command's stdin, stdout and stderr fds; -1 keeps the caller's own.
    """
    if not argv:
        raise InvalidRequest("exec needs a command", hint="prodng exec NAME -- CMD ARGS...")
    from prodng._native import ffi, lib  # type: ignore[import-not-found]

    with state.locked(paths, name):
        _, observed = running_container(paths, name)
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
    job = replace(record, cgroups=groups, restart=state.Restart.NO)
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config"
    try:
        # The container's capabilities (no CAP_MKNOD: a payload's device nodes are refused before install,
        # and a maintainer script cannot make one) and the container's device allow-list (cgroups.create).
        state.write_atomic(config, config_bytes(paths, job, rootfs, directory), durable=False)
        spawn_monitor(config)
        status_file = directory / "status"
        if not polling.until(lambda: state.read_status_file(status_file).get("state") == "exited", timeout, most=0.1):
            cgroups.kill_all(groups)
            raise SystemFailure(f"{record.name}: gave up after {timeout:g} s")
        status = state.read_status_file(status_file)
        log = (directory / "log").read_text(errors="replace") if (directory / "log").exists() else ""
        return int(status.get("exit_code", 1)), log
    finally:
        cgroups.kill_all(groups)
        cgroups.remove(groups)
