"""Running a process inside a container: `exec`, and the install jobs of payloads."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from prodng import polling, run
from prodng.config import Paths
from prodng.container import cgroups, state
from prodng.container.lifecycle import spawn_monitor
from prodng.container.monitor import config_bytes
from prodng.container.observe import ContainerState, running_container
from prodng.container.state import ContainerRecord
from prodng.errors import Conflict, InvalidRequest, SystemFailure, from_native
from prodng.frozen import replace

EXEC = Path(__file__).resolve().parents[1] / "libexec" / "prodng-exec"
Stop = Callable[[], bool]  # true once a call must end: its deadline passed, the agent is stopping
STOP_POLL = 0.5  # as exec_io's (not imported here: CLI start-up time)


def _user(user: str | None) -> list[str]:
    if user is None:
        return []
    if not re.fullmatch(r"\d{1,9}(:\d{1,9})?", user):
        raise InvalidRequest(f"invalid --user {user[:40]!r}", hint="UID or UID:GID (numbers)")
    return ["--user", user]


def _read_report(fd: int, until: bytes, stop: Stop | None) -> bytes | None:
    """What the helper reports on fd up to until (or its end); None once stop() says to give up."""
    data = b""
    while until not in data:
        if select.select([fd], [], [], STOP_POLL if stop else None)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        elif stop and stop():
            return None
    return data


def start_exec(
    paths: Paths,
    name: str,
    argv: list[str],
    stdio: tuple[int, int, int],
    *,
    console: int | None = None,
    user: str | None = None,
    env: tuple[str, ...] = (),
    stop: Stop | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv in the container through prodng-exec (native/exec_main.c); returns once it runs.

    stdio are the command's stdin, stdout and stderr (pipes or /dev/null: never a host file or
    terminal); console is a unix socket that gets the master of a pty made inside the container.
    The container's lock is held only until the helper is inside (its cgroups and namespaces):
    between its fork and the command's exec the container can see it and SIGSTOP it, and a stop
    or rm -f must then still get the lock (and kill it with the container). When stop() turns
    true (the agent's deadline) the helper is killed and the start given up.
    """
    if not argv:
        raise InvalidRequest("exec needs a command", hint="prodng exec NAME -- CMD ARGS...")
    extra = [*_user(user), *(a for e in env for a in ("--env", e))]  # a bad --user: refused first
    if not EXEC.exists():
        raise SystemFailure(f"{EXEC} is missing", hint="rebuild: python native/build_native.py")
    report = -1
    try:
        with state.locked(paths, name):
            _, observed = running_container(paths, name)
            if observed.state == ContainerState.FROZEN:
                raise Conflict(f"container {name} is frozen", hint=f"prodng thaw {name}")
            report, report_w = os.pipe()
            fds = [report_w] if console is None else [report_w, console]
            cmd: list[str | Path] = [
                EXEC,
                "--config",
                paths.container_state(name) / "config",
                "--init",
                f"{observed.pid}:{observed.pid_start}",
                "--report",
                str(report_w),
                *(["--console", str(console)] if console is not None else []),
                *extra,
            ]
            try:
                proc = run.spawn_helper([*cmd, "--", *argv], stdio=stdio, pass_fds=fds)
            finally:
                os.close(report_w)
            try:
                joined = _read_report(report, b"\n", stop)  # "joined", or why it could not join
            except BaseException:
                proc.kill()  # interrupted: nothing starts behind the caller's back
                proc.wait()
                raise
        try:
            started = _read_report(report, b"\0", stop) if joined and joined.startswith(b"joined\n") else b""
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    finally:
        if report >= 0:
            os.close(report)
    _check_started(proc, name, joined, started)
    return proc


def _check_started(proc: subprocess.Popen[bytes], name: str, joined: bytes | None, started: bytes | None) -> None:
    """What prodng-exec reported: 'joined' then EOF once the command runs, or why not (raised)."""
    if joined is None or started is None:
        proc.kill()  # a command it had not started yet is left to the container (a stop ends it)
        proc.wait()
        raise SystemFailure(f"exec in {name}: the command did not start in time", hint=f"prodng info {name}")
    if not joined.startswith(b"joined\n"):
        status = proc.wait()
        failure = joined.decode(errors="replace").strip() or f"system prodng-exec ended ({status}) before joining"
        raise from_native(failure.removeprefix("error "), f"exec in {name}")
    failure = (joined[len(b"joined\n") :] + started).decode(errors="replace").strip()
    if failure:
        proc.wait()
        raise from_native(failure.removeprefix("error "), f"exec in {name}")


def bounded(timeout: float, cancelled: Stop | None = None) -> Stop | None:
    """A Stop for a deadline timeout seconds from now (0: none) or cancelled(); None when neither can come."""
    if not 0 <= timeout < 1e9:  # also refuses nan
        raise InvalidRequest(f"exec timeout must be between 0 and 1e9 seconds, not {timeout}")
    if not timeout and cancelled is None:
        return None
    deadline = time.monotonic() + timeout if timeout else float("inf")
    return lambda: time.monotonic() > deadline or (cancelled is not None and cancelled())


