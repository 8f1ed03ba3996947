"""The probe itself (tests/probe/probe.c), on the host: the tool the container tests trust must tell the truth."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from probe_helpers import facts, findings, results


def probe(binary: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=30, **kwargs)  # type: ignore[call-overload, no-any-return]


def test_exit_status_echo_and_chains(probe_binary: Path) -> None:
    assert probe(probe_binary, "true").returncode == 0
    assert probe(probe_binary, "false").returncode == 1
    assert probe(probe_binary, "echo", "a b", "c").stdout == "a b c\n"
    exited = probe(probe_binary, "exit", "3", "attempt")
    assert (exited.returncode, exited.stdout) == (3, "attempt\n")
    chain = probe(probe_binary, "echo", "one", "&&", "false", "&&", "echo", "never", ";", "echo", "after")
    assert (chain.returncode, chain.stdout) == (0, "one\nafter\n"), "; and && as in sh"
    assert probe(probe_binary, "true", "&&", "false").returncode == 1, "the status of the last one run"
    labelled = probe(probe_binary, "gone=", "open", "/nonexistent", "r", ";", "root=", "ls", "/")
    checks = results(labelled.stdout)
    assert checks["gone"] == {"gone": "ENOENT"} and "proc" in checks["root"]["entries"].split(",")


def test_bad_usage_is_one_line_and_exit_2(probe_binary: Path) -> None:
    missing = probe(probe_binary, "exit")
    assert missing.returncode == 2 and missing.stderr == "probe: exit: usage: probe exit N [TEXT]: print TEXT, exit N\n"
    unknown = probe(probe_binary, "nosuch")
    assert unknown.returncode == 2 and unknown.stderr.startswith("probe: unknown subcommand nosuch\n")
    assert "racer" in unknown.stderr and "forkbomb" in unknown.stderr, "usage lists the subcommands"


def test_isatty_tells_a_pty_from_a_pipe(probe_binary: Path) -> None:
    leader, follower = os.openpty()
    try:
        tty = probe(probe_binary, "isatty", "0", stdin=follower)
    finally:
        os.close(leader)
        os.close(follower)
    assert tty.returncode == 0 and re.fullmatch(r"isatty=ok fd=0 tty=/dev/pts/\d+\n", tty.stdout), tty.stdout
    piped = probe(probe_binary, "isatty", "0")
    assert piped.returncode == 1 and piped.stdout == "isatty=ENOTTY fd=0\n"
    assert piped.stderr == "probe: isatty: fd 0 is not a terminal\n"


def test_caps_are_those_of_the_caller(probe_binary: Path) -> None:
    ours = dict(re.findall(r"^(\w+):\s*(\S+)$", Path("/proc/self/status").read_text(), re.M))
    seen = facts(probe(probe_binary, "caps").stdout)
    assert set(seen) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"}
    assert seen["CapBnd"] == ours["CapBnd"] and seen["NoNewPrivs"] == ours["NoNewPrivs"]
    assert seen["Seccomp"] == ours["Seccomp"]


def test_forkbomb_forks_and_reaps(probe_binary: Path) -> None:
    result = probe(probe_binary, "forkbomb", "5")
    assert result.returncode == 0 and result.stdout == "forkbomb=ok forked=5 wanted=5\n"
    pid = probe(probe_binary, "pid")
    assert set(facts(pid.stdout)) == {"pid", "ppid", "sid", "pgid"}
    assert int(facts(pid.stdout)["ppid"]) == os.getpid()


def test_io_uring_reports_what_the_kernel_says(probe_binary: Path) -> None:
    switch = Path("/proc/sys/kernel/io_uring_disabled")
    disabled = int(switch.read_text()) if switch.exists() else 0
    result = probe(probe_binary, "io_uring")
    if disabled == 0:
        assert (result.returncode, result.stdout) == (0, "io_uring=ok\n")
    elif disabled == 2:
        assert (result.returncode, result.stdout) == (1, "io_uring=EPERM\n")
    assert re.fullmatch(r"io_uring=(ok|E[A-Z]+)\n", result.stdout)


def test_files_and_errno_names(probe_binary: Path, tmp_path: Path) -> None:
    target = tmp_path / "f"
    assert probe(probe_binary, "write", str(target), "hello").stdout == "write=ok bytes=5\n"
    assert probe(probe_binary, "cat", str(target)).stdout == "hello"
    assert facts(probe(probe_binary, "stat", str(target)).stdout)["size"] == "5"
    busy = probe(probe_binary, "open", str(probe_binary), "w")  # running: the kernel says ETXTBSY
    assert (busy.returncode, busy.stdout) == (1, "open=ETXTBSY\n")
    filled = probe(probe_binary, "fill", str(tmp_path / "big"), "2")
    assert filled.stdout.splitlines()[-1] == f"fill=ok bytes={2 * 1024 * 1024}"
    hog = probe(probe_binary, "memhog", "20")
    assert hog.returncode == 0 and hog.stdout.splitlines()[-1] == "memhog=ok mb=20"


@pytest.mark.root
def test_racer_catches_a_process_that_is_not_its_own(probe_binary: Path, tmp_path: Path) -> None:
    """Positive control for the exec-race tests: a racer in a chroot with its own /proc, processes from outside.

    What it finds here is what an exec path must never show to a container: a host exe, host fds, a secret in
    the environment.
    """
    jail = tmp_path / "jail"
    (jail / "proc").mkdir(parents=True)
    shutil.copy(probe_binary, jail / "probe")
    script = (
        f"mount -t proc proc {jail}/proc; chroot {jail} /probe racer 6 --marker S3CRET > {tmp_path}/out & "
        f"for i in $(seq 500); do grep -q ready {tmp_path}/out 2>/dev/null && break; sleep 0.01; done; "
        f"for i in 1 2 3 4 5 6 7 8; do PROBE_SECRET=S3CRET {probe_binary} sleep 0.3; done; wait"
    )
    subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", script],
        check=True,
        timeout=30,
    )
    out = (tmp_path / "out").read_text()
    summary = facts(out.splitlines()[-1])
    assert out.splitlines()[-1].startswith("racer: ")
    assert int(summary["seen"]) >= 3 and int(summary["environ"]) >= 3, out
    assert int(summary["host_exe"]) >= 3 and int(summary["host_fds"]) >= 3, out
    assert summary["exe_write"] == "0", "a running binary is ETXTBSY"
    exes = {f["exe"] for f in findings(out) if f["kind"] == "exe"}
    assert str(probe_binary) in exes and all(f["where"] == "host" for f in findings(out)), out
    assert any(f["kind"] == "mem" for f in findings(out)), "their memory, open for writing"


@pytest.mark.root
def test_serve_and_connect_in_a_private_network(probe_binary: Path, tmp_path: Path) -> None:
    p, ready = str(probe_binary), tmp_path / "ready"
    # IPv4 only: whether a new network namespace has ::1 depends on the host's sysctl defaults.
    script = (
        f"ip link set lo up; {p} serve 8080 'hello\\nthere' 1 > {ready} & "
        f"for i in $(seq 500); do grep -q serve=ready {ready} && break; sleep 0.01; done; "
        f"{p} connect 127.0.0.1 8080 'GET /'; wait; "
        f"{p} connect 127.0.0.1 8080; {p} udp-send 127.0.0.1 9 x"
    )
    result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True, text=True, timeout=30)
    lines = result.stdout.splitlines()
    assert lines == ["connect=ok read=hello\\x0athere\\x0a", "connect=ECONNREFUSED", "udp-send=ok"], result
    assert facts(lines[0])["read"] == "hello\nthere\n"


@pytest.mark.root
def test_hogs_report_the_limit_that_stopped_them(probe_binary: Path, tmp_path: Path) -> None:
    p = str(probe_binary)
    filled = subprocess.run(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f"mount -t tmpfs -o size=3m probe-fill {tmp_path} && {p} fill {tmp_path}/f 10",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    report = facts(filled.stdout.splitlines()[-1])
    assert filled.returncode == 1 and report["fill"] == "ENOSPC", filled
    assert 2 * 1024**2 <= int(report["bytes"]) <= 3 * 1024**2
    assert filled.stderr.startswith("probe: fill: ") and filled.stderr.count("\n") == 1
    # An unused uid, so that no other process counts against its RLIMIT_NPROC.
    bomb = subprocess.run(
        ["prlimit", "--nproc=5", "setpriv", "--reuid=54321", "--regid=54321", "--clear-groups", p, "forkbomb", "20"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bomb.returncode == 1 and bomb.stdout == "forkbomb=EAGAIN forked=4 wanted=20\n", bomb
