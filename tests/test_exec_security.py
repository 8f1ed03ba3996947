"""Issue 12: exec and the agent give a container nothing of the host, and what a container writes
never drives the operator's terminal. Each test performs the attack with the probe inside a running
container and asserts that it fails, beside the legitimate use."""

from __future__ import annotations

import http.client
import json
import os
import pty
import resource
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agent_helpers import PORT, Client, as_nobody, stop_agent
from probe_helpers import facts, findings

from prodng.config import Paths

from conftest import Prodng

pytestmark = pytest.mark.root

ESCAPES = "\x1b]0;owned\x07\x1b]52;c;aGk=\x07\x1b[2J"  # title, clipboard write (OSC 52), clear screen
FORGED = "\x1eprodng: service exited with 0; restart 1 in 0 ms"


def under_pty(prodng: Prodng, *args: str, send: bytes = b"", timeout: float = 30) -> tuple[int, bytes]:
    """Run the CLI with a real terminal as its stdin, stdout and stderr; returns its status and what it showed."""
    pid, leader = pty.fork()
    if pid == 0:  # pragma: no cover (the child)
        os.execve(sys.executable, [sys.executable, "-m", "prodng", *args], prodng.env)
    shown = b""
    if send:
        os.write(leader, send)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side is gone
                break
            if not chunk:
                break
            shown += chunk
        done, status = os.waitpid(pid, os.WNOHANG)
        if done and not ready:
            break
    else:
        os.kill(pid, 9)
        raise AssertionError(f"prodng {' '.join(args)} under a pty: no end in {timeout} s; so far {shown!r}")
    if not done:
        _, status = os.waitpid(pid, 0)
    os.close(leader)
    return os.waitstatus_to_exitcode(status), shown


def test_logs_and_query_escape_control_characters_and_own_lines_cannot_be_forged(
    prodng: Prodng, probe_template: str, container: str
) -> None:
    prodng(
        "run",
        probe_template,
        "--name",
        container,
        "--exec",
        f"probe echo {shlex.quote(ESCAPES)} ; echo {shlex.quote(FORGED)} ; sleep 1000",
    )
    prodng.wait_for(lambda: "prodng" in prodng("logs", container).stdout, what="the service's output")
    status, shown = under_pty(prodng, "logs", container)
    assert status == 0 and b"\x1b]" not in shown and b"\x07" not in shown and b"\x1b[2J" not in shown, shown
    assert b"\\x1b]52;c;aGk=\\x07" in shown, "shown, as text"
    assert b"\x1b[1m" not in shown, "no line of the service is set apart as prodng's"
    records = prodng.json("logs", container)
    assert records == [
        {"source": "service", "line": ESCAPES},
        {"source": "service", "line": "?" + FORGED[1:]},
    ], "the mark of prodng's lines never comes from the service"
    prodng("kill", container)
    status, shown = under_pty(
        prodng, "query", f"SELECT name, command FROM prodng_containers WHERE name = '{container}'"
    )
    assert status == 0 and b"\x1b]" not in shown and b"\\x1b]0;owned" in shown, shown


def test_names_are_matched_in_full(prodng: Prodng, probe_template: str) -> None:
    bad = prodng("run", probe_template, "--name", "web\n", "--exec", "probe true", check=False)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "invalid container name" in bad.stderr
    assert "web" not in json.dumps(prodng.json("ls"))


MARKER = "S3CRET-MARKER-7f3a"
STDIO_TARGETS = ("pipe:[", "/dev/null", "/dev/pts/")