def exec_captured(
    paths: Paths, name: str, argv: list[str], limit: int, user: str | None = None, stop: Stop | None = None
) -> dict[str, object]:
    """Run argv with no input; its exit code and the first limit bytes of its stdout and stderr."""
    from prodng.container import exec_io  # selectors, termios: for exec alone

    out, out_w = os.pipe()
    err, err_w = os.pipe()
    with open(os.devnull, "rb") as null:
        try:
            proc = start_exec(paths, name, argv, (null.fileno(), out_w, err_w), user=user, stop=stop)
        except BaseException:
            os.close(out)
            os.close(err)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
    (keep_out, stdout), (keep_err, stderr) = exec_io.capped(limit), exec_io.capped(limit)
    code = exec_io.pump(proc, {out: keep_out, err: keep_err}, stop=stop)
    return {"name": name, "exit_code": code, "stdout": stdout(), "stderr": stderr()}


def exec_attached(
    paths: Paths, name: str, argv: list[str], *, stdin: bool, user: str | None = None, stop: Stop | None = None
) -> int:
    """The CLI's exec without a terminal: our stdin (with -i) and output relayed through pipes."""
    from prodng.container import exec_io  # selectors, termios: for exec alone

    out, out_w = os.pipe()
    err, err_w = os.pipe()
    feed, feed_w = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), -1)
    try:
        proc = start_exec(paths, name, argv, (feed, out_w, err_w), user=user, stop=stop)
    except BaseException:
        for fd in (out, err, feed_w):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in (feed, out_w, err_w):
            os.close(fd)
    outputs = {out: exec_io.to_stream(sys.stdout), err: exec_io.to_stream(sys.stderr)}
    with exec_io.forwarding_signals(proc):
        return exec_io.pump(proc, outputs, (sys.stdin.fileno(), feed_w) if stdin else None, stop)


def exec_terminal(paths: Paths, name: str, argv: list[str], user: str | None = None, stop: Stop | None = None) -> int:
    """The CLI's `exec -it`: a pty of the container's own, our terminal relayed to it in raw mode."""
    from prodng.container import exec_io  # selectors, termios: for exec alone

    if not sys.stdin.isatty():
        raise InvalidRequest("exec -t needs a terminal on stdin", hint="leave out -t")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs, open(os.devnull, "r+b") as null:
        term = os.environ.get("TERM", "")
        env = (f"TERM={term}",) if re.fullmatch(r"[\w.+-]{1,64}", term) else ()
        io = (null.fileno(),) * 3
        proc = start_exec(paths, name, argv, io, console=theirs.fileno(), user=user, env=env, stop=stop)  # type: ignore[arg-type]
        theirs.close()
        master = exec_io.receive_master(ours)
    return exec_io.relay_pty(proc, master, stop)


def run_job(
    paths: Paths,
    record: ContainerRecord,
    rootfs: Path,
    directory: Path,
    timeout: float,
    start: Callable[[Path], None] = spawn_monitor,
) -> tuple[int, str]:
    """Run argv once in rootfs with full isolation (an install phase); returns exit code and output.
    start(config) starts the job's monitor (in a network namespace of the caller's choosing)."""
    leaf = paths.cgroup_leaf(f"job-{directory.name}")
    directory.mkdir(parents=True, exist_ok=True)
    groups = cgroups.create(leaf, record.limits)
    # Named in the job's directory: a sweep after its caller was killed finds them from any cgroup.
    state.write_atomic(directory / "cgroups", "\n".join(groups), durable=False)
    job = replace(record, cgroups=groups, restart=state.Restart.NO)
    config = directory / "config"
    try:
        # The container's capabilities (no CAP_MKNOD: a payload's device nodes are refused before install,
        # and a maintainer script cannot make one) and the container's device allow-list (cgroups.create).
        state.write_atomic(config, config_bytes(paths, job, rootfs, directory), durable=False)
        status_file = directory / "status"
        with run.watchdog(groups):  # the job dies with its caller
            start(config)
            done = polling.until(
                lambda: state.read_status_file(status_file).get("state") == "exited", timeout, most=0.1
            )
        if not done:
            cgroups.kill_all(groups)
            raise SystemFailure(f"{record.name}: gave up after {timeout:g} s")
        status = state.read_status_file(status_file)
        log = (directory / "log").read_text(errors="replace") if (directory / "log").exists() else ""
        if cgroups.oom_kills(groups) and record.limits.memory:  # its scripts only say "Killed"
            log += f"out of memory: the kernel killed a process at the memory limit of {record.limits.memory // 2**20} MiB\n"
        return int(status.get("exit_code", 1)), log
    finally:
        cgroups.kill_all(groups)
        cgroups.remove(groups)
