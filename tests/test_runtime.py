"""Hermetic services for real, as root: namespaces, pivot_root, cgroups, supervision, lifecycle.

Every service and exec here is the static probe (tests/probe/probe.c) in the `probe` template: nothing of
Debian is needed, a template costs milliseconds and each check names the exact errno it expects.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from probe_helpers import chain, facts, results

from conftest import REPO, Prodng

pytestmark = [pytest.mark.root]

SLEEPER = "probe sleep 100000"


def _alive(pid: int) -> bool:
    """Running: a zombie has ended, however late its parent (here PID 1) reaps it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def _run(prodng: Prodng, template: str, name: str, command: str, *extra: str) -> dict[str, object]:
    prodng("run", template, "none", "--name", name, "--exec", command, *extra)
    return prodng.info(name)


def test_service_runs_logs_and_leaves_nothing(prodng: Prodng, probe_template: str, container: str) -> None:
    info = _run(
        prodng, probe_template, container, "probe hostname ; getenv GREETING ; sleep 100000", "-e", "GREETING=hi there"
    )
    assert info["state"] == "running" and info["hermetic"] is True
    pid, monitor = int(info["pid"]), int(info["monitor_pid"])  # type: ignore[call-overload]
    assert _alive(pid) and _alive(monitor)
    rows = prodng.json("ls")
    assert {"name": container, "state": "running"}.items() <= next(r for r in rows if r["name"] == container).items()  # type: ignore[union-attr, attr-defined, index]
    prodng.wait_for(lambda: "hi there" in prodng("logs", container).stdout, what="output in the log")
    assert prodng("logs", container).stdout == f"hostname={container}\nhi there\n"
    assert prodng("logs", container, "--tail", "1").stdout == "hi there\n"
    cgroup_dirs = [Path(p) for p in info["cgroups"]]  # type: ignore[attr-defined]
    assert all(d.is_dir() for d in cgroup_dirs)
    stopped = prodng.json("stop", container, "-t", "5")
    assert stopped["state"] == "exited"  # type: ignore[index]
    assert not _alive(pid) and not _alive(monitor)
    prodng("rm", container)
    assert not any(d.exists() for d in cgroup_dirs)
    assert not (prodng.root / "pool" / "containers" / container).exists()
    assert not (prodng.root / "state" / container).exists()
    assert container not in _mounts()
    assert prodng("info", container, check=False).returncode == 3


def _host_file(*candidates: str) -> tuple[str, str]:
    """The first of candidates this kernel has, and what writing it from inside must give (ENOENT if none)."""
    present = next((c for c in candidates if Path(c).exists()), candidates[0])
    return present, ("EROFS" if Path(present).exists() else "ENOENT")


