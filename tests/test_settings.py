"""Settings: read once from ROOT/settings.toml and the environment (which wins); bad values are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodng import settings
from prodng.config import open_root
from prodng.errors import InvalidRequest
from prodng.network import modes


def test_defaults_without_a_file(tmp_path: Path) -> None:
    s = settings.load(tmp_path, {})
    assert s == settings.Settings()
    assert s.pids > 0 and s.tmpfs_size > 0 and s.default_memory() > 0


def test_file_then_environment(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text('pool_size = "32G"\npids = 300\nmemory = "1G"\nrecipes = ["/a", "/b"]\n')
    s = settings.load(tmp_path, {"PRODNG_PIDS": "100", "PRODNG_BRIDGE": "pn1", "UNRELATED": "x"})
    assert (s.pool_size, s.pids, s.memory, s.bridge, s.recipes) == (32 * 1024**3, 100, 1024**3, "pn1", ("/a", "/b"))
    assert s.default_memory() == 1024**3


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("pids = -1\n", {}, "pids must not be negative"),
        ('memory = "lots"\n', {}, "not a size"),
        ('colour = "red"\n', {}, "unknown setting 'colour'"),
        ("pids = \n", {}, "settings.toml"),
        ("", {"PRODNG_SUBNET": "10.0.0.0/30"}, "too small"),
        ("", {"PRODNG_BRIDGE": "Bad-Name"}, "bad bridge name"),
        ("", {"PRODNG_DHCP_TIMEOUT": "nan"}, "finite"),
        ("", {"PRODNG_LEASE_TIME": "soon"}, "bad lease_time"),
    ],
)
def test_bad_settings_are_one_line(tmp_path: Path, text: str, environ: dict[str, str], message: str) -> None:
    (tmp_path / "settings.toml").write_text(text)
    with pytest.raises(InvalidRequest, match=message) as caught:
        settings.load(tmp_path, environ)
    assert "\n" not in str(caught.value)


def test_keeper_argv_round_trip(tmp_path: Path) -> None:
    s = settings.load(tmp_path, {"PRODNG_SUBNET": "10.77.0.0/16", "PRODNG_DHCP_TIMEOUT": "2.5"})
    back = settings.from_argv(s.as_argv())
    assert (back.subnet, back.dhcp_timeout, back.bridge, back.lease_time) == ("10.77.0.0/16", 2.5, "prodng0", "1h")
    net = modes.bridge(back)
    assert str(net.interface) == "10.77.0.1/16" and net.lease_time == "1h"


def test_open_root_carries_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODNG_TMPFS_SIZE", "16M")
    assert open_root(tmp_path).settings.tmpfs_size == 16 * 1024**2


def test_defaults_fill_what_the_flags_leave_out() -> None:
    from prodng.container.state import Limits
    from prodng.container.validation import check_limits, with_defaults

    host = settings.Settings(pids=300, memory=2 * 1024**3, memory_high=1024**3, tmpfs_size=16 * 1024**2, disk=0)
    filled = with_defaults(Limits(pids=10, disk=512 * 1024**2), host)
    assert filled == Limits(
        memory=2 * 1024**3, pids=10, memory_high=1024**3, tmpfs_size=16 * 1024**2, disk=512 * 1024**2
    )
    assert with_defaults(Limits(), host).disk is None, "a setting of 0 is no limit"
    assert with_defaults(Limits(memory=512 * 1024**2), host).memory_high is None, "high only below the limit"
    for bad, message in ((Limits(disk=1024), "--disk must be at least 16M"), (Limits(tmpfs_size=1), "--tmpfs-size")):
        with pytest.raises(InvalidRequest, match=message):
            check_limits(bad)


def test_limits_text_and_sizes() -> None:
    from prodng.container.observe import limits_text
    from prodng.container.state import Limits
    from prodng.storage.df import human

    assert limits_text(Limits(memory=64 * 1024**2, pids=40, cpus=0.5, disk=10 * 1024**3)) == (
        "mem=64M pids=40 cpus=0.5 disk=10G"
    )
    assert limits_text(Limits()) == "-"
    assert (human(None), human(512), human(1536), human(3 * 1024**4)) == ("-", "512", "1.5K", "3T")
