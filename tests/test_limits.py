"""Limits by default (issue 15): a container that forks, allocates, fills its tmpfs or its root without
end hurts only itself. The host's defaults come from ROOT/settings.toml; the attacks are the probe's."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deb_bombs import bomb_deb
from probe_helpers import chain, facts, make_probe_root, results
from test_payload import built_deb

from conftest import Prodng, _teardown

pytestmark = pytest.mark.root

MiB = 1024**2
SETTINGS = 'pids = 40\nmemory = "64M"\ntmpfs_size = "8M"\ndisk = "96M"\n'
SLEEPER = "probe sleep 100000"


@pytest.fixture(scope="module")
def limited(probe_binary: Path) -> Iterator[Prodng]:
    """A root whose settings file makes small defaults, with the probe template imported."""
    root = Path(tempfile.mkdtemp(prefix="prodng-test-limits-", dir="/var/tmp"))
    (root / "settings.toml").write_text(SETTINGS)
    prodng = Prodng(root)
    source = make_probe_root(root / "probe-root", probe_binary)
    _build_high_ioctl(source / "bin" / "high-ioctl")
    prodng("template", "import", "probe", str(source))
    shutil.rmtree(source)
    yield prodng
    _teardown(root)


# The kernel reads an ioctl's request as 32 bits: a filter comparing all 64 would let this through.
HIGH_IOCTL = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void)
{
    struct btrfs_ioctl_vol_args args = {0};
    strcpy(args.name, "high");
    int dir = open("/", O_RDONLY | O_DIRECTORY);
    long rc = syscall(SYS_ioctl, dir, (1UL << 32) | BTRFS_IOC_SUBVOL_CREATE, &args);
    printf("high-ioctl=%s\n", rc == 0 ? "ok" : strerrorname_np(errno));
    return rc == 0;
}
"""


def _build_high_ioctl(target: Path) -> None:
    source = target.with_suffix(".c")
    source.write_text(HIGH_IOCTL)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(target), str(source)], check=True)
    source.unlink()


def _run(prodng: Prodng, name: str, *flags: str) -> dict[str, object]:
    prodng("run", "probe", "--name", name, "--exec", SLEEPER, *flags)
    return prodng.info(name)


def _events(prodng: Prodng, name: str) -> list[dict[str, object]]:
    lines = (prodng.root / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("name") == name]


def _oom_score(pid: int) -> int:
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


def _can_lower_oom_score() -> bool:
    lowered = subprocess.run(["sh", "-c", "echo -1 > /proc/self/oom_score_adj"], capture_output=True)
    return lowered.returncode == 0


def test_rm_returns_the_space_to_the_host(limited: Prodng) -> None:
    """The pool is mounted with discard=async: what rm frees is punched out of the sparse image."""
    image = limited.root / "pool.img"
    _run(limited, "spender", "--disk", "300M")
    limited("exec", "spender", "--", "probe", "fill", "/blob", "256", timeout=120)
    subprocess.run(["sync"], check=True)
    grown = os.stat(image).st_blocks * 512
    began = time.monotonic()
    limited("rm", "-f", "spender")
    limited.wait_for(lambda: grown - os.stat(image).st_blocks * 512 >= 200 * MiB, 90, "the image to shrink")
    print(f"rm returned {(grown - os.stat(image).st_blocks * 512) // MiB} MiB in {time.monotonic() - began:.1f} s")


