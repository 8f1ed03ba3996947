"""The btrfs pool and template roots, for real: loop image, subvolumes, snapshots, debootstrap, import."""

from __future__ import annotations

import os
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from probe_helpers import make_probe_root

from prodng import run
from prodng.config import Paths
from prodng.errors import SystemFailure
from prodng.storage import btrfs, pool

from conftest import Prodng

pytestmark = pytest.mark.root


def _mounts_under(path: Path) -> list[str]:
    return [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(str(path))
    ]


def test_pool_is_a_mounted_sparse_btrfs_image(fresh_root: Prodng) -> None:
    paths = Paths(fresh_root.root)
    pool.open_pool(paths, 8 * 1024**3)
    assert btrfs.is_btrfs(paths.pool) and os.path.ismount(paths.pool)
    image = paths.pool_image.stat()
    assert image.st_size == 8 * 1024**3
    assert image.st_blocks * 512 < 512 * 1024**2, "the image must be sparse"
    assert paths.templates.is_dir() and paths.containers.is_dir()


def test_pool_open_is_idempotent_and_recovers_after_reboot(fresh_root: Prodng) -> None:
    paths = Paths(fresh_root.root)
    pool.open_pool(paths, 8 * 1024**3)
    (paths.containers / "marker").write_text("kept")
    pool.open_pool(paths, 8 * 1024**3)
    assert len(_mounts_under(paths.pool)) == 1
    pool.close_pool(paths)  # as after a reboot: image present, not mounted
    assert not os.path.ismount(paths.pool)
    fresh_root("template", "ls")
    assert os.path.ismount(paths.pool)
    assert (paths.containers / "marker").read_text() == "kept"


def test_root_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = Prodng(blocker / "root")("template", "build", "bookworm", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "cannot create root directory" in result.stderr


def test_disk_too_full_for_the_image(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)], check=True)
    try:
        result = Prodng(small / "root")("template", "build", "bookworm", check=False)
        assert result.returncode == SystemFailure.exit_code
        assert "disk too full" in result.stderr
        assert not list((small / "root").glob("pool.img*")), "no half-made image"
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_no_free_loop_device(fresh_root: Prodng, monkeypatch: pytest.MonkeyPatch) -> None:
    # No loop device can be taken away from a shared host safely, so fake only losetup's answer;
    # the real losetup path is exercised by every other test here.
    real_run = run.run

    def fake(cmd, **kw):  # type: ignore[no-untyped-def]
        if cmd[:2] == ["losetup", "--find"]:
            return subprocess.CompletedProcess(cmd, 1, "", "losetup: cannot find an unused loop device")
        return real_run(cmd, **kw)

    monkeypatch.setattr(run, "run", fake)
    paths = Paths(fresh_root.root)
    with pytest.raises(SystemFailure, match="no free loop device"):
        pool.open_pool(paths, 8 * 1024**3)
    assert not os.path.ismount(paths.pool)


@pytest.mark.slow
def test_template_is_read_only_and_records_its_packages(prodng: Prodng, template: str) -> None:
    info = prodng.json("template", "info", template)
    assert isinstance(info, dict)
    assert info["read_only"] is True and info["suite"] == "bookworm"
    assert info["package_count"] > 50 and "dpkg:amd64" in info["packages"] or "dpkg" in str(info["packages"])
    root = prodng.root / "pool" / "templates" / template
    assert btrfs.is_read_only(root)
    with pytest.raises(OSError):
        (root / "etc" / "prodng-write-test").write_text("x")
    listed = prodng.json("template", "ls")
    assert [t["name"] for t in listed if t["variant"] != "import"] == [template]  # type: ignore[index, union-attr]


@pytest.mark.slow
def test_snapshot_is_instant_whatever_the_size(prodng: Prodng, template: str) -> None:
    pool = prodng.root / "pool"
    big = pool / "bench-big"
    btrfs.snapshot(pool / "templates" / template, big)
    try:
        with open(big / "filler", "wb") as f:
            f.truncate(0)
            block = os.urandom(1024 * 1024)
            for _ in range(256):
                f.write(block)
        os.sync()  # a snapshot commits the transaction: do not time writing back the filler
        times = []
        for source in (pool / "templates" / template, big):
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                btrfs.snapshot(source, pool / "bench-snap")
                best = min(best, time.perf_counter() - start)
                btrfs.delete_subvolume(pool / "bench-snap")
                os.sync()
            times.append(best)
        assert max(times) < 0.05, times
    finally:
        btrfs.delete_subvolume(big)


@pytest.mark.slow
def test_killed_build_leaves_nothing(prodng: Prodng, tmp_path: Path) -> None:
    (tmp_path / "doomed.recipe").write_text("Name: doomed\nSuite: bookworm\nVariant: minbase\n")
    prodng.env["PRODNG_RECIPES"] = str(tmp_path)
    try:
        templates_dir = prodng.root / "pool" / "templates"
        proc = prodng.popen("template", "build", "doomed")
        prodng.wait_for(lambda: list(templates_dir.glob(".build-doomed-*")), 30, "the build to start")
        time.sleep(3)  # let debootstrap get going
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # debootstrap ran in a pid namespace tied to the CLI: it dies, and its mounts with it.
        prodng.wait_for(lambda: not _mounts_under(templates_dir), 10, "build mounts to vanish")
        prodng("template", "ls")  # any pool use cleans what a killed build left
        assert not list(templates_dir.glob(".build-*"))
        assert "doomed" not in prodng("template", "ls").stdout
    finally:
        del prodng.env["PRODNG_RECIPES"]


