"""Starting keepers: warm (forked by a keeper server) or cold (python -m ...keeper_server).

The warm server (`--serve SOCKET`, one per prodng root and network namespace, started by
a wired container's start: network.host.ensure_host_side) has everything imported; the
monitor hands it its network namespace and the keeper's end of a lifeline, and it forks a
keeper (a few ms). When no server answers, the monitor starts `python -m
prodng.network.keeper_server ROOT NAME` cold, with the host's network namespace on fd 3
and the lifeline on fd 4.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

from prodng.config import Paths
from prodng.network.keeper import MODULE, Keeper, setns, tell
from prodng.settings import from_argv

HOST_NS, LIFELINE = 3, 4


def serve(path: str) -> int:
    """The warm keeper server: everything imported once, one fork per container."""
    import pyroute2.dhcp.client  # noqa: F401  (imported here, so forks start warm)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    Path(path).unlink(missing_ok=True)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(64)
    if os.fork():
        os._exit(0)  # whoever started us knows the socket is ready
    Path(path).with_suffix(".pid").write_text(str(os.getpid()))
    signal.signal(signal.SIGCHLD, lambda *_: _reap())
    started_with = _code_stamp()
    while True:
        conn, _ = listener.accept()
        if _code_stamp() != started_with:
            # prodng was upgraded: no keeper from old code. The monitor starts this one cold,
            # and that keeper starts a new server.
            conn.close()
            Path(path).unlink(missing_ok=True)
            return 0
        with conn:
            try:
                message, fds, _, _ = socket.recv_fds(conn, 8192, 2)
            except OSError:
                continue
            argv = [part.decode() for part in message.split(b"\0")]
            arguments = argv[argv.index(MODULE) + 1 :] if MODULE in argv else []
            if len(fds) == 2 and len(arguments) >= 2:
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    conn.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    import prctl  # type: ignore[import-untyped]

                    prctl.set_name("prodng-keeper")
                    prctl.set_proctitle(f"prodng-keeper {arguments[1]} {arguments[0]}")  # for ps: whose it is
                    os._exit(_run_keeper(arguments, fds[0], fds[1]))
                conn.sendall(f"forked {pid}\n".encode())
            for fd in fds:
                os.close(fd)


def _code_stamp() -> int:
    return max(p.stat().st_mtime_ns for p in Path(__file__).parents[1].rglob("*.py"))  # all of prodng


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _run_keeper(arguments: list[str], container_ns: int, lifeline: int) -> int:
    """ROOT NAME [KEY=VALUE...]: the settings are the starting CLI's (see wiring.keeper_argv)."""
    try:
        root, name, *settings = arguments
        return Keeper(Paths(Path(root), from_argv(settings)), name, container_ns, lifeline).run()
    except BaseException as err:  # before run() could answer: say why, the monitor reports it
        tell(lifeline, f"error network keeper: {err}")
        return 1


def main(argv: list[str]) -> int:
    os.umask(0o022)
    if argv[:1] == ["--serve"]:
        return serve(argv[1])
    container_ns = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)  # started in it
    setns(HOST_NS)
    os.close(HOST_NS)
    return _run_keeper(argv, container_ns, LIFELINE)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
