"""The kill-injection harness (issue 17): SIGKILL the CLI at named points (PRODNG_FAULT, prodng/faults.py)
and at random times in run, rm, upgrade and rollback, then check after the next command that every
container is fully present or fully absent and that nothing is left behind."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_payload import built_deb

from prodng.config import Paths
from prodng.container import cgroups
from prodng.faults import POINTS

from conftest import Prodng

pytestmark = pytest.mark.root

SERVICE = "probe sleep 100000"
REPORT: dict[str, int] = {"kills": 0, "points": 0, "violations": 0}


def killed(prodng: Prodng, *args: str, fault: str = "", after: float | None = None) -> int:
    """Run the CLI and SIGKILL it: at the named point, or `after` seconds (if it is still running)."""
    env = {**prodng.env, "PRODNG_FAULT": fault} if fault else prodng.env
    child = subprocess.Popen(
        [sys.executable, "-m", "prodng", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if after is not None:
        time.sleep(after)
        child.send_signal(signal.SIGKILL)
    code = child.wait(timeout=120)
    if code == -signal.SIGKILL:
        REPORT["kills"] += 1
    return code


def violations(prodng: Prodng, names: list[str]) -> list[str]:
    """The invariants, read from disk and the kernel after a command has run."""
    paths = Paths(prodng.root)
    found = []
    listed = {row["name"]: row for row in prodng.json("ls")}  # type: ignore[union-attr]
    records = {p.parent.name for p in paths.state.glob("*/record.json")}
    if set(listed) != records:
        found.append(f"ls shows {sorted(listed)}, records are {sorted(records)}")
    for directory in paths.state.iterdir():
        if not directory.name.startswith(".") and directory.name not in records:
            found.append(f"state/{directory.name} has no record")
    for root in paths.containers.iterdir():
        base = root.name
        if base.startswith(".") and base.endswith(".previous"):
            owner = base[1:].removesuffix(".previous")
            if not (paths.state / owner / "record.previous.json").exists():
                found.append(f"a previous root without its record: {base}")
        elif base.startswith("."):
            found.append(f"staging left behind: {base}")
        elif base not in records:
            found.append(f"root {base} has no record")
    for name in names:
        leaf_groups = [g for g in cgroups.expected(paths.cgroup_leaf(name)) if os.path.isdir(g)]
        row = listed.get(name)
        if row is None:
            if leaf_groups:
                found.append(f"{name}: absent but its cgroups remain: {leaf_groups}")
            continue
        if not paths.container_root(name).is_dir():
            found.append(f"{name}: recorded without a root")
        if row["state"] in ("running", "frozen") and not leaf_groups:
            found.append(f"{name}: {row['state']} without cgroups")
        if row["state"] not in ("running", "frozen") and leaf_groups:
            found.append(f"{name}: {row['state']} but its cgroups remain")
        if row["state"] == "created":
            found.append(f"{name}: a run left a created container")
        if (paths.state / name / "swap.json").exists():
            found.append(f"{name}: an upgrade journal remains")
    REPORT["violations"] += len(found)
    return found


def test_kill_at_named_points_of_run_and_rm(prodng: Prodng, probe_template: str) -> None:
    names = []
    for point in ("create.dir", "create.root", "run.created", "start.spawned"):
        name = f"crash-run-{point.replace('.', '-')}"
        names.append(name)
        assert killed(prodng, "run", probe_template, "--name", name, "--exec", SERVICE, fault=point) == -9
        REPORT["points"] += 1
        if point.startswith("create."):  # the next command is rm of the name: it repairs, then finds nothing
            assert prodng("rm", "-f", name, check=False).returncode == 3
        else:
            prodng("recover")  # the next command
        assert violations(prodng, names) == []
        prodng("rm", "-f", name, check=False)
        prodng("run", probe_template, "--name", name, "--exec", SERVICE)  # the name is usable again
    for point in ("rm.record", "rm.root"):
        name = names.pop()
        assert killed(prodng, "rm", "-f", name, fault=point) == -9
        REPORT["points"] += 1
        assert name not in {r["name"] for r in prodng.json("ls")}  # type: ignore[union-attr,index]
        prodng("recover")
        assert violations(prodng, [name, *names]) == []
        prodng("run", probe_template, "--name", name, "--exec", SERVICE)
        names.append(name)
    for name in names:
        prodng("rm", "-f", name)
    assert violations(prodng, names) == []


def test_kill_at_random_times_of_run_and_rm(prodng: Prodng, probe_template: str) -> None:
    rng = random.Random(17)
    names = [f"crash-rand-{i}" for i in range(4)]
    for round in range(40):
        name = rng.choice(names)
        present = name in {r["name"] for r in prodng.json("ls")}  # type: ignore[union-attr,index]
        args = ("rm", "-f", name) if present else ("run", probe_template, "--name", name, "--exec", SERVICE)
        killed(prodng, *args, after=rng.uniform(0.02, 0.3))  # a run or rm takes ~0.2-0.4 s
        if round % 3 == 2:
            prodng("recover")
            assert violations(prodng, names) == [], f"round {round}: {args}"
    prodng("recover")
    assert violations(prodng, names) == []
    for name in names:
        prodng("rm", "-f", name, check=False)
    assert violations(prodng, names) == []
    print(f"\ncrash harness (run/rm): {REPORT}")


def test_points_are_named_once() -> None:
    assert len(POINTS) == len(set(POINTS))
    source = "".join(p.read_text() for p in Path(__file__).resolve().parents[1].joinpath("prodng").rglob("*.py"))
    for point in POINTS:
        if point.startswith("swap.") and point not in ("swap.journal", "swap.records", "swap.started"):
            continue  # named by the rename's index
        assert f'faults.point("{point}")' in source, point


def _version_deb(tmp_path: Path, version: str) -> str:
    root = tmp_path / f"crashver-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr/share/crashver").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: crashver\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: crash test\nX-Prodng-Exec: /bin/sleep 100000\n"
    )
    (root / "usr/share/crashver/version").write_text(version)
    out = tmp_path / f"crashver-{version}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(out)], check=True, capture_output=True)
    return str(out)


def _coherent(prodng: Prodng, name: str, want_running: bool = True) -> str:
    """The record's version is the root's version, the service runs, and the previous version matches too."""
    info = prodng.info(name)
    root = prodng.root / "pool" / "containers" / name
    version = (root / "usr/share/crashver/version").read_text()
    assert info["payloads"] == [f"crashver={version}"], (info["payloads"], version)
    assert (info["state"] == "running") == want_running, info["state"]
    previous = prodng.root / "state" / name / "record.previous.json"
    if previous.exists():
        old = json.loads(previous.read_text())["payloads"]
        old_version = prodng.root / "pool" / "containers" / f".{name}.previous" / "usr/share/crashver/version"
        assert old == [f"crashver={old_version.read_text()}"]
    return version


@pytest.mark.slow
def test_kill_upgrade_and_rollback_at_every_point(prodng: Prodng, template: str, tmp_path: Path) -> None:
    name = "crash-upgrade"
    v1, v2 = _version_deb(tmp_path, "1"), _version_deb(tmp_path, "2")
    prodng("run", template, v1, "--name", name)
    prodng("upgrade", name, v2)  # both installs cached from here on
    prodng("rollback", name)
    assert _coherent(prodng, name) == "1"
    points = [p for p in POINTS if p.startswith(("upgrade.", "swap."))]
    for point in points:
        for verb in ("upgrade", "rollback"):
            if verb == "rollback" and point == "upgrade.staged":
                continue
            before = _coherent(prodng, name)
            args = ("upgrade", name, v2 if before == "1" else v1) if verb == "upgrade" else ("rollback", name)
            code = killed(prodng, *args, fault=point)
            if point == "swap.previous" and verb == "upgrade" and code == 0:
                continue
            assert code == -9, (point, verb, code)
            REPORT["points"] += 1
            if point.startswith("swap."):  # before any repair, info says what happened
                assert "interrupted" in str(prodng.info(name)["error"]), (point, verb)
            prodng("recover")
            after = _coherent(prodng, name)
            assert after == before, f"{verb} killed at {point}: not undone"
            assert violations(prodng, [name]) == []
    for _ in range(8):  # and at random times
        before = _coherent(prodng, name)
        killed(prodng, "upgrade", name, v2 if before == "1" else v1, after=random.uniform(0.2, 1.5))
        prodng("recover")
        _coherent(prodng, name)
        assert violations(prodng, [name]) == []
    prodng("rm", "-f", name)
    print(f"\ncrash harness (upgrade/rollback): {REPORT}")


@pytest.mark.slow
def test_concurrent_upgrades_and_rollbacks_keep_a_root(prodng: Prodng, template: str, tmp_path: Path) -> None:
    name = "crash-concurrent"
    v1, v2 = _version_deb(tmp_path, "1"), _version_deb(tmp_path, "2")
    prodng("run", template, v1, "--name", name)
    prodng("upgrade", name, v2)
    for _ in range(3):
        children = [
            prodng.popen("upgrade", name, v1),
            prodng.popen("upgrade", name, v2),
            prodng.popen("rollback", name),
        ]
        for child in children:
            _, err = child.communicate(timeout=180)
            assert child.returncode == 0, err
        _coherent(prodng, name)
        assert violations(prodng, [name]) == []
    prodng("rm", "-f", name)


def _monitor(prodng: Prodng, name: str) -> int:
    pid = prodng.info(name)["monitor_pid"]
    assert isinstance(pid, int) and pid > 0
    return pid


def _events(prodng: Prodng, name: str) -> list[dict[str, object]]:
    lines = (prodng.root / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["name"] == name]


def _if_dead(prodng: Prodng, name: str) -> dict[str, object] | None:
    info = prodng.info(name)
    return info if info["state"] == "dead" else None


def test_killed_monitor_is_dead_and_restartable_ones_come_back(prodng: Prodng, probe_template: str) -> None:
    names = {"crash-mon-always": "always", "crash-mon-no": "no"}
    for name, policy in names.items():
        prodng("run", probe_template, "--name", name, "--restart", policy, "--exec", SERVICE)
    for name in names:  # (a run after the kill would already be the next command)
        os.kill(_monitor(prodng, name), signal.SIGKILL)
    for name in names:
        info = prodng.wait_for(functools.partial(_if_dead, prodng, name), what=f"{name} dead")
        assert info["error"] == "monitor killed" and info["exit_code"] is None and info["pid"] is None
    prodng("recover")  # the next command: buries both, restarts the one whose policy says so
    assert prodng.info("crash-mon-always")["state"] == "running"
    dead = prodng.info("crash-mon-no")
    assert (dead["state"], dead["error"]) == ("dead", "monitor killed")
    for name in names:
        died = [e for e in _events(prodng, name) if e["event"] == "died"]
        assert len(died) == 1 and died[0]["error"] == "monitor killed"
    assert [e["event"] for e in _events(prodng, "crash-mon-always")][-1] == "started"
    assert violations(prodng, list(names)) == []
    for name in names:
        prodng("rm", "-f", name)


def test_reboot_starts_restartable_containers(prodng: Prodng, probe_template: str) -> None:
    """A reboot, simulated: every process gone and the records from another boot id; then the boot unit's command."""
    policies = {"crash-boot-always": "always", "crash-boot-onfail": "on-failure", "crash-boot-no": "no"}
    for name, policy in policies.items():
        prodng("run", probe_template, "--name", name, "--restart", policy, "--exec", SERVICE)
    prodng("run", probe_template, "--name", "crash-boot-stopped", "--restart", "always", "--exec", SERVICE)
    prodng("stop", "-t", "1", "crash-boot-stopped")
    names = [*policies, "crash-boot-stopped"]
    for name in policies:
        os.kill(_monitor(prodng, name), signal.SIGKILL)  # the init dies with it (PR_SET_PDEATHSIG)
    for name in names:
        record_file = prodng.root / "state" / name / "record.json"
        record = json.loads(record_file.read_text())
        record_file.write_text(json.dumps({**record, "boot_id": "00000000-0000-0000-0000-000000000000"}))
    for name in names:
        info = prodng.info(name)
        assert (info["state"], info["error"]) == ("exited", "host rebooted"), name
    unit = (Path(__file__).resolve().parents[1] / "packaging" / "prodng-boot.service").read_text()
    assert "ExecStart=/usr/bin/prodng recover" in unit
    started = prodng.json("recover")
    assert sorted(started["started"]) == ["crash-boot-always", "crash-boot-onfail"]  # type: ignore[index]
    states = {name: prodng.info(name)["state"] for name in names}
    assert states == {
        "crash-boot-always": "running",
        "crash-boot-onfail": "running",
        "crash-boot-no": "exited",
        "crash-boot-stopped": "exited",
    }
    assert violations(prodng, names) == []
    for name in names:
        prodng("rm", "-f", name)