def test_isolation_inside(prodng: Prodng, probe_template: str, container: str) -> None:
    _run(prodng, probe_template, container, SLEEPER)
    before = _mounts()
    sysrq, sysrq_expected = _host_file("/proc/sysrq-trigger")
    sys_file, sys_expected = _host_file("/sys/kernel/uevent_helper", "/sys/kernel/rcu_expedited", "/sys/power/state")
    # Opened for writing, never written: a regression cannot touch the host.
    script = chain(
        "comm= read /proc/1/comm",
        "fds= ls /proc/1/fd",
        "cmdline= read /proc/1/cmdline",
        "caps",
        "procsys= open /proc/sys/kernel/hostname w",
        f"sysrq= open {sysrq} w",
        f"sys= open {sys_file} w",
        "mknod /tmp/null c 1 3",
        "mount-test /tmp/mnt",
        "unshare-user",
        "keys= read /proc/keys",
        "hostname",
        f"repo= stat {REPO}",
        "escape= chroot-escape /.prodng-template.json",
        f"escape_repo= chroot-escape {REPO}",
    )
    out = prodng("exec", container, "--", "probe", *script, check=False).stdout
    checks = results(out)
    assert checks["comm"]["text"] == "prodng-init\n"
    assert checks["fds"]["entries"] == "0,1,2"
    cmdline = checks["cmdline"]["text"].split("\0")
    assert str(prodng.root) not in checks["cmdline"]["text"] and "/" not in cmdline[0], cmdline
    caps = checks["CapInh"]
    bounding = int(caps["CapBnd"], 16)
    for cap, number in {
        "SYS_ADMIN": 21,
        "SYS_MODULE": 16,
        "SYS_PTRACE": 19,
        "NET_ADMIN": 12,
        "DAC_READ_SEARCH": 2,
        "MKNOD": 27,
        "SYS_RAWIO": 17,
    }.items():
        assert not bounding & (1 << number), f"CapBnd still has {cap}"
    assert bounding & (1 << 10), "NET_BIND_SERVICE is in the safe set"
    assert caps["NoNewPrivs"] == "1" and caps["Seccomp"] == "2"
    assert checks["procsys"]["procsys"] == "EROFS"
    assert checks["sysrq"]["sysrq"] == sysrq_expected and checks["sys"]["sys"] == sys_expected
    assert checks["mknod"]["mknod"] == "EPERM" and checks["mount-test"]["mount-test"] == "EPERM"
    assert checks["unshare-user"]["unshare-user"] == "EPERM"
    assert checks["keys"] == {"keys": "ok", "bytes": "0", "text": ""}, "/proc/keys is masked"
    assert checks["hostname"]["hostname"] == container
    assert checks["repo"]["repo"] == "ENOENT"
    assert checks["escape"] == {"escape": "ok", "path": "exists"}, "chroot escape ends in the container's root"
    assert checks["escape_repo"] == {"escape_repo": "ok", "path": "ENOENT"}
    # Nothing the container did shows on the host (other tests on the machine may mount their own pools).
    appeared = set(_mounts().splitlines()) - set(before.splitlines())
    assert not [line for line in appeared if "probe-mount" in line or str(prodng.root) in line], appeared


def test_limits_fork_bomb_and_memory_hog(prodng: Prodng, probe_template: str, container: str) -> None:
    info = _run(prodng, probe_template, container, SLEEPER, "--pids", "20", "--memory", "48M", "--cpus", "0.5")
    limits = info["limits"]
    assert isinstance(limits, dict) and (limits["memory"], limits["pids"], limits["cpus"]) == (48 * 1024**2, 20, 0.5)
    # Holding its children for a second, so the count is taken while the bomb is at its limit.
    bomb = prodng.popen("exec", container, "--", "probe", "forkbomb", "60", "2")
    assert bomb.stdout is not None
    line = bomb.stdout.readline()
    at_limit = prodng.info(container)["stats"]["pids"]  # type: ignore[index]
    bomb.communicate(timeout=30)
    report = facts(line)
    assert report["forkbomb"] == "EAGAIN" and 15 <= int(report["forked"]) < 20, line
    assert at_limit == 20, "the container sat at its pids limit, not above"
    assert prodng.info(container)["stats"]["pids"] <= 2, "the bomb's children went with it"  # type: ignore[index]
    hog = prodng("exec", container, "--", "probe", "memhog", "256", check=False, timeout=60)
    reached = [int(m) for m in re.findall(r"mb=(\d+)", hog.stdout)]
    assert hog.returncode != 0 and "memhog=ok" not in hog.stdout and reached and max(reached) <= 48, hog.stdout
    assert prodng.info(container)["state"] == "running", "only the hog dies, not the container"
    assert subprocess.run(["true"], timeout=5).returncode == 0  # the host stays responsive


COUNTER = "probe ticker /tmp/count 49"  # 49 sleeping children, a counter written every 20 ms


def test_freeze_stops_fifty_processes_and_thaw_resumes(prodng: Prodng, probe_template: str, container: str) -> None:
    info = _run(prodng, probe_template, container, COUNTER)
    count = Path(f"/proc/{info['pid']}/root/tmp/count")
    prodng.wait_for(
        lambda: count.exists() and prodng.info(container)["stats"]["pids"] >= 50,  # type: ignore[index]
        what="50 processes",
    )
    assert prodng.json("freeze", container)["state"] == "frozen"  # type: ignore[index]
    assert prodng.json("ls")[0]["state"] == "frozen" or any(  # type: ignore[index]
        r["state"] == "frozen" for r in prodng.json("ls") if r["name"] == container
    )  # type: ignore[union-attr, index]
    frozen_at = count.read_text()
    time.sleep(0.5)
    assert count.read_text() == frozen_at, "nothing runs while frozen"
    assert prodng("freeze", container).returncode == 0  # freezing twice is harmless
    assert prodng.json("thaw", container)["state"] == "running"  # type: ignore[index]
    prodng.wait_for(lambda: count.read_text() != frozen_at, 5, what="the counter to move again")


