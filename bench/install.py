"""Installing a real service package with its dependencies: prodng (sandboxed, into a fresh
snapshot, then cached) against `chroot ROOT apt-get install` in a plain `cp -a` copy of the template."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import bench_context

from prodng.payload import deb as payload_deb
from prodng.payload import install
from prodng.storage import btrfs

PACKAGE = "redis-server"


def main() -> None:
    ctx = bench_context()
    folder = Path(tempfile.mkdtemp(prefix="prodng-bench-debs-"))
    subprocess.run(["apt-get", "download", "-q", PACKAGE], cwd=folder, check=True, capture_output=True)
    deb = next(folder.glob(f"{PACKAGE}_*.deb"))
    payloads = [payload_deb.inspect(str(deb))]
    cached = install.cache_dir(ctx.paths) / install.cache_key(ctx.paths, "bookworm", payloads)
    btrfs.delete_subvolume(cached)

    start = time.perf_counter()
    root = install.installed_root(ctx.paths, "bookworm", payloads, lambda line: None)
    btrfs.snapshot(root, ctx.paths.pool / "bench-install")
    fresh = time.perf_counter() - start
    btrfs.delete_subvolume(ctx.paths.pool / "bench-install")

    start = time.perf_counter()
    root = install.installed_root(ctx.paths, "bookworm", payloads, lambda line: None)
    btrfs.snapshot(root, ctx.paths.pool / "bench-install")
    again = time.perf_counter() - start
    btrfs.delete_subvolume(ctx.paths.pool / "bench-install")

    copy = ctx.paths.root / "bench-chroot"
    shutil.rmtree(copy, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run(["cp", "-a", str(ctx.paths.template_root("bookworm")), str(copy)], check=True)
    shutil.copytree("/etc/apt/sources.list.d", copy / "etc/apt/sources.list.d", dirs_exist_ok=True)
    (copy / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (copy / "usr/sbin/policy-rc.d").chmod(0o755)
    shutil.copy(deb, copy / "tmp" / deb.name)
    subprocess.run(
        [
            "chroot",
            str(copy),
            "sh",
            "-c",
            f"apt-get update -qq && apt-get install -y -q --no-install-recommends /tmp/{deb.name}",
        ],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive"},
    )
    chroot = time.perf_counter() - start
    shutil.rmtree(copy, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    print(f"install {PACKAGE} with dependencies:")
    print(f"  prodng, fresh snapshot + sandboxed apt     {fresh * 1000:9.0f} ms")
    print(f"  prodng, second run (cached install)       {again * 1000:9.0f} ms")
    print(f"  cp -a template + chroot apt-get install   {chroot * 1000:9.0f} ms")
    print(f"  ratios: chroot/prodng fresh {chroot / fresh:.2f}x, chroot/prodng cached {chroot / again:.0f}x")


if __name__ == "__main__":
    main()