def test_template_rm_refused_while_used(prodng: Prodng, probe_template: str, container: str) -> None:
    prodng("create", probe_template, "--name", container, "--exec", "probe true")
    result = prodng("template", "rm", probe_template, check=False)
    assert result.returncode == 4 and f"used by {container}" in result.stderr
    assert probe_template in prodng("template", "ls").stdout


def test_template_bad_input(prodng: Prodng) -> None:
    unknown = prodng("template", "build", "nosuch", check=False)
    assert unknown.returncode == 3 and "unknown template 'nosuch'" in unknown.stderr
    info = prodng("template", "info", "trixie", check=False)
    assert info.returncode == 3 and "not built" in info.stderr
    bad = prodng("template", "build", "Bad/Name", check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_template_rm_removes_an_unused_template(prodng: Prodng, probe_binary: Path, tmp_path: Path) -> None:
    templates_dir = prodng.root / "pool" / "templates"
    prodng("template", "import", "spare", str(make_probe_root(tmp_path, probe_binary)))
    assert "spare" in prodng("template", "ls").stdout
    assert prodng.json("template", "rm", "spare") == {"name": "spare", "removed": True}
    assert not (templates_dir / "spare").exists() and "spare" not in prodng("template", "ls").stdout
    assert prodng("template", "rm", "spare", check=False).returncode == 3


def test_template_import_from_a_directory_or_an_archive(
    prodng: Prodng, probe_binary: Path, tmp_path: Path, container: str
) -> None:
    source = make_probe_root(tmp_path / "root", probe_binary)
    (source / "etc" / "marker").write_text("from the source\n")
    os.chown(source / "etc" / "marker", 1234, 5678)
    os.symlink("probe", source / "bin" / "link")
    archive = tmp_path / "root.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(source, arcname=".")
    templates_dir = prodng.root / "pool" / "templates"
    for name, given in (("imp-dir", source), ("imp-tar", archive)):
        started = time.monotonic()
        info = prodng.json("template", "import", name, str(given))
        assert time.monotonic() - started < 5
        assert info == {**info, "name": name, "variant": "import", "source": str(given), "read_only": True}
        root = templates_dir / name
        assert btrfs.is_read_only(root) and (root / "etc" / "marker").read_text() == "from the source\n"
        assert (root / "etc" / "marker").stat()[4:6] == (1234, 5678), "ownership kept"
        assert os.readlink(root / "bin" / "link") == "probe" and os.access(root / "bin" / "probe", os.X_OK)
        assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    prodng("run", "imp-tar", "--name", container, "--exec", "probe cat /etc/marker ; sleep 100000")
    prodng.wait_for(lambda: prodng("logs", container).stdout == "from the source\n", what="the service's output")
    assert not list(templates_dir.glob(".build-*"))
    prodng("rm", "-f", container)
    for name in ("imp-dir", "imp-tar"):
        prodng("template", "rm", name)


def test_template_import_refuses_bad_input_and_leaves_nothing(
    prodng: Prodng, probe_binary: Path, tmp_path: Path
) -> None:
    source = make_probe_root(tmp_path / "root", probe_binary)
    templates_dir = prodng.root / "pool" / "templates"

    def fails(code: int, *args: str, says: str) -> None:
        result = prodng("template", "import", *args, check=False)
        assert result.returncode == code, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("prodng: error:"), result.stderr
        assert says in result.stderr, result.stderr

    fails(2, "Bad/Name", str(source), says="invalid template name")
    fails(2, "name\n", str(source), says="invalid template name")
    fails(2, ".hidden", str(source), says="invalid template name")
    fails(2, "x" * 64, str(source), says="invalid template name")
    fails(2, "imp-bad", str(tmp_path / "nosuch"), says="no such directory or archive")
    fails(2, "imp-bad", "/", says="holds prodng's pool")
    (tmp_path / "notes.txt").write_text("not an archive")
    fails(2, "imp-bad", str(tmp_path / "notes.txt"), says="neither a directory nor a tar archive")
    truncated = tmp_path / "truncated.tar"
    with tarfile.open(truncated, "w") as tar:
        tar.add(source, arcname=".")
    truncated.write_bytes(truncated.read_bytes()[: 600 * 1024])  # cut in the middle of bin/probe
    fails(5, "imp-bad", str(truncated), says="tar failed")
    assert not (templates_dir / "imp-bad").exists() and not list(templates_dir.glob(".build-*"))
    prodng("template", "import", "imp-once", str(source))
    fails(4, "imp-once", str(source), says="template imp-once already exists (use --force to replace it)")
    (source / "etc" / "marker").write_text("second")
    replaced = prodng.json("template", "import", "imp-once", str(source), "--force")
    assert replaced["read_only"] is True  # type: ignore[index]
    assert (templates_dir / "imp-once" / "etc" / "marker").read_text() == "second"
    prodng("template", "rm", "imp-once")