def test_defaults_hold_and_hurt_only_the_container(limited: Prodng) -> None:
    info = _run(limited, "hog")
    neighbour = _run(limited, "neighbour")
    assert info["limits"] == {
        "memory": 64 * MiB,
        "pids": 40,
        "cpus": None,
        "memory_high": None,
        "tmpfs_size": 8 * MiB,
        "disk": 96 * MiB,
    }
    assert "mem=64M pids=40 disk=96M" in limited("ls").stdout
    # The OOM killer may take the service, never its init or monitor.
    init = int(info["pid"])  # type: ignore[call-overload]
    service = int(Path(f"/proc/{init}/task/{init}/children").read_text().split()[0])
    scores = (_oom_score(int(info["monitor_pid"])), _oom_score(init), _oom_score(service))  # type: ignore[call-overload]
    # Where the kernel refuses any lowering (this kind of sandboxed VM), the service goes first instead.
    assert scores == ((-1000, -1000, 0) if _can_lower_oom_score() else (0, 0, 500)), scores

    bomb = facts(limited("exec", "hog", "--", "probe", "forkbomb", "500", check=False, timeout=60).stdout)
    assert bomb["forkbomb"] == "EAGAIN" and int(bomb["forked"]) < 40, bomb

    hog = limited("exec", "hog", "--", "probe", "memhog", "1024", check=False, timeout=60)
    reached = [int(m) for m in re.findall(r"mb=(\d+)", hog.stdout)]
    assert hog.returncode != 0 and "memhog=ok" not in hog.stdout and max(reached, default=0) <= 64, hog.stdout
    limited.wait_for(lambda: any(e["event"] == "oom" for e in _events(limited, "hog")), 10, "an oom event")
    assert limited.info("hog")["stats"]["oom_kills"] >= 1  # type: ignore[index]

    tmp = facts(limited("exec", "hog", "--", "probe", "tmpfill", "64", check=False, timeout=60).stdout)
    assert tmp["tmpfill"] == "ENOSPC" and int(tmp["bytes"]) <= 8 * MiB, tmp
    shm = facts(limited("exec", "hog", "--", "probe", "tmpfill", "64", "/dev/shm", check=False).stdout)
    assert shm["tmpfill"] == "ENOSPC" and int(shm["bytes"]) <= 8 * MiB, shm

    disk = facts(limited("exec", "hog", "--", "probe", "fill", "/big", "1024", check=False, timeout=120).stdout)
    assert disk["fill"] in ("EDQUOT", "ENOSPC") and 80 * MiB <= int(disk["bytes"]) <= 96 * MiB, disk
    limited.wait_for(lambda: any(e["event"] == "disk_full" for e in _events(limited, "hog")), 10, "disk_full")
    used = limited.info("hog")["disk"]
    assert used["limit"] == 96 * MiB and used["used"] >= 80 * MiB, used  # type: ignore[index]
    row = limited.json("query", "SELECT disk_used, disk_limit, oom_kills FROM prodng_containers WHERE name='hog'")
    assert row[0]["disk_limit"] == 96 * MiB and row[0]["disk_used"] >= 80 * MiB and row[0]["oom_kills"] >= 1  # type: ignore[index]

    _assert_metrics(limited, "hog")

    # The container, its neighbour, the host and the CLI all carry on.
    assert limited.info("hog")["state"] == "running" and neighbour["state"] == "running"
    again = facts(limited("exec", "neighbour", "--", "probe", "fill", "/small", "4").stdout)
    assert again["fill"] == "ok"
    began = time.monotonic()
    limited("ls")
    assert time.monotonic() - began < 5
    assert subprocess.run(["true"], timeout=5).returncode == 0


def _assert_metrics(prodng: Prodng, name: str) -> None:
    """/metrics of the agent says the same: OOM kills, disk use and quota."""
    from agent_helpers import metric_families

    values = {f.name: {s.labels.get("name"): s.value for s in f.samples} for f in metric_families(prodng)}
    assert values["prodng_container_oom_kills"][name] >= 1
    assert values["prodng_container_disk_limit_bytes"][name] == 96 * MiB
    assert values["prodng_container_disk_bytes"][name] >= 80 * MiB


def test_flags_override_the_defaults_and_disk_stops_a_writer(limited: Prodng) -> None:
    info = _run(limited, "writer", "--disk", "200M", "--pids", "100", "--tmpfs-size", "2M", "--memory", "128M")
    assert info["limits"]["disk"] == 200 * MiB and info["limits"]["pids"] == 100  # type: ignore[index]
    written = limited("exec", "writer", "--", "probe", "fill", "/data", "400", check=False, timeout=120)
    report = facts(written.stdout)
    assert written.returncode == 1 and report["fill"] in ("EDQUOT", "ENOSPC"), written.stdout
    assert 190 * MiB <= int(report["bytes"]) <= 200 * MiB, report
    assert written.stderr.count("\n") == 1 and "/data after" in written.stderr
    # Deleting gives the space back to the quota (the probe has no rm: from the host side).
    (limited.root / "pool" / "containers" / "writer" / "data").unlink()
    subprocess.run(["sync"], check=True)
    after = limited("exec", "writer", "--", "probe", "fill", "/more", "20", check=False)
    assert facts(after.stdout)["fill"] == "ok", after.stdout