def _slow_deb(tmp_path: Path, name: str, seconds: int) -> str:
    """An install that takes its time."""
    return built_deb(
        tmp_path, name, "X-Prodng-Exec: /bin/sleep 100000\n", {}, {"postinst": f"#!/bin/sh\nsleep {seconds}\n"}
    )


def _install_leftovers(prodng: Prodng) -> list[str]:
    jobs = prodng.root / "state" / ".jobs"
    builds = (prodng.root / "pool" / "cache").glob(".build-*")
    return sorted([p.name for p in jobs.iterdir()] if jobs.is_dir() else []) + sorted(p.name for p in builds)


def _job_groups(prodng: Prodng) -> list[str]:
    listed = (prodng.root / "state" / ".jobs").glob("*/cgroups")
    return [group for path in listed for group in path.read_text().split()]


@pytest.mark.slow
def test_install_killed_with_its_caller_is_swept_and_a_live_one_is_not(
    prodng: Prodng, template: str, tmp_path: Path
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "prodng", "run", template, _slow_deb(tmp_path, "crash-slowpost", 300), "--name", "x1"],
        env=prodng.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    groups = prodng.wait_for(
        lambda: [g for g in _job_groups(prodng) if "install" in g and cgroups.procs((g,))], 120, "the install job"
    )
    child.send_signal(signal.SIGKILL)
    child.wait()
    REPORT["kills"] += 1
    prodng.wait_for(lambda: not cgroups.procs(tuple(groups)), 10, "the job to die with its caller")
    assert _install_leftovers(prodng)
    prodng("recover")  # the next command
    assert _install_leftovers(prodng) == []
    assert not [g for g in groups if os.path.isdir(g)], "job cgroups left"
    assert "x1" not in {r["name"] for r in prodng.json("ls")}  # type: ignore[union-attr,index]
    # A live install is never swept: its caller holds the install's lock.
    live = prodng.popen("run", template, _slow_deb(tmp_path, "crash-livepost", 8), "--name", "crash-live")
    prodng.wait_for(lambda: [g for g in _job_groups(prodng) if "install" in g], 120, "the live install job")
    prodng("recover")
    assert _install_leftovers(prodng), "a live install was swept"
    _, err = live.communicate(timeout=180)
    assert live.returncode == 0, err
    assert prodng.info("crash-live")["state"] == "running"
    assert _install_leftovers(prodng) == []
    prodng("rm", "-f", "crash-live")


