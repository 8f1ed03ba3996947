"""Issue 13: a hostile .deb or a file planted in a running container reaches nothing of the host.

Each test performs the attack for real (a package built here, or links planted from inside a
container) and asserts the host's file was not read, written or deleted, with a one-line error
where prodng refuses.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from probe_helpers import chain, make_probe_root, results
from test_payload import _entry, built_deb, control, crafted_deb

from conftest import Prodng

pytestmark = [pytest.mark.root, pytest.mark.slow]

SECRET = "API_TOKEN=host-secret-4711"


def _folders(*names: str) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [(_entry(f"./{d}/", tarfile.DIRTYPE, mode=0o755), None) for d in names]


def _refused(result: object, says: str) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 2, stderr  # type: ignore[attr-defined]
    errors = [line for line in stderr.splitlines() if line.startswith("prodng: error")]  # after progress lines
    assert len(errors) == 1 and says in errors[0], stderr
    return str(stderr)


def test_environment_file_traversal_reads_nothing_of_the_host(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    secret = tmp_path / "x.env"
    secret.write_text(SECRET + "\n")
    up = "/.." * 24  # far above any root's depth
    unit = f"[Service]\nEnvironmentFile={up}{secret}\nExecStart=/bin/sleep 100000\n"
    deb = built_deb(tmp_path, "prodng-envtrav", "", {"lib/systemd/system/prodng-envtrav.service": unit})
    result = prodng(template, deb, "none", "--name", container, check=False)
    assert "host-secret" not in _refused(result, "EnvironmentFile") + result.stdout


def test_environment_file_symlink_to_a_host_file_reads_nothing(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    secret = tmp_path / "default"
    secret.write_text(SECRET + "\n")
    unit = "[Service]\nEnvironmentFile=-/etc/default/prodng-envlink\nExecStart=/bin/sleep 100000\n"
    deb = crafted_deb(
        tmp_path / "envlink.deb",
        control("prodng-envlink"),
        [
            *_folders("etc", "etc/default", "lib", "lib/systemd", "lib/systemd/system"),
            (_entry("./etc/default/prodng-envlink", tarfile.SYMTYPE, str(secret)), None),
            (_entry("./lib/systemd/system/prodng-envlink.service"), unit.encode()),
        ],
    )
    prodng(template, deb, "none", "--name", container)  # optional (-): the link leads nowhere inside
    assert "host-secret" not in prodng("info", container, "--json").stdout
    assert "host-secret" not in prodng("exec", container, "--", "env").stdout


def test_unit_file_symlink_to_a_host_unit_is_not_read(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    host_unit = tmp_path / "host.service"
    host_unit.write_text(f"[Service]\nEnvironment={SECRET}\nExecStart=/bin/sleep 100000\n")
    deb = crafted_deb(
        tmp_path / "unitlink.deb",
        control("prodng-unitlink"),
        [
            *_folders("lib", "lib/systemd", "lib/systemd/system"),
            (_entry("./lib/systemd/system/prodng-unitlink.service", tarfile.SYMTYPE, str(host_unit)), None),
        ],
    )
    result = prodng(template, deb, "none", "--name", container, check=False)
    assert "host-secret" not in _refused(result, "prodng-unitlink.service") + result.stdout


def test_planted_fifo_and_dev_zero_neither_hang_nor_flood_the_readers(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    prodng(template, "none", "--name", container, "--exec", "sleep 100000")
    plant = f"ln -sf {fifo} /etc/passwd && ln -sf /dev/zero /var/lib/dpkg/status && ln -sf {fifo} /etc/group"
    prodng("exec", container, "--", "sh", "-c", plant)
    opened = threading.Event()

    def watch_fifo() -> None:  # a reader that opened the host's FIFO would unblock this open
        fd = os.open(fifo, os.O_WRONLY)
        opened.set()
        os.close(fd)

    threading.Thread(target=watch_fifo, daemon=True).start()
    where = f"WHERE container = '{container}'"
    users = prodng("query", f"SELECT user FROM prodng_processes {where}", "--json", timeout=30)
    assert '"root"' not in users.stdout and '"0"' in users.stdout  # no names: the link leads nowhere
    packages = prodng("query", f"SELECT name FROM prodng_deb_packages {where}", "--json", timeout=30)
    assert packages.stdout.strip() == "[]"
    assert not opened.wait(0.5), "the host's FIFO was opened"
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # let the watcher go


def test_cleanup_after_install_deletes_nothing_through_a_planted_link(
    prodng: Prodng, template: str, container: str, tmp_path: Path
) -> None:
    host_dir = tmp_path / "sbin"
    host_dir.mkdir()
    (host_dir / "policy-rc.d").write_text("the host's own\n")
    postinst = f"#!/bin/sh\nset -e\nmv /usr/sbin /usr/sbin.moved\nln -s {host_dir} /usr/sbin\n"
    deb = built_deb(
        tmp_path,
        "prodng-sbinlink",
        "X-Prodng-Exec: /bin/sleep 100000\n",
        {"usr/share/doc/prodng-sbinlink/README": "x\n"},
        {"postinst": postinst},
    )
    prodng(template, deb, "none", "--name", container, check=False)
    assert (host_dir / "policy-rc.d").read_text() == "the host's own\n"


# ---- binds and the pool: mount flags on the whole tree ----


@pytest.fixture
def tree_with_submount(tmp_path: Path) -> Iterator[Path]:
    """A host directory with a tmpfs mounted inside it, and a device node in that tmpfs."""
    top = tmp_path / "tree"
    (top / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(top / "sub")], check=True)
    try:
        os.mknod(top / "sub" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        yield top
    finally:
        subprocess.run(["umount", "-l", str(top / "sub")], check=False)


def test_binds_are_read_only_nosuid_nodev_on_every_submount(
    prodng: Prodng, probe_template: str, container: str, tree_with_submount: Path
) -> None:
    tree = tree_with_submount
    prodng(
        "run", probe_template, "--name", container, "--bind", f"{tree}:/tree", "--bind", f"{tree}:/rw:rw",
        "--bind", "/:/host", "--exec", "probe sleep 100000",
    )  # fmt: skip
    checks = [
        "top= write /tree/planted x",
        "sub= write /tree/sub/planted x",
        "procsys= open /host/proc/sys/kernel/hostname w",
        "shm= write /host/dev/shm/prodng-planted x",
        "cgroup= write /host/sys/fs/cgroup/prodng-planted x",
        "rwsub= write /rw/sub/written x",
        "node= open /rw/sub/null r",
    ]
    found = results(prodng("exec", container, "--", "probe", *chain(*checks), check=False).stdout)
    assert {k: found[k][k] for k in found} == {
        "top": "EROFS",
        "sub": "EROFS",
        "procsys": "EROFS",
        "shm": "EROFS",
        "cgroup": "EROFS",
        "rwsub": "ok",  # :rw asked for, on the submount too
        "node": "EACCES",  # nodev unless :dev
    }
    assert sorted(p.name for p in (tree / "sub").iterdir()) == ["null", "written"]
    assert not (tree / "planted").exists() and not Path("/dev/shm/prodng-planted").exists()
    mountinfo = prodng("exec", container, "--", "probe", "cat", "/proc/self/mountinfo").stdout
    rw_mounts = [line.split()[5] for line in mountinfo.splitlines() if line.split()[4].startswith("/rw")]
    assert rw_mounts and all("nosuid" in opts and "nodev" in opts for opts in rw_mounts), rw_mounts


def test_bind_targets_resolve_symlinks_inside_the_root(
    prodng: Prodng, probe_binary: Path, container: str, tmp_path: Path
) -> None:
    host_dir = tmp_path / "host-etc"
    host_dir.mkdir()
    root = make_probe_root(tmp_path / "linked-root", probe_binary)
    (root / "etc/site-available").mkdir()
    (root / "etc/site-enabled").symlink_to("/etc/site-available")  # Debian's *-enabled habit
    (root / "etc/escape").symlink_to(host_dir)  # leads nowhere inside the root
    source = tmp_path / "conf"
    source.write_text("bound\n")
    prodng("template", "import", "linked", str(root), "--force")
    prodng("run", "linked", "--name", container, "--bind", f"{source}:/etc/site-enabled/conf",
           "--exec", "probe sleep 100000")  # fmt: skip
    assert "bound" in prodng("exec", container, "--", "probe", "read", "/etc/site-available/conf").stdout
    prodng("rm", "-f", container)
    refused = prodng("run", "linked", "--name", container, "--bind", f"{source}:/etc/escape/conf",
                     "--exec", "probe sleep 100000", check=False)  # fmt: skip
    _refused(refused, "dangling symlink")
    assert list(host_dir.iterdir()) == []


def test_pool_is_nosuid_nodev_and_hardened_again_on_open(prodng: Prodng, probe_template: str) -> None:
    pool = prodng.root / "pool"
    assert os.statvfs(pool).f_flag & (os.ST_NOSUID | os.ST_NODEV) == os.ST_NOSUID | os.ST_NODEV
    subprocess.run(["mount", "-o", "remount,suid,dev", str(pool)], check=True)  # as an older prodng left it
    prodng("template", "ls")  # any command that opens the pool
    assert os.statvfs(pool).f_flag & (os.ST_NOSUID | os.ST_NODEV) == os.ST_NOSUID | os.ST_NODEV
