"""Pure input checks, from tables: every bad input is refused before anything is touched."""

from __future__ import annotations

from pathlib import Path

import pytest

from prodng.config import parse_size
from prodng.container import state, validation
from prodng.container.state import Limits
from prodng.errors import InvalidRequest, NotFound
from prodng.handlers.control import parse_signal
from prodng.storage import recipes


@pytest.mark.parametrize("name", ["web", "web-1", "a.b_c", "x" * 64])
def test_good_names(name: str) -> None:
    assert state.check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a/b", "..", "a..b", "a\0b", "x" * 65, "-lead", ".hidden", "sp ace", "name\n", "\nname"]
)
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidRequest):
        state.check_name(name)


@pytest.mark.parametrize(
    ("text", "value"),
    [("512M", 512 * 1024**2), ("2G", 2 * 1024**3), ("4096", 4096), ("1.5K", 1536), ("64MiB", 64 * 1024**2)],
)
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-5M", "0", "M"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_size(text)


@pytest.mark.parametrize(("text", "number"), [("TERM", 15), ("sigkill", 9), ("HUP", 1), ("10", 10)])
def test_signals(text: str, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["BOGUS", "0", "999", ""])
def test_bad_signals(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_signal(text)


@pytest.mark.parametrize(
    "limits",
    [Limits(memory=0), Limits(pids=0), Limits(pids=-1), Limits(cpus=0.0), Limits(cpus=-1.0), Limits(memory=1024)],
)
def test_bad_limits(limits: Limits) -> None:
    with pytest.raises(InvalidRequest):
        validation.check_limits(limits)


def test_binds(tmp_path: Path) -> None:
    (binds,) = validation.parse_binds([f"{tmp_path}:/data"])
    assert (binds.source, binds.target, binds.read_only) == (str(tmp_path), "/data", True)
    assert not validation.parse_binds([f"{tmp_path}:/data/./x:rw"])[0].read_only
    assert binds.options() == "ro"  # nosuid and nodev unless asked
    (asked,) = validation.parse_binds([f"{tmp_path}:/data:rw,dev,suid"])
    assert (asked.read_only, asked.dev, asked.suid, asked.options()) == (False, True, True, "rw,dev,suid")
    assert validation.parse_binds([f"{tmp_path}:/data:dev"])[0].options() == "ro,dev"


@pytest.mark.parametrize(
    "spec",
    [
        "relative:/x",
        "/nonexistent-prodng:/x",
        "{tmp}:relative",
        "{tmp}:/a/../b",
        "{tmp}:/",
        "{tmp}:/proc/x",
        "{tmp}:/dev",
        "{tmp}:/x:maybe",
        "{tmp}:/x:ro,rw",
        "{tmp}:/x:rw,exec",
        "{tmp}",
        "{tmp}:/x:rw,owner=",
        "{tmp}:/x:rw,owner=a,owner=b",
        "{tmp}:/x:rw,owner=Not A User",
        "{tmp}:/x:rw,owner=../root",
    ],
)
def test_bad_binds(spec: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest):
        validation.parse_binds([spec.format(tmp=tmp_path)])


@pytest.mark.parametrize(
    ("policy", "parsed"),
    [
        ("no", ("no", 0)),
        ("always", ("always", 0)),
        ("on-failure", ("on-failure", 0)),
        ("on-failure:3", ("on-failure", 3)),
    ],
)
def test_restart(policy: str, parsed: tuple[str, int]) -> None:
    assert validation.parse_restart(policy) == parsed


@pytest.mark.parametrize("policy", ["sometimes", "always:3", "on-failure:x", ""])
def test_bad_restart(policy: str) -> None:
    with pytest.raises(InvalidRequest):
        validation.parse_restart(policy)


@pytest.mark.parametrize("env", ["NOEQUALS", "=x", "1A=b", "A B=c"])
def test_bad_env(env: str) -> None:
    with pytest.raises(InvalidRequest):
        validation.parse_env([env])


def test_shipped_recipes_parse() -> None:
    for name in ("bookworm", "trixie", "bookworm-build"):
        recipe = recipes.find(name)
        assert recipe.name == name and recipe.variant == "minbase"
    assert "build-essential" in recipes.find("bookworm-build").packages


def test_unknown_template() -> None:
    with pytest.raises(NotFound, match="unknown template 'nosuch'"):
        recipes.find("nosuch")


BAD_RECIPES = {
    "missing-suite": ("Name: missing-suite\n", "missing field Suite"),
    "bad-variant": ("Name: bad-variant\nSuite: bookworm\nVariant: huge\n", "Variant must be"),
    "bad-suite": ("Name: bad-suite\nSuite: Book Worm\n", "malformed Suite"),
    "bad-package": ("Name: bad-package\nSuite: bookworm\nPackages: ok, no/slash\n", "malformed package"),
    "extra-field": ("Name: extra-field\nSuite: bookworm\nColour: red\n", "unknown field Colour"),
    "wrong-name": ("Name: other\nSuite: bookworm\n", "equal to the file name"),
    "bad-mirror": ("Name: bad-mirror\nSuite: bookworm\nMirror: ftp:/nope\n", "malformed Mirror"),
}


@pytest.mark.parametrize("name", sorted(BAD_RECIPES))
def test_bad_recipes(name: str, tmp_path: Path) -> None:
    text, message = BAD_RECIPES[name]
    (tmp_path / f"{name}.recipe").write_text(text)
    with pytest.raises(InvalidRequest, match=message):
        recipes.find(name, (str(tmp_path),))


def test_host_mirror_is_a_debian_archive() -> None:
    mirror = recipes.host_mirror()
    assert mirror.startswith(("http://", "https://", "file:/")) and "security" not in mirror


def test_records_keep_parsed_values_and_old_records_load() -> None:
    """The record holds the network mode, forwards and restart policy parsed; its JSON keeps their text forms."""
    import json

    from prodng.container.state import ContainerRecord, Restart
    from prodng.network.modes import Forward, Mode

    old = {
        "name": "web",
        "template": "bookworm",
        "argv": ["x"],
        "restart": "on-failure",
        "restart_max": 3,
        "network": "static:10.88.0.200/24,gw=10.88.0.1",
        "forwards": ["8080:80/tcp", "53:53/udp"],
        "a_key_from_a_later_version": 1,
    }
    record = ContainerRecord.from_json(old)
    assert record.network.wired and str(record.network.address) == "10.88.0.200/24"
    assert record.forwards == (Forward("tcp", 8080, 80), Forward("udp", 53, 53))
    assert record.restart is Restart.ON_FAILURE and record.restart_max == 3
    data = record.to_json()
    assert (data["network"], data["forwards"], data["restart"]) == (old["network"], old["forwards"], old["restart"])
    assert ContainerRecord.from_json(json.loads(json.dumps(data))) == record
    minimal = ContainerRecord.from_json({"name": "a", "template": "t", "argv": []})
    assert (minimal.network, minimal.forwards, minimal.restart) == (Mode("none"), (), Restart.NO)


def test_a_bad_name_is_refused_before_it_becomes_a_lock_path(tmp_path: Path) -> None:
    from prodng.config import Paths

    with pytest.raises(InvalidRequest), state.locked(Paths(tmp_path), "a\0b"):
        pass