def test_no_cgroups_is_refused_not_ignored(prodng: Prodng, probe_template: str) -> None:
    """What `ip netns exec` does to the mount table: a fresh /sys, without /sys/fs/cgroup under it."""
    script = (
        f'umount -l /sys && mount -t sysfs sysfs /sys && exec "{sys.executable}" -m prodng'
        f' run {probe_template} --name crash-nocg --exec "{SERVICE}"'
    )
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        env=prodng.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no cgroup hierarchy" in lines[0] and "nsenter" in lines[0]
    assert "crash-nocg" not in {r["name"] for r in prodng.json("ls")}  # type: ignore[union-attr,index]
    assert violations(prodng, ["crash-nocg"]) == []


@pytest.mark.slow
def test_prune_and_template_rebuild_empty_the_install_cache(
    prodng: Prodng, template: str, probe_template: str, probe_binary: Path, tmp_path: Path
) -> None:
    cache = prodng.root / "pool" / "cache"
    prodng("run", template, _version_deb(tmp_path, "7"), "--name", "crash-prune")
    assert [p for p in cache.iterdir() if not p.name.startswith(".")], "no cached install"
    assert json.loads(prodng("prune", "--json").stdout)["removed"]
    assert not [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert prodng.info("crash-prune")["state"] == "running"  # a container never depends on the cache
    prodng("rm", "-f", "crash-prune")
    # An install made from a template is dropped when that template is replaced.
    fake = cache / "0123456789abcdef0123"
    subprocess.run(["btrfs", "subvolume", "create", str(fake)], check=True, capture_output=True)
    (fake / ".prodng-install.json").write_text(json.dumps({"template": probe_template, "payloads": []}))
    from probe_helpers import make_probe_root

    prodng("template", "import", "-f", probe_template, str(make_probe_root(tmp_path / "probe-again", probe_binary)))
    assert not fake.exists()


@pytest.mark.slow
def test_full_pool_during_install_is_a_system_failure_with_a_hint(fresh_root: Prodng, tmp_path: Path) -> None:
    import template_cache

    fresh_root.env["PRODNG_POOL_SIZE"] = "2G"
    template_cache.ensure(fresh_root, "bookworm")
    pool = fresh_root.root / "pool"
    free = os.statvfs(pool).f_bavail * os.statvfs(pool).f_frsize
    subprocess.run(["fallocate", "-l", str(max(free - 150 * 1024**2, 0)), str(pool / "filler")], check=True)
    fills = {"postinst": "#!/bin/sh\nset -e\ndd if=/dev/zero of=/var/filler bs=1M count=600\n"}
    deb = built_deb(tmp_path, "crash-filler", "X-Prodng-Exec: /bin/sleep 100000\n", {}, fills)
    result = fresh_root("run", "bookworm", deb, "--name", "filler", check=False, timeout=600)
    assert result.returncode == 5, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("prodng:")]  # beside progress lines
    assert len(errors) == 1 and "No space left on device" in errors[0] and "prodng prune" in errors[0], errors
    (pool / "filler").unlink()
    assert not [p for p in (pool / "cache").iterdir() if p.name.startswith(".build")]


def test_a_run_that_succeeded_is_never_a_404(
    prodng: Prodng, probe_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent rm that wins right after the start: the run still answers what it made."""
    from prodng.config import open_root
    from prodng.container import lifecycle
    from prodng.handlers import create
    from prodng.verbs import BY_NAME, Context

    real_start = lifecycle.start

    def start_then_lose_the_race(paths, name):  # type: ignore[no-untyped-def]
        observed = real_start(paths, name)
        lifecycle.remove(paths, name, force=True)  # the other request's rm
        return observed

    monkeypatch.setattr(lifecycle, "start", start_then_lose_the_race)
    values = {p.name: p.default for p in BY_NAME["run"].params}
    values.update(args=[probe_template], name="crash-raced", exec=SERVICE)
    values = {k: (list(v) if isinstance(v, list) else v) for k, v in values.items()}
    answer = create.run(Context(open_root(prodng.root)), **values)
    assert answer["name"] == "crash-raced" and answer["state"] == "running"
    assert "crash-raced" not in {r["name"] for r in prodng.json("ls")}  # type: ignore[union-attr,index]
