"""prodng.storage.inroot against a root planted with the links and special files a payload can make:
nothing outside the root is read, written or deleted, and a FIFO or device never blocks or floods a reader.
Needs no root (symlinks and FIFOs are anyone's); both the openat2 path and the O_NOFOLLOW fallback run."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prodng.storage import inroot, rootdb

SECRET = "root:x:0:0:the host's own passwd:/root:/bin/sh\n"


@pytest.fixture(params=["openat2", "walk"])
def planted(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tmp_path/host holds the host's files; tmp_path/root is a container's root aiming links at them."""
    if request.param == "walk":
        monkeypatch.setattr(inroot, "_have_openat2", False)
    host, root = tmp_path / "host", tmp_path / "root"
    for d in (host, root / "etc/default", root / "usr", root / "var/lib/dpkg", root / "proc"):
        d.mkdir(parents=True)
    (host / "passwd").write_text(SECRET)
    (host / "policy-rc.d").write_text("the host's\n")
    os.mkfifo(host / "fifo")
    (root / "etc/passwd").symlink_to(host / "passwd")
    (root / "etc/group").symlink_to(host / "fifo")
    (root / "var/lib/dpkg/status").symlink_to("/dev/zero")
    (root / "etc/default/x").symlink_to("../../../../../../../" + str(host / "passwd"))
    (root / "etc/magic").symlink_to("/proc/self/root")
    (root / "usr/sbin").symlink_to(host)
    os.mkfifo(root / "etc/fifo")
    yield root
    assert (host / "passwd").read_text() == SECRET and (host / "policy-rc.d").read_text() == "the host's\n"


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "etc/group", "/etc/default/x", "/../../../../etc/passwd", "/etc/magic/etc/passwd"]
)
def test_links_out_of_the_root_read_nothing_of_the_host(planted: Path, path: str) -> None:
    with pytest.raises(OSError) as caught:
        inroot.read_text(planted, path)
    assert SECRET not in str(caught.value)


def test_a_fifo_or_device_is_refused_at_once(planted: Path) -> None:
    started = time.monotonic()
    with pytest.raises(inroot.NotRegularFile):
        inroot.read_bytes(planted, "/etc/fifo")
    assert rootdb.accounts(planted, "group") == {} and rootdb.dpkg_status(planted) == []
    assert time.monotonic() - started < 2


def test_reads_are_capped(planted: Path) -> None:
    (planted / "etc/big").write_bytes(b"x" * 4097)
    with pytest.raises(inroot.TooLarge):
        inroot.read_bytes(planted, "/etc/big", limit=4096)
    assert inroot.read_bytes(planted, "/etc/big", limit=4097) == b"x" * 4097


def test_links_inside_the_root_are_followed_inside(planted: Path) -> None:
    (planted / "etc/real").write_text("inside\n")
    (planted / "etc/alias").symlink_to("/etc/real")
    if inroot._have_openat2 is False:  # the fallback refuses every link
        with pytest.raises(OSError):
            inroot.read_text(planted, "/etc/alias")
    else:
        assert inroot.read_text(planted, "/etc/alias") == "inside\n"


def test_changes_never_go_through_a_planted_link(planted: Path) -> None:
    host = planted.parent / "host"
    with pytest.raises(OSError):  # usr/sbin leads nowhere inside the root
        inroot.write_text(planted, "/usr/sbin/policy-rc.d", "exit 101\n")
    inroot.unlink(planted, "/usr/sbin/policy-rc.d", missing_ok=True)
    inroot.write_text(planted, "/etc/passwd", "root:x:0:0::/root:/bin/sh\n")  # replaces the link itself
    assert not (planted / "etc/passwd").is_symlink()
    inroot.unlink(planted, "/etc/group")  # the link, not the host's FIFO
    assert (host / "fifo").exists() and not os.path.lexists(planted / "etc/group")
    inroot.chown(planted, "/etc/default/x", os.getuid(), os.getgid())
    assert inroot.readlink(planted, "/etc/default/x").endswith("host/passwd")
    inroot.mkdir(planted, "/etc/new", exist_ok=True)
    inroot.rename(planted, "/etc/new", "/etc/renamed")
    assert (planted / "etc/renamed").is_dir() and inroot.exists(planted, "/etc/renamed")


def test_accounts_parse_the_roots_own_files(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nredis:x:101:102::/var/lib/redis:/bin/false\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nredis:x:102:\n")
    assert rootdb.accounts(tmp_path, "passwd") == {"root": (0, 0), "redis": (101, 102)}
    assert rootdb.accounts(tmp_path, "group") == {"root": (0, 0), "redis": (102, 102)}
    assert rootdb.user_names(tmp_path) == {0: "root", 101: "redis"}