def test_on_failure_restarts_with_backoff_without_prodng(prodng: Prodng, probe_template: str, container: str) -> None:
    prodng("run", probe_template, "--name", container, "--restart", "on-failure:3", "--exec", "probe exit 3 attempt")
    # No prodng command runs while the monitor restarts the service.
    time.sleep(2.5)
    info = prodng.wait_for(lambda: (i := prodng.info(container))["state"] == "exited" and i, 20, "restarts to end")
    assert info["restarts"] == 3 and info["exit_code"] == 3
    log = prodng("logs", container).stdout
    assert log.count("attempt") == 4
    delays = [int(d) for d in re.findall(r"restart \d+ in (\d+) ms", log)]
    assert delays == sorted(delays) and delays[-1] > delays[0], delays


def test_always_restart_survives_a_killed_service(prodng: Prodng, probe_template: str, container: str) -> None:
    info = _run(prodng, probe_template, container, SLEEPER, "--restart", "always")
    first = int(info["pid"])  # type: ignore[call-overload]
    os.kill(first, signal.SIGKILL)  # the init dies; the monitor must bring it back
    again = prodng.wait_for(
        lambda: (i := prodng.info(container))["state"] == "running" and i["pid"] != first and i, 10, "a restart"
    )
    assert again["restarts"] == 1


def test_stop_escalates_to_kill(prodng: Prodng, probe_template: str, container: str) -> None:
    info = _run(prodng, probe_template, container, "probe signals TERM")  # TERM is caught and logged, not obeyed
    prodng.wait_for(lambda: "signals=ready" in prodng("logs", container).stdout, what="the handlers")
    started = time.monotonic()
    stopped = prodng.json("stop", container, "-t", "1")
    assert time.monotonic() - started >= 1
    assert stopped["state"] == "exited" and stopped["exit_code"] == 128 + signal.SIGKILL  # type: ignore[index]
    assert "signal=TERM" in prodng("logs", container).stdout, "TERM came first"
    assert not _alive(int(info["pid"]))  # type: ignore[call-overload]


def test_kill_with_signal_and_start_again(prodng: Prodng, probe_template: str, container: str) -> None:
    pid = _run(prodng, probe_template, container, "probe signals HUP")["pid"]
    prodng.wait_for(lambda: "signals=ready" in prodng("logs", container).stdout, what="the handlers")
    prodng("kill", container, "-s", "HUP")
    prodng.wait_for(lambda: "signal=HUP" in prodng("logs", container).stdout, what="the HUP to arrive")
    assert prodng.info(container)["pid"] == pid, "HUP reached the service, which kept running"
    assert prodng.json("kill", container)["state"] == "exited"  # type: ignore[index]
    assert prodng.json("start", container)["state"] == "running"  # type: ignore[index]


def test_binds_are_read_only_unless_asked(prodng: Prodng, probe_template: str, container: str, tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "data").write_text("shared")
    _run(prodng, probe_template, container, SLEEPER, "--bind", f"{ro}:/srv/ro", "--bind", f"{rw}:/srv/rw:rw")
    assert prodng("exec", container, "--", "probe", "cat", "/srv/ro/data").stdout == "shared"
    refused = prodng("exec", container, "--", "probe", "write", "/srv/ro/new", "x", check=False)
    assert refused.returncode == 1 and refused.stdout == "write=EROFS bytes=0\n"
    assert prodng("exec", container, "--", "probe", "write", "/srv/rw/out", "written").stdout == "write=ok bytes=7\n"
    assert (rw / "out").read_text() == "written" and not (ro / "new").exists()


def test_concurrent_verbs_on_one_container(prodng: Prodng, probe_template: str, container: str) -> None:
    _run(prodng, probe_template, container, SLEEPER)
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda args: prodng(*args, check=False),
                [("freeze", container), ("kill", container), ("rm", "-f", container), ("rm", "-f", container)],
            )
        )
    for result in results:
        assert "Traceback" not in result.stderr and result.stderr.count("\n") <= 1, result.stderr
        assert result.returncode in (0, 3, 4), result.stderr
    assert sum(r.returncode == 0 for r in results[2:]) == 1, "exactly one rm wins"
    assert prodng("info", container, check=False).returncode == 3