def test_no_escape_from_the_quota(limited: Prodng) -> None:
    _run(limited, "escaper", "--disk", "64M")
    checks = results(
        limited(
            "exec",
            "escaper",
            "--",
            "probe",
            *chain("btrfs-subvol / esc", "btrfs-snap / / snap", "io_uring", "aio", "ls /"),
            check=False,
        ).stdout
    )
    assert checks["btrfs-subvol"] == {"btrfs-subvol": "EPERM", "v2": "EPERM"}
    assert checks["btrfs-snap"] == {"btrfs-snap": "EPERM", "v2": "EPERM"}
    assert checks["io_uring"]["io_uring"] == "EPERM"
    # The host's AIO budget is not the container's to take (it got all 65536 events, the host EAGAIN).
    assert checks["aio"]["aio"] == "ENOSYS"
    high = limited("exec", "escaper", "--", "high-ioctl", check=False)
    assert high.stdout == "high-ioctl=EPERM\n", high.stdout + high.stderr
    assert "esc" not in checks["ls"].get("entries", "") and "snap" not in checks["ls"].get("entries", "")
    root = limited.root / "pool" / "containers" / "escaper"
    assert not (root / "esc").exists() and not (root / "snap").exists()
    filled = facts(limited("exec", "escaper", "--", "probe", "fill", "/x", "256", check=False, timeout=60).stdout)
    assert filled["fill"] in ("EDQUOT", "ENOSPC") and int(filled["bytes"]) <= 64 * MiB


@pytest.mark.parametrize("compression", ["xz", "zst", "gz"])
def test_a_payload_that_expands_past_the_disk_limit_is_refused_before_install(
    limited: Prodng, tmp_path: Path, compression: str
) -> None:
    """Whatever compresses data.tar (a zstd member was decompressed whole into the CLI's memory)."""
    deb = bomb_deb(tmp_path, 8, compression)
    assert deb.stat().st_size < 10 * MiB
    began = time.monotonic()
    refused = limited("run", "probe", str(deb), "--name", "bombed", "--disk", "1G", check=False)
    took = time.monotonic() - began
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "bomb_1.0_all.deb: unpacks to more than the container's disk limit of 1024 MiB" in refused.stderr
    assert took < 10, f"refused at the header, not after decompressing 8 GiB ({took:.1f} s)"
    assert "bombed" not in limited("ls").stdout
    assert not list((limited.root / "pool").glob("cache/.build-*"))


def test_pool_shows_size_use_and_free_space(limited: Prodng) -> None:
    _run(limited, "counted", "--disk", "128M")
    limited("exec", "counted", "--", "probe", "fill", "/ten", "10")
    rows = {(r["kind"], r["name"]): r for r in limited.json("pool")}  # type: ignore[union-attr]
    pool = rows[("pool", str(limited.root / "pool"))]
    assert pool["limit_bytes"] == 16 * 1024**3 and 0 < pool["used_bytes"] < pool["limit_bytes"]  # type: ignore[operator]
    image = rows[("image", str(limited.root / "pool.img"))]
    assert image["limit_bytes"] == 16 * 1024**3 and image["free_bytes"] > 0  # type: ignore[operator]
    counted = rows[("container", "counted")]
    assert counted["limit_bytes"] == 128 * MiB and 10 * MiB <= counted["used_bytes"] < 12 * MiB, counted  # type: ignore[operator]
    assert ("template", "probe") in rows
    table = limited("pool").stdout.splitlines()
    assert table[0].split() == ["KIND", "NAME", "USED", "LIMIT", "FREE"] and any("counted" in r for r in table)


def test_a_pool_larger_than_the_free_space_is_said(fresh_root: Prodng, tmp_path: Path) -> None:
    free = os.statvfs("/var/tmp").f_bavail * os.statvfs("/var/tmp").f_frsize
    fresh_root.env["PRODNG_POOL_SIZE"] = str(free + 1024**3)
    (tmp_path / "etc").mkdir()
    made = fresh_root("template", "import", "tiny", str(tmp_path))  # the first use makes the pool
    assert "warning: the pool image" in made.stderr and "larger than the" in made.stderr, made.stderr