def systemd_fd_limit() -> None:
    """The soft RLIMIT_NOFILE a service gets from systemd unless told otherwise."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


@pytest.fixture(scope="module")
def agent(prodng: Prodng) -> Iterator[subprocess.Popen[str]]:
    """The agent, with a secret in its environment the container must never see."""
    sock = prodng.root / "agent.sock"
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "prodng", "agent", "--port", str(PORT)],
        env={**prodng.env, "AGENT_TOKEN": MARKER},
        text=True,
        stderr=subprocess.PIPE,
        preexec_fn=systemd_fd_limit,
    )
    prodng.wait_for(lambda: sock.exists() or proc.poll() is not None, 30, "the agent")
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    yield proc
    stop_agent(proc)


@pytest.fixture(scope="module")
def unix(prodng: Prodng, agent: subprocess.Popen[str]) -> Client:
    return Client(Paths(prodng.root), unix=prodng.root / "agent.sock")


def race(prodng: Prodng, container: str, probe_template: str, exec_once: Callable[[], None], count: int = 30) -> None:
    """A root process in the container spins on ns_last_pid + 1 and tries every exec's process (issue 12, 1-3)."""
    prodng("run", probe_template, "--name", container, "--exec", f"probe racer 600 --marker {MARKER} ; sleep 100000")
    prodng.wait_for(lambda: "racer=ready" in prodng("logs", container).stdout, what="the racer")
    for _ in range(count):
        exec_once()
    time.sleep(0.5)  # the racer looks at each process while it is young (250 ms)
    log = prodng("logs", container).stdout
    seen = findings(log)
    assert all(f["kind"] != "environ" for f in seen), "the caller's environment never reaches the container"
    for finding in seen:
        if finding["kind"] == "exe":  # only ever the container's own file, never ours, never writable
            assert finding["where"] == "container" and finding["write"] is False, finding
        if finding["kind"] == "mem":  # the container's own command may be written to, never the exec's process
            assert finding["where"] == "container", finding
        if finding["kind"] == "fd":  # only the command's own stdio: no report pipe, lock, socket or listener
            assert int(str(finding["fd"])) < 3 and str(finding["target"]).startswith(STDIO_TARGETS), finding
    started = time.monotonic()
    prodng("stop", container, "-t", "2")
    prodng("rm", "-f", container)
    assert time.monotonic() - started < 10, "stop and rm -f are never held up by what an exec left behind"


