"""Install and first-answer time of real services (issue 16): `prodng bookworm PKG.deb` (sandboxed
install with dependencies and Recommends, then the service plan started until every unit is up, then
the first answer of a client from inside) against the plain way: `apt-get install` in a chroot of a
copy of the same template, then the package's init script started in a private network namespace
and the same client until it answers. Each pair in one run, the prodng install cache emptied first.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, bench_context

from prodng.container import lifecycle, state
from prodng.payload import deb as payload_deb
from prodng.payload import install
from prodng.storage import btrfs

# One run on this host (2 cores, shared), 2026-12-01, apt from a local mirror:
#   postgresql-15  prodng run 18.5 s, first answer 18.6 s | chroot apt-get install 13.9 s, first answer 16.1 s
#   nginx-light    prodng run  3.3 s, first answer  3.4 s | chroot apt-get install  2.5 s, first answer  2.5 s
# prodng's extra is the sandbox (two jobs, a snapshot) and the plan (postgresql's Recommends bring cron and
# exim4, started too); a second run of the same payloads reuses the cached install (~0.3-1 s to an answer).
# package, how Debian starts it without systemd (in the chroot), the client that must answer
CASES = [
    (
        "postgresql-15",
        "pg_ctlcluster 15 main start",
        "su postgres -s /bin/sh -c \"psql -tAc 'select 42'\"",
        "42",
    ),
    (
        "nginx-light",
        "/etc/init.d/nginx start",
        "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(q(127.0.0.1:80)) or exit 1; "
        "print $s qq(GET / HTTP/1.0\\r\\n\\r\\n); print <$s>'",
        "200 OK",
    ),
]
CLI = [sys.executable, "-m", "prodng"]


def download(package: str, folder: Path) -> Path:
    subprocess.run(["apt-get", "download", "-q", package], cwd=folder, check=True, capture_output=True)
    return next(folder.glob(f"{package}_*.deb"))


def until(command: list[str], expect: str, env: dict[str, str], limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if expect in result.stdout:
            return
        time.sleep(0.05)
    raise SystemExit(f"no {expect!r} from {command}")


def with_prodng(deb: Path, client: str, expect: str) -> tuple[float, float]:
    """(install and start, first answer) in seconds, from an empty install cache."""
    name = "bench-services"
    ctx = bench_context()
    if state.exists(ctx.paths, name):
        lifecycle.remove(ctx.paths, name, force=True)
    payloads = [payload_deb.inspect(str(deb))]
    btrfs.delete_subvolume(install.cache_dir(ctx.paths) / install.cache_key(ctx.paths, "bookworm", payloads))
    start = time.perf_counter()
    env = {**os.environ, "PRODNG_ROOT": str(ROOT)}
    subprocess.run([*CLI, "bookworm", str(deb), "none", "--name", name], check=True, capture_output=True, env=env)
    started = time.perf_counter() - start
    until([*CLI, "exec", name, "--", "sh", "-c", client], expect, env)
    answered = time.perf_counter() - start
    lifecycle.remove(ctx.paths, name, force=True)
    return started, answered


def with_chroot(template: Path, deb: Path, start_cmd: str, client: str, expect: str) -> tuple[float, float]:
    """The same in a plain copy of the template: apt-get install in a chroot (daemons kept from
    starting by policy-rc.d, as any image build does), then started in a network namespace of its own."""
    work = Path(tempfile.mkdtemp(prefix="bench-chroot-", dir="/var/tmp"))
    root = work / "root"
    try:
        subprocess.run(["cp", "-a", str(template), str(root)], check=True)
        shutil.copy(deb, root / "tmp" / deb.name)
        shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
        # the host's sources (updates, security), as prodng binds them for an install of the host's release
        for source in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
            if source.is_file():
                shutil.copy(source, root / str(source).lstrip("/"))
        (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (root / "usr/sbin/policy-rc.d").chmod(0o755)
        begin = time.perf_counter()
        script = f"apt-get update -qq && apt-get install -y -q /tmp/{deb.name}"
        subprocess.run(
            [
                "unshare",
                "--mount",
                "--fork",
                "sh",
                "-c",
                f"mount -t proc proc {root}/proc && chroot {root} sh -c '{script}'",
            ],
            check=True,
            capture_output=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"},
        )
        (root / "usr/sbin/policy-rc.d").unlink()
        inside = (
            f"ip link set lo up && mount -t proc proc {root}/proc && chroot {root} sh -c '{start_cmd}' >/dev/null 2>&1;"
            f" for i in $(seq 2400); do chroot {root} sh -c {shlex.quote(client)} 2>/dev/null | grep -q {shlex.quote(expect)}"
            " && exit 0; sleep 0.05; done; exit 1"
        )
        installed = time.perf_counter() - begin
        subprocess.run(
            ["unshare", "--net", "--pid", "--mount", "--fork", "sh", "-c", inside], check=True, capture_output=True
        )
        return installed, time.perf_counter() - begin
    finally:
        subprocess.run(["umount", "-R", str(root / "proc")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ctx = bench_context()
    folder = Path(tempfile.mkdtemp(prefix="prodng-bench-debs-"))
    print(f"bench root {ROOT}; each: install (+ start), then first answer of a client from inside")
    for package, start_cmd, client, expect in CASES[int(os.environ.get("BENCH_FROM", "0")) :]:
        deb = download(package, folder)
        started, answered = with_prodng(deb, client, expect)
        print(f"  {package:16} prodng  run {started:6.1f} s   first answer {answered:6.1f} s")
        installed, first = with_chroot(ctx.paths.template_root("bookworm"), deb, start_cmd, client, expect)
        print(f"  {package:16} chroot  apt-get install {installed:6.1f} s   first answer {first:6.1f} s")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
