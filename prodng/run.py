"""The only module that starts host processes (mkosi's habit).

Every command is logged once as `+ cmd`; the child gets an explicit environment,
stdin from /dev/null, and is killed if we die first (PR_SET_PDEATHSIG), so a
killed prodng never leaves a half-run helper behind.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from prodng.errors import SystemFailure

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (short verbs import this module)
if TYPE_CHECKING:
    from typing import IO

log = logging.getLogger(__name__)

BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}


def _die_with_parent() -> None:
    import prctl  # type: ignore[import-untyped]

    prctl.set_pdeathsig(9)


def _term_with_parent() -> None:
    import prctl

    prctl.set_pdeathsig(15)


# Kills every process of the cgroups named in its arguments when it gets TERM (its parent died);
# a SIGKILL (the caller finished) ends it without doing anything.
_WATCHDOG = """
trap 'for round in 1 2 3; do for g; do echo 1 > "$g/cgroup.kill" 2>/dev/null ||
  while read p; do kill -9 "$p"; done < "$g/cgroup.procs"; done; done; exit 0' TERM
while :; do sleep 1; done
"""


@contextmanager
def watchdog(groups: Sequence[str]) -> Iterator[None]:
    """While the body runs, whatever runs in groups dies with us: a daemonized job (an install)
    would otherwise run on after a kill -9 of the CLI or the agent that waits for it."""
    log.debug("+ watchdog over %s", " ".join(groups))
    proc = subprocess.Popen(
        ["/bin/sh", "-c", _WATCHDOG, "prodng-watchdog", *groups],
        env=_env(None),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_term_with_parent,
    )
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    return {**BASE_ENV, **(extra or {})}


def _describe(cmd: Sequence[str | Path]) -> str:
    return shlex.join(str(c) for c in cmd)


def telling_line(output: str) -> str:
    """The line of a failed command's output that says why: nft ends with the offending
    statement and a line of carets under it, so an 'Error:' line beats the last one."""
    lines = [line.strip() for line in output.splitlines() if line.strip(" \t^~")]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1]


def run(
    cmd: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    capture: bool = True,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run to completion; a failure becomes a SystemFailure naming the command."""
    log.debug("+ %s", _describe(cmd))
    try:
        result = subprocess.run(
            [str(c) for c in cmd],
            env=_env(env),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=capture,
            text=True,
            preexec_fn=_die_with_parent,
        )
    except FileNotFoundError:
        raise SystemFailure(f"{cmd[0]} is not installed") from None
    if check and result.returncode != 0:
        why = telling_line(result.stderr or result.stdout or "") or f"exit status {result.returncode}"
        raise SystemFailure(f"{Path(str(cmd[0])).name} failed: {why}")
    return result


@contextmanager
def stream(cmd: Sequence[str | Path], *, env: Mapping[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """Start a command whose merged output is read line by line; killed on error."""
    log.debug("+ %s", _describe(cmd))
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        env=_env(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        preexec_fn=_die_with_parent,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


@contextmanager
def piped(cmd: Sequence[str | Path], source: IO[bytes]) -> Iterator[IO[bytes]]:
    """A filter's output as a stream (a decompressor): a thread writes source to its stdin while
    the caller reads its stdout, as far as it likes; the filter is killed when the caller is done,
    so nothing of it is ever held whole in memory."""
    log.debug("+ %s", _describe(cmd))
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        env=_env(None),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=_die_with_parent,
    )
    assert proc.stdin is not None and proc.stdout is not None
    feeder = threading.Thread(target=_feed, args=(source, proc.stdin), daemon=True)
    feeder.start()
    try:
        yield proc.stdout
    finally:
        proc.kill()  # a feeder blocked in write() gets EPIPE
        proc.wait()
        feeder.join()
        proc.stdout.close()


def _feed(source: IO[bytes], sink: IO[bytes]) -> None:
    try:
        while block := source.read(1 << 16):
            sink.write(block)
    except OSError:  # the filter is gone: the reader is done or will see its output end
        pass
    finally:
        try:
            sink.close()
        except OSError:
            pass


def spawn_daemon(
    cmd: Sequence[str | Path],
    *,
    pass_fds: Sequence[int] = (),
    env: Mapping[str, str] | None = None,
    argv0: str | None = None,
) -> int:
    """Start a long-lived helper in its own session and return its exit status.

    The helper (prodng-shim) forks itself away, so it is never our child for
    long: containers outlive the CLI and the agent never collects zombies.
    """
    log.debug("+ %s", _describe(cmd))
    # posix_spawn (vfork) rather than Popen: this is on the start path, and it is twice as fast.
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(
            str(cmd[0]),
            [argv0 or str(cmd[0]), *(str(c) for c in cmd[1:])],
            _env(env),
            setsid=True,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
                # The passed fds lose close-on-exec in the child alone (a dup2 onto itself does that,
                # glibc >= 2.29). Made inheritable here, they went to whatever another thread spawned
                # meanwhile: a keeper server kept a start's ready pipe, and that start never returned.
                *((os.POSIX_SPAWN_DUP2, fd, fd) for fd in pass_fds),
            ],
        )
    finally:
        os.close(devnull)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def require(tool: str, package: str) -> str:
    path = shutil.which(tool, path=BASE_ENV["PATH"])
    if not path:
        raise SystemFailure(f"{tool} is not installed", hint=f"apt-get install {package}")
    return path


def spawn_helper(
    cmd: Sequence[str | Path], *, stdio: tuple[int, int, int], pass_fds: Sequence[int] = ()
) -> subprocess.Popen[bytes]:
    """Start one of prodng's own native helpers (prodng-exec) that runs while we wait for it.

    Its environment is empty and it gets exactly stdio and pass_fds (close_fds): nothing of the
    caller's (the operator's variables, the agent's sockets) can reach what it runs. Its own
    session and process group, so nothing it or its command does to its group reaches ours.
    """
    log.debug("+ %s", _describe(cmd))
    return subprocess.Popen(
        [str(c) for c in cmd],
        env={},
        stdin=stdio[0],
        stdout=stdio[1],
        stderr=stdio[2],
        pass_fds=tuple(pass_fds),
        close_fds=True,
        start_new_session=True,
    )