def test_racer_gets_nothing_of_the_cli(prodng: Prodng, probe_template: str, container: str) -> None:
    env = {**prodng.env, "OPERATOR_TOKEN": MARKER}

    def exec_once() -> None:
        done = subprocess.run(
            [sys.executable, "-m", "prodng", "exec", container, "--", "probe", "echo", "hi"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr

    race(prodng, container, probe_template, exec_once)


def test_racer_gets_nothing_of_the_agent(prodng: Prodng, probe_template: str, container: str, unix: Client) -> None:
    def exec_once() -> None:
        status, result = unix.request("POST", "/prodng/exec", {"name": container, "command": ["probe", "echo", "hi"]})
        assert status == 200 and result == {"name": container, "exit_code": 0, "stdout": "hi\n", "stderr": ""}

    race(prodng, container, probe_template, exec_once)


def test_an_exec_stopped_in_its_window_holds_up_nothing(
    prodng: Prodng, probe_template: str, container: str, unix: Client
) -> None:
    """Between its fork and its exec, the command's process is in the container's pid namespace as root: the
    container can SIGSTOP it there. The container's lock must not be held across that window (stop and rm -f
    waited on it for ever), and a REST exec must end at its deadline, whatever the container does."""
    prodng("run", probe_template, "--name", container, "--exec", "probe stopper 600 100 ; sleep 100000")
    prodng.wait_for(lambda: "stopper=ready" in prodng("logs", container).stdout, what="the stopper")

    def caught() -> int:
        return prodng("logs", container).stdout.count("stopped=")

    clis: list[subprocess.Popen[str]] = []
    try:
        while not caught() and len(clis) < 60:  # about 1 in 5 is caught before its exec, the rest go on
            clis.append(prodng.popen("exec", container, "--", "probe", "true"))
            prodng.wait_for(lambda: clis[-1].poll() is not None or caught(), 30, "the exec or the stopper")
        assert caught(), "positive control: the container caught an exec's process before its exec"
        rest = [_rest_exec_in_window(unix, container)]  # the lock is free meanwhile
        while rest[-1] != "caught" and len(rest) < 60:
            rest.append(_rest_exec_in_window(unix, container))
        assert rest[-1] == "caught", f"positive control: no REST exec caught before its exec in {len(rest)} tries"
        started = time.monotonic()
        prodng("stop", container, "-t", "2", timeout=30)
        prodng("rm", "-f", container, timeout=30)
        assert time.monotonic() - started < 20, "stop and rm -f are not held up by a stopped exec"
        assert clis[-1].wait(30) == 137, "the stopped exec ends with its container"
    finally:
        for cli in clis:
            cli.kill()
            cli.wait()


def _rest_exec_in_window(unix: Client, container: str) -> str:
    """One REST exec with a 2 s deadline while the stopper lurks: "caught" if it never started."""
    started = time.monotonic()
    status, result = unix.request(
        "POST", "/prodng/exec", {"name": container, "command": ["probe", "true"], "timeout": 2}
    )
    assert time.monotonic() - started < 10, "the deadline holds, before or after the exec"
    assert (status, result.get("exit_code")) in ((503, None), (200, 0)), "0: the stopper let it go on"
    assert status == 200 or "did not start in time" in result["error"]
    return "caught" if status == 503 else "ran"


def test_rest_exec_ends_at_its_deadline(prodng: Prodng, probe_template: str, container: str, unix: Client) -> None:
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    started = time.monotonic()
    status, result = unix.request(
        "POST", "/prodng/exec", {"name": container, "command": ["probe", "signals", "-", "TERM"], "timeout": 1}
    )
    took = time.monotonic() - started
    assert status == 200 and result["exit_code"] == 124 and "signals=ready" in result["stdout"], result
    assert took < 1 + 0.5 + 3 + 3, "TERM at the deadline, ignored; the helper killed 3 s later"
    status, result = unix.request(
        "POST", "/prodng/exec", {"name": container, "command": ["probe", "true"], "timeout": -1}
    )
    assert status == 400 and "timeout" in result["error"]
    cli = prodng("exec", "--timeout", "1", container, "--", "probe", "sleep", "100", check=False)
    assert cli.returncode == 124, "the CLI too, when asked"


def test_proc_1_exe_is_no_host_file(prodng: Prodng, probe_template: str, container: str) -> None:
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    out = prodng(
        "exec", container, "--", "probe", "readlink", "/proc/1/exe", ";", "open", "/proc/1/exe", "w", check=False
    )
    seen = facts(out.stdout.splitlines()[0])
    assert seen["target"].startswith("/memfd:prodng-shim"), "a sealed copy, no host path"
    assert "open=ok" not in out.stdout, "never writable"
    running = prodng.popen("exec", container, "--", "probe", "sleep", "3")
    # Once the command runs: before its execve, the helper's forked child is a prodng-exec too.
    prodng.wait_for(lambda: _in_container(container, b"probe\0sleep\x003\0"), what="the command")
    helpers = _exec_helpers(container)
    assert helpers, "the helper waits for its command"
    for pid in helpers:  # what a container could read of it: no name, path, pid or variable of the host
        assert os.readlink(f"/proc/{pid}/exe").startswith("/memfd:prodng-exec")
        assert Path(f"/proc/{pid}/cmdline").read_bytes().strip(b"\0") == b""
        assert Path(f"/proc/{pid}/environ").read_bytes() == b""
        fds = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
        assert fds <= {3}, f"no stdio, nothing but the report pipe until the command runs: {fds}"
    assert running.wait(30) == 0


def _in_container(container: str, cmdline: bytes) -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if (
                container in Path(f"/proc/{pid}/cgroup").read_text()
                and Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline
            ):
                return True
        except OSError:
            continue
    return False


def _exec_helpers(container: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if "prodng-exec" in exe and container in cgroup:
            found.append(int(pid))
    return found


def operator_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run argv with a fresh pty as its controlling terminal, as an operator's shell would; returns its status,
    what it showed, and what is left in the terminal's input afterwards (what the operator's shell would run)."""
    import fcntl
    import termios

    leader, follower = os.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        argv,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
        preexec_fn=take_terminal,
    )
    status = proc.wait(60)
    shown = b""
    while select.select([leader], [], [], 0.2)[0]:
        shown += os.read(leader, 65536)
    os.set_blocking(follower, False)
    try:
        left = os.read(follower, 4096)
    except BlockingIOError:
        left = b""
    os.close(leader)
    os.close(follower)
    return status, shown, left


def test_tiocsti_reaches_nothing_of_the_operator(
    prodng: Prodng, probe_template: str, container: str, probe_binary: Path
) -> None:
    env = {**prodng.env, "TERM": "xterm"}
    _, _, left = operator_terminal([str(probe_binary), "tiocsti", "echo pwned\\n"], env)
    assert left == b"echo pwned\n", "positive control: TIOCSTI into one's controlling terminal works"
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    cli = [sys.executable, "-m", "prodng", "exec"]
    for flags in ([], ["-i"], ["-it"]):
        status, shown, left = operator_terminal(
            [*cli, *flags, container, "--", "probe", "tiocsti", "echo pwned\\n"], env
        )
        assert left == b"", f"exec {flags}: nothing pushed into the operator's terminal ({shown!r})"
    status, shown, _ = operator_terminal(
        [*cli, "-it", container, "--", "probe", "setsid-check", ";", "isatty", "0"], env
    )
    assert status == 0 and b"ctty=yes" in shown and b"tty=/dev/pts/0" in shown, "a pty of the container's own"


def test_kill_0_stays_in_the_container(prodng: Prodng, probe_template: str, container: str) -> None:
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    cli = subprocess.Popen(
        [sys.executable, "-m", "prodng", "exec", container, "--", "probe", "sleep", "1", "&&", "kill0", "KILL"],
        env=prodng.env,
        stdout=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    sibling = subprocess.Popen(["sleep", "60"], process_group=cli.pid)  # the operator's shell, in the same group
    try:
        out, _ = cli.communicate(timeout=60)
        assert cli.returncode == 137, "the command killed its own group, and only that"
        assert "kill0 sig=KILL" in out and sibling.poll() is None, "the caller's process group is untouched"
    finally:
        sibling.kill()
        sibling.wait()


def test_rest_exec_output_outlives_nothing(prodng: Prodng, probe_template: str, container: str, unix: Client) -> None:
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    started = time.monotonic()
    status, result = unix.request(
        "POST", "/prodng/exec", {"name": container, "command": ["probe", "writer", "-", "30"]}
    )
    assert status == 200 and time.monotonic() - started < 10, "the call ends with the command, not with its daemon"
    assert "writer=ok" in str(result["stdout"])  # type: ignore[index]
    writer = facts(str(result["stdout"]).splitlines()[0])["pid"]  # type: ignore[index]
    agent_pid = _agent_pid(prodng)
    # From fd 3: 0-2 are what pytest gave the agent.
    held = [os.readlink(f"/proc/{agent_pid}/fd/{fd}") for fd in os.listdir(f"/proc/{agent_pid}/fd") if int(fd) > 2]
    assert not [h for h in held if h.endswith("(deleted)") or h.startswith("/tmp/")], held
    gone = prodng.wait_for(
        lambda: (
            writer not in prodng("exec", container, "--", "probe", "ls", "/proc").stdout.split("entries=")[1].split(",")
        ),
        what="the writer to find nowhere left to write",
    )
    assert gone


def _agent_pid(prodng: Prodng) -> int:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if b"agent" in cmdline and f"PRODNG_ROOT={prodng.root}".encode() in environ and b"prodng" in cmdline:
            return int(pid)
    raise AssertionError("no agent process")


def test_exec_sh_under_a_pty_and_output_escaped(prodng: Prodng, template: str, container: str) -> None:
    prodng("run", template, "--name", container, "--exec", "sleep 100000")
    status, shown = under_pty(prodng, "exec", "-it", container, "--", "sh", send=b"echo $((6*7))\nexit 3\n")
    assert status == 3 and b"42" in shown, shown
    status, shown = under_pty(prodng, "exec", container, "--", "printf", "a\\033]0;owned\\007b\\n")
    assert status == 0 and b"\x1b]0" not in shown and b"a\\x1b]0;owned\\x07b" in shown, shown
    piped = prodng("exec", container, "--", "printf", "a\\033b")
    assert piped.stdout == "a\x1bb", "not a terminal: the bytes as they are"


class QuickClient(Client):
    """A client that gives up after 5 s: a starved agent fails the test instead of hanging it."""

    def connection(self) -> http.client.HTTPConnection:
        conn = super().connection()
        conn.timeout = 5
        return conn


FLOOD = """
import resource, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (2048, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
for _ in range(int(sys.argv[2])):
    try:
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5))
    except OSError as err:
        print("refused", err, flush=True)
print("holding", len(held), flush=True)
time.sleep(120)
"""


def test_idle_connections_from_a_local_user_starve_no_one(prodng: Prodng, unix: Client) -> None:
    flood = as_nobody(FLOOD, str(PORT), "1100")
    try:
        assert flood.stdout and "holding" in flood.stdout.readline(), "1,100 idle connections opened"
        quick_unix = QuickClient(Paths(prodng.root), unix=prodng.root / "agent.sock")
        https = QuickClient(Paths(prodng.root))
        for client in (quick_unix, https, quick_unix, https):
            started = time.monotonic()
            status, _ = client.request("GET", "/prodng/ls")
            # Starved, it never answered; a connect may still wait for the kernel's SYN retries (1 s,
            # then 3 s) while the agent sheds the flood from its accept queue on a loaded host.
            assert status == 200 and time.monotonic() - started < 10, "answered"
    finally:
        flood.kill()
        flood.wait()


def test_exec_user_stdin_and_errors(prodng: Prodng, probe_template: str, container: str) -> None:
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    # The probe root is only root's to enter (pytest's 0700 tmp dirs): another group, same uid.
    assert "gid=4242 " in prodng("exec", "-u", "0:4242", container, "--", "probe", "uid").stdout
    fed = subprocess.run(
        [sys.executable, "-m", "prodng", "exec", "-i", container, "--", "probe", "cat", "/dev/stdin"],
        env=prodng.env,
        input="from the operator\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (fed.returncode, fed.stdout) == (0, "from the operator\n"), fed.stderr
    ours = resource.getrlimit(resource.RLIMIT_NOFILE)  # the CLI inherits it; the exec gets the init's instead
    resource.setrlimit(resource.RLIMIT_NOFILE, (777, ours[1]))
    try:
        seen = prodng("exec", container, "--", "probe", "cat", "/proc/self/limits").stdout
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, ours)
    assert "Max open files" in seen and " 777 " not in seen, "the caller's limits stay with the caller"
    head = f"{shlex.quote(sys.executable)} -m prodng exec {container} -- probe cat /dev/zero | head -c 10 | wc -c"
    piped = subprocess.run(["sh", "-c", head], env=prodng.env, capture_output=True, text=True, timeout=30)
    assert piped.stdout.strip() == "10", "an endless writer ends when its reader does (EPIPE)"
    closed = prodng("exec", container, "--", "probe", "cat", "/dev/stdin")
    assert closed.stdout == "", "without -i the command's stdin is empty"
    missing = prodng("exec", container, "--", "nosuch", check=False)
    assert missing.returncode == 3 and missing.stderr.count("\n") == 1 and "nosuch" in missing.stderr
    bad = prodng("exec", "-u", "root", container, "--", "probe", "true", check=False)
    assert bad.returncode == 2 and "invalid --user" in bad.stderr


def test_the_callers_groups_and_umask_stay_the_callers(prodng: Prodng, probe_template: str, container: str) -> None:
    """An operator's shell (or the agent) may have supplementary groups (adm, docker) and any umask: neither
    reaches the service or what exec runs, not even for a root service with no groups of its own."""
    caller = ["setpriv", "--groups", "4,27,100", "sh", "-c", 'umask 0; exec "$@"', "-", sys.executable, "-m", "prodng"]

    def as_caller(*args: str) -> str:
        done = subprocess.run([*caller, *args], env=prodng.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    as_caller("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    for seen in (
        as_caller("exec", container, "--", "probe", "cat", "/proc/1/status"),
        as_caller("exec", container, "--", "probe", "cat", "/proc/self/status"),
        as_caller("exec", "-u", "0:4242", container, "--", "probe", "cat", "/proc/self/status"),
    ):
        status = dict(line.split(":\t", 1) for line in seen.splitlines() if ":\t" in line)
        assert status["Groups"].strip() == "" and status["Umask"] == "0022", status


def test_exec_i_ends_with_its_command_whatever_holds_its_stdin(
    prodng: Prodng, probe_template: str, container: str
) -> None:
    """The command leaves a daemon holding its stdin and never reading it: the CLI, still feeding it the
    operator's input, blocked in write() for ever (a Ctrl-C only went on to the helper, gone already)."""
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    cli = f"{shlex.quote(sys.executable)} -m prodng exec -i {container} -- probe writer /dev/null 60"
    started = time.monotonic()
    fed = subprocess.run(["sh", "-c", f"yes | {cli}"], env=prodng.env, capture_output=True, text=True, timeout=60)
    assert fed.returncode == 0 and "writer=ok" in fed.stdout, fed.stderr
    assert time.monotonic() - started < 20, "the CLI ends when the command does"
    big = bytes(range(256)) * 8192  # 2 MiB: many times a pipe's room, fed as the command takes it
    cat = [sys.executable, "-m", "prodng", "exec", "-i", container, "--", "probe", "cat", "/dev/stdin"]
    copied = subprocess.run(cat, env=prodng.env, input=big, capture_output=True, timeout=60)
    assert copied.returncode == 0 and copied.stdout == big


def test_ctrl_c_at_the_cli_reaches_the_command(prodng: Prodng, probe_template: str, container: str) -> None:
    prodng("run", probe_template, "--name", container, "--exec", "probe sleep 100000")
    cli = prodng.popen("exec", container, "--", "probe", "signals", "INT")
    assert cli.stdout and "signals=ready" in cli.stdout.readline()
    cli.send_signal(signal.SIGINT)
    assert cli.stdout.readline().strip() == "signal=INT", "passed on, and the command chose to live"
    cli.send_signal(signal.SIGTERM)
    assert cli.wait(30) == 128 + signal.SIGTERM, "the command's end is the CLI's"