def test_tmpfs_pages_are_charged_to_the_container(limited: Prodng) -> None:
    """A tmpfs larger than the memory limit still holds no more than the limit: its pages are the writer's
    cgroup's (the issue's case: 1 GiB written to /tmp pinned 1 GiB of host RAM, and the OOM killer took init)."""
    info = _run(limited, "shm", "--memory", "32M", "--tmpfs-size", "256M")
    filler = limited("exec", "shm", "--", "probe", "tmpfill", "200", check=False, timeout=60)
    assert filler.returncode != 0 and "tmpfill=ok" not in filler.stdout, filler.stdout
    stats = limited.info("shm")["stats"]
    assert stats["memory_bytes"] <= 32 * MiB and stats["oom_kills"] >= 1, stats  # type: ignore[index]
    again = limited.info("shm")
    assert again["state"] == "running" and again["pid"] == info["pid"], "the init lives on"


def _script_deb(directory: Path, package: str, postinst: str) -> Path:
    """A package whose postinst runs these shell lines (set -e)."""
    scripts = {"postinst": f"#!/bin/sh\nset -e\n{postinst}\n"}
    return Path(built_deb(directory, package, "X-Prodng-Exec: /bin/sleep 100000\n", {}, scripts))


def test_an_install_job_is_held_to_the_disk_quota(limited: Prodng, tmp_path: Path) -> None:
    """A maintainer script that writes without end stops at the container's quota, and the run says so
    in one line; nothing of the failed install stays. The container's --memory is the job's: under the
    fixture's 64M default, apt plus 400 MB of dirty pages in a v1 memory cgroup was once OOM-killed."""
    import template_cache

    template_cache.ensure(limited, "bookworm")
    deb = _script_deb(tmp_path, "prodng-filler", "head -c 400M /dev/zero > /var/tmp/filler")
    failed = limited(
        "bookworm", str(deb), "--name", "filled", "--disk", "150M", "--memory", "512M", check=False, timeout=600
    )
    error = failed.stderr.splitlines()[-1]  # after the progress line
    assert failed.returncode != 0 and error.startswith("prodng: error: prodng-filler: install failed: "), error
    assert "Disk quota exceeded" in error, failed.stderr
    assert "filled" not in limited("ls").stdout
    assert not list((limited.root / "pool" / "cache").glob("*"))


def test_an_install_job_runs_under_the_containers_own_limits(limited: Prodng, tmp_path: Path) -> None:
    """--pids 20 is the install job's too, raised to what apt and dpkg need (64): a postinst that keeps
    100 processes alive is stopped there (under the host's defaults alone, 40 here, the job ignored the
    container's flags)."""
    import template_cache

    template_cache.ensure(limited, "bookworm")
    deb = _script_deb(tmp_path, "prodng-forker", "for i in $(seq 100); do sleep 30 & done\nwait")
    failed = limited(
        "bookworm",
        str(deb),
        "--name",
        "forked",
        "--pids",
        "20",
        "--memory",
        "512M",
        "--disk",
        "400M",
        check=False,
        timeout=600,
    )
    error = failed.stderr.splitlines()[-1]
    assert failed.returncode == 2 and error.startswith("prodng: error: prodng-forker: install failed: "), error
    assert "Cannot fork" in error or "Resource temporarily unavailable" in error, failed.stderr
    assert "forked" not in limited("ls").stdout


def test_memory_high_on_this_hosts_v1_memory_controller(limited: Prodng) -> None:
    """memory_high is cgroup v2's memory.high; this VM's v2 hierarchy has no memory controller (it is v1's), so
    it becomes the v1 soft limit (reclaimed first under pressure), on the real hierarchy. The v2 files are
    tested in test_cgroups_v2."""
    limited.env["PRODNG_MEMORY_HIGH"] = "32M"
    try:
        info = _run(limited, "soft")
    finally:
        del limited.env["PRODNG_MEMORY_HIGH"]
    assert info["limits"]["memory_high"] == 32 * MiB  # type: ignore[index]
    groups = [Path(p) for p in info["cgroups"]]  # type: ignore[attr-defined]
    v2 = [g for g in groups if g.is_relative_to("/sys/fs/cgroup/unified")]
    (memory,) = [g for g in groups if (g / "memory.soft_limit_in_bytes").exists()]
    assert int((memory / "memory.soft_limit_in_bytes").read_text()) == 32 * MiB
    assert int((memory / "memory.limit_in_bytes").read_text()) == 64 * MiB
    assert v2 and not (v2[0] / "memory.high").exists(), "this host's v2 has no memory controller"
    limited("rm", "-f", "soft")


