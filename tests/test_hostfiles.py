"""Issue 13: a hostile .deb or a file planted in a running container reaches nothing of the host.

Each test performs the attack for real (a package built here, or links planted from inside a
container) and asserts the host's file was not read, written or deleted, with a one-line error
where prodng refuses.
"""

from __future__ import annotations

import os
import tarfile
import threading
from pathlib import Path

import pytest
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