def test_bad_input(prodng: Prodng, probe_template: str, container: str) -> None:
    template = probe_template

    def fails(code: int, *args: str, says: str = "") -> None:
        result = prodng(*args, check=False)
        assert result.returncode == code, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("prodng: error:"), result.stderr
        assert says in result.stderr

    fails(3, "info", "nosuch", says="no such container")
    fails(2, "run", template, "--name", "a/b", "--exec", "true", says="invalid container name")
    fails(2, "run", template, "--name", "x" * 65, "--exec", "true")
    fails(2, "run", template, "--name", "..", "--exec", "true")
    fails(2, "run", template, "--name", container, "--exec", "true", "--memory", "0", says="positive")
    fails(2, "run", template, "--name", container, "--exec", "true", "--pids", "-1")
    fails(2, "run", template, "--name", container, "--exec", "true", "--cpus", "0")
    fails(2, "run", template, "--name", container, "--exec", "true", "dhcp6", says="unknown network mode")
    fails(3, "run", "nosuch", "--name", container, "--exec", "true", says="unknown template")
    fails(2, "run", template, "--name", container, says="no service to run")
    fails(2, "run", template, "--name", container, "--exec", "/no/such/binary", says="exec /no/such/binary")
    fails(
        2,
        "run",
        template,
        "--name",
        container,
        "--exec",
        "true",
        "--workdir",
        "/no/such/dir",
        says="chdir /no/such/dir",
    )
    assert not (prodng.root / "state" / container).exists(), "a failed run leaves no container"
    assert not (prodng.root / "pool" / "containers" / container).exists()
    _run(prodng, template, container, SLEEPER)
    fails(4, "run", template, "--name", container, "--exec", "true", says="already exists")
    fails(2, "kill", container, "-s", "NOPE", says="unknown signal")
    fails(3, "exec", container, "--", "/no/such/binary", says="No such file")
    fails(4, "rm", container, says="is running")
    fails(4, "start", container, says="already running")
    prodng("stop", container, "-t", "0")
    fails(4, "freeze", container, says="not running")
    fails(4, "exec", container, "--", "true", says="not running")


def test_killed_cli_leaves_nothing_the_next_command_cannot_clean(
    prodng: Prodng, probe_template: str, container: str
) -> None:
    for delay in (0.05, 0.15, 0.3, 0.6):
        proc = prodng.popen("run", probe_template, "--name", container, "--exec", SLEEPER)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        prodng("rm", "-f", container, check=False)
        assert prodng("info", container, check=False).returncode == 3
        assert not (prodng.root / "pool" / "containers" / container).exists()
        assert not list(Path("/sys/fs/cgroup").glob(f"*/**/prodng/{container}@*"))


def test_reboot_shows_stopped(prodng: Prodng, probe_template: str, container: str) -> None:
    _run(prodng, probe_template, container, SLEEPER)
    prodng("stop", container, "-t", "0")
    record = prodng.root / "state" / container / "record.json"
    record.write_text(record.read_text().replace('"boot_id": "', '"boot_id": "before-reboot-'))
    info = prodng.info(container)
    assert info["state"] == "exited" and info["error"] == "host rebooted"
    assert prodng.json("start", container)["state"] == "running"  # type: ignore[index]


def test_events_without_an_agent(prodng: Prodng, probe_template: str, container: str) -> None:
    follower = prodng.popen("events")
    try:
        time.sleep(0.5)
        _run(prodng, probe_template, container, SLEEPER)
        prodng("freeze", container)
        prodng("thaw", container)
        prodng("rm", "-f", container)
        seen: list[str] = []
        assert follower.stdout is not None
        while "removed" not in seen:
            event = json.loads(follower.stdout.readline())
            if event["name"] == container:
                seen.append(event["event"])
        assert seen[:2] == ["created", "started"] and {"frozen", "thawed", "died", "removed"} <= set(seen)
    finally:
        follower.kill()
        follower.wait()