def test_a_container_cannot_take_every_terminal(limited: Prodng) -> None:
    """Every devpts but the host's draws on kernel.pty.max less kernel.pty.reserve (3072): one container held
    them all and no neighbour could open a terminal (exec -t failed everywhere). Each devpts has max=256."""
    limited("run", "probe", "--name", "ptyhog", "--exec", "probe ptys 100000")
    limited.wait_for(lambda: "ptys=" in limited("logs", "ptyhog").stdout, 30, "the hog to take its terminals")
    hog = facts(limited("logs", "ptyhog").stdout)
    assert hog == {"count": "256", "ptys": "ENOSPC"}, hog
    _run(limited, "ptyneighbour")
    opened = facts(limited("exec", "ptyneighbour", "--", "probe", "open", "/dev/ptmx", "rw").stdout)
    assert opened["open"] == "ok", opened
    for name in ("ptyhog", "ptyneighbour"):
        limited("rm", "-f", name)


def test_a_container_cannot_grow_the_events_journal_without_end(limited: Prodng) -> None:
    """Its monitor writes what the service causes (an OOM a second, a crash every 10 s) with no verb run
    to rotate the host's events.jsonl: the monitor rotates it past 4 MiB too, under the same lock."""
    from prodng.container import events

    limited("run", "probe", "--name", "crasher", "--restart", "always", "--exec", "probe sleep 1")
    journal = limited.root / "events.jsonl"
    padding = json.dumps({"event": "padding", "name": "-", "time": 0}) + "\n"
    with open(journal, "a") as f:
        f.write(padding * (events.ROTATE_BYTES // len(padding) + 1))
    began = time.monotonic()
    limited.wait_for(lambda: (journal.parent / "events.jsonl.1").exists(), 30, "the monitor to rotate the journal")
    mine = [e for e in map(json.loads, journal.read_text().splitlines()) if e["name"] == "crasher"]
    assert mine and mine[0]["event"] in ("died", "restarted") and journal.stat().st_size < 1024**2, mine
    print(f"rotated by the monitor {time.monotonic() - began:.1f} s after the journal passed 4 MiB")
    limited("rm", "-f", "crasher")


def test_an_install_job_is_held_to_the_containers_memory(limited: Prodng, tmp_path: Path) -> None:
    """--memory 128M is the install job's too, raised to what apt and dpkg need (256 MiB): a postinst
    holding 600 MB is killed, and the run says it was the memory limit (dpkg said only "Killed")."""
    import template_cache

    template_cache.ensure(limited, "bookworm")
    deb = _script_deb(tmp_path, "prodng-hog", "x=$(head -c 600M /dev/zero | tr '\\0' a)")
    failed = limited(
        "bookworm", str(deb), "--name", "hogged", "--memory", "128M", "--disk", "400M", check=False, timeout=600
    )
    error = failed.stderr.splitlines()[-1]
    assert failed.returncode == 2, failed.stderr
    assert error == (
        "prodng: error: prodng-hog: install failed: out of memory: the kernel killed a process at the memory limit"
        " of 256 MiB"
    ), failed.stderr


def _classic_qgroups(pool: Path) -> None:
    """Quotas as a kernel without squota (before 6.7, Debian 12's own) has them: classic qgroups."""
    from prodng.storage import quota

    disable = 2  # BTRFS_QUOTA_CTL_DISABLE
    quota._ioctl(pool, quota.IOC_QUOTA_CTL, bytearray(struct.pack("=QQ", disable, 0)))
    quota._ioctl(pool, quota.IOC_QUOTA_CTL, bytearray(struct.pack("=QQ", quota.QUOTA_CTL_ENABLE, 0)))
    assert quota.mode(pool) == "qgroup"


def test_classic_qgroups_stop_a_writer_at_the_limit_not_at_the_template(fresh_root: Prodng) -> None:
    """Under classic qgroups a snapshot's referenced bytes include its whole template: a limit on them let
    a 200M container of the ~200 MiB bookworm write 2 MB. The limit is on exclusive bytes: it writes ~200 MB,
    then EDQUOT, a disk_full event, and info counts what it wrote, not the template."""
    import template_cache

    fresh_root("template", "info", "bookworm", check=False)  # lays out the pool
    _classic_qgroups(fresh_root.root / "pool")
    template_cache.ensure(fresh_root, "bookworm")  # received after the switch: accounted the classic way
    fresh_root("run", "bookworm", "--name", "classic", "--disk", "200M", "--exec", "sleep infinity")
    wrote = fresh_root(
        "exec", "classic", "--", "sh", "-c", "head -c 400M /dev/zero > /big; stat -c size=%s /big", check=False
    )
    assert "Disk quota exceeded" in wrote.stderr, wrote.stderr
    written = int(facts(wrote.stdout)["size"])
    assert 180 * MiB <= written <= 200 * MiB, written
    fresh_root.wait_for(lambda: any(e["event"] == "disk_full" for e in _events(fresh_root, "classic")), 10, "disk_full")
    subprocess.run(["sync"], check=True)
    used = fresh_root.info("classic")["disk"]
    assert used["limit"] == 200 * MiB and 180 * MiB <= used["used"] <= 204 * MiB, used  # type: ignore[index]


# DHCPDISCOVERs with the container's own MAC (the bridge's filters drop any other), sent unicast to the bridge's
# dnsmasq from an ordinary UDP socket: no capability needed.
DHCP_FLOOD = r"""
use Socket;
my ($gateway, $count) = @ARGV;
open(my $f, "<", "/sys/class/net/eth0/address") or die "address: $!";
my $mac = pack("C6", map { hex } split(/:/, scalar <$f>));
socket(my $s, PF_INET, SOCK_DGRAM, 0) or die "socket: $!";
my $to = sockaddr_in(67, inet_aton($gateway));
my $sent = 0;
for my $i (1 .. $count) {
    # DISCOVERs, and REQUESTs for an address not offered (dnsmasq NAKs them).
    my $options = $i % 2 ? pack("C3", 53, 1, 1) : pack("C3 C2 C4", 53, 1, 3, 50, 4, 192, 0, 2, $i % 250);
    my $packet = pack("C4 N n n a4 a4 a4 a4 a16 a64 a128 N", 1, 1, 6, 0, $i, 0, 0x8000,
        "", "", "", "", $mac, "", "", 0x63825363) . $options . pack("C", 255);
    $sent++ if send($s, $packet, 0, $to);
}
print "sent=$sent\n";
"""


def _sizes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_a_container_cannot_fill_the_hosts_run_with_dnsmasqs_log(tmp_path: Path) -> None:
    """dnsmasq logged to a file in /run/prodng (a tmpfs of the host's RAM on most hosts): every DHCP packet a
    container sent was a line or two there, without end or rotation. It logs to the host's syslog now, which
    bounds what it keeps, and not each lease."""
    import hashlib

    import template_cache

    from conftest import own_netns

    root = Path(tempfile.mkdtemp(prefix="prodng-test-dhcplog-", dir="/var/tmp"))
    namespace = f"prodng-lim{os.getpid()}"
    try:
        with own_netns(root, namespace) as net:
            template_cache.ensure(net, "bookworm")
            net("bookworm", "dhcp", "--name", "flooder", "--exec", "sleep infinity")
            inode = os.stat(f"/run/netns/{namespace}").st_ino
            run_dir = Path("/run/prodng") / f"{hashlib.sha256(str(root).encode()).hexdigest()[:8]}-{inode}"
            before = _sizes(run_dir)
            flood = net("exec", "flooder", "--", "perl", "-e", DHCP_FLOOD, "10.89.0.1", "2000", timeout=120)
            assert flood.stdout.strip() == "sent=2000", flood.stdout + flood.stderr
            time.sleep(1)  # dnsmasq answers in its own time
            grown = _sizes(run_dir) - before
            assert grown < 4096, f"prodng's /run grew {grown} bytes for 2000 packets: {sorted(run_dir.rglob('*'))}"
            net("rm", "-f", "flooder")
    finally:
        _teardown(root)
