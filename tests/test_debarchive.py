"""A payload is validated in one pass and in bounded memory, whatever compresses it: each of dpkg's
compressions is size-checked against the disk limit at the headers, and bombs (a 260 KB data.tar.zst
of 8 GiB, a control file of 2 GiB, a million headers) cost the validating process no more than a
few MB (python-debian held a zstd member's whole content in memory: 2 GB for a 1 GiB member)."""

from __future__ import annotations

import bz2
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deb_bombs import CONTROL, ar_deb, bomb_deb, control_tar, tar_header, zstd_frame

from prodng.errors import InvalidRequest
from prodng.payload import deb

MiB = 1024**2
# The validation as the CLI runs it, in a process of its own that says its peak resident memory (VmHWM:
# its own, where wait4's maxrss would count the test process it was forked from).
CHILD = """
import json, sys
from prodng.errors import InvalidRequest
from prodng.payload import deb
try:
    answer = {"unpacked": deb.inspect(sys.argv[1], int(sys.argv[2]) or None).unpacked_size}
except InvalidRequest as err:
    answer = {"refused": str(err)}
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps(answer), int(status["VmHWM"].split()[0]) * 1024)
"""


def _inspect_in_child(path: Path, limit: int) -> tuple[dict[str, object], float, int]:
    """The child's answer, its run time and its peak resident memory in bytes."""
    began = time.monotonic()
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), str(limit)], capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    answer, peak = child.stdout.rsplit(" ", 1)
    return json.loads(answer), time.monotonic() - began, int(peak)


@pytest.mark.parametrize("compression", ["gzip", "xz", "zstd", "none"])
def test_every_compression_dpkg_deb_makes_is_size_checked(tmp_path: Path, compression: str) -> None:
    root = tmp_path / "root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_bytes(CONTROL.replace(b"bomb", b"sized"))
    (root / "lib/systemd/system").mkdir(parents=True)
    (root / "lib/systemd/system/sized.service").write_text("[Service]\nExecStart=/bin/sleep 1\n")
    (root / "opt").mkdir()
    (root / "opt/blob").write_bytes(bytes(8 * MiB))
    made = tmp_path / f"sized-{compression}.deb"
    subprocess.run(["dpkg-deb", f"-Z{compression}", "--root-owner-group", "-b", str(root), str(made)], check=True)
    data = [m for m in subprocess.run(["ar", "t", str(made)], capture_output=True, text=True).stdout.split()]
    assert (
        data[2] == {"gzip": "data.tar.gz", "xz": "data.tar.xz", "zstd": "data.tar.zst", "none": "data.tar"}[compression]
    )
    payload = deb.inspect(str(made))
    assert payload.package == "sized" and 8 * MiB <= payload.unpacked_size < 9 * MiB
    assert payload.units == ("/lib/systemd/system/sized.service",)
    with pytest.raises(
        InvalidRequest, match=r"unpacks to more than the container's disk limit of 4 MiB \(8 MiB by /opt/blob\)"
    ):
        deb.inspect(str(made), 4 * MiB)


def test_bzip2_which_dpkg_still_reads_is_size_checked_too(tmp_path: Path) -> None:
    data = bz2.compress(tar_header("./opt/blob", 8 * MiB) + bytes(8 * MiB) + bytes(1024))
    made = ar_deb(tmp_path / "bz.deb", control_tar(), ("data.tar.bz2", data))
    assert deb.inspect(str(made)).unpacked_size == 8 * MiB
    with pytest.raises(InvalidRequest, match="disk limit of 4 MiB"):
        deb.inspect(str(made), 4 * MiB)


@pytest.mark.parametrize("compression", ["zst", "xz", "gz"])
def test_an_8_gib_bomb_is_refused_at_its_header_in_bounded_memory(tmp_path: Path, compression: str) -> None:
    bomb = bomb_deb(tmp_path, 8, compression)
    assert bomb.stat().st_size < 10 * MiB
    answer, took, peak = _inspect_in_child(bomb, 1024 * MiB)
    assert str(answer["refused"]).startswith(
        "bomb_1.0_all.deb: unpacks to more than the container's disk limit of 1024 MiB (8192 MiB by /opt/bomb)"
    ), answer
    assert took < 10 and peak < 100 * MiB, f"{took:.1f} s, {peak // MiB} MiB"


def test_a_2_gib_control_file_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    control = zstd_frame([tar_header("./control", 2 * 1024**3), 2 * 1024**3, bytes(1024)])
    bomb = ar_deb(tmp_path / "control-bomb.deb", ("control.tar.zst", control), ("data.tar", bytes(1024)))
    answer, took, peak = _inspect_in_child(bomb, 0)
    assert answer == {"refused": "control-bomb.deb: control.tar unpacks to more than 64 MiB"}, answer
    assert took < 10 and peak < 100 * MiB, f"{took:.1f} s, {peak // MiB} MiB"


def test_many_headers_cost_no_memory(tmp_path: Path) -> None:
    """tarfile keeps every header it reads: a million empty files took 1.1 GB before (here 400,000, for time)."""
    count = 400_000
    header = tar_header("./opt/e", 0)
    packed = subprocess.run(
        ["zstd", "-1", "-q", "-c"], input=header * count + bytes(1024), capture_output=True, check=True
    ).stdout
    many = ar_deb(tmp_path / "many.deb", control_tar(), ("data.tar.zst", packed))
    answer, took, peak = _inspect_in_child(many, 0)
    assert answer == {"unpacked": 0}
    assert peak < 100 * MiB, f"{peak // MiB} MiB ({took:.1f} s)"


@pytest.mark.parametrize(
    "members,says",
    [
        ([("control.tar.gz", b"")], "debian-binary is not the first member"),
        ([("debian-binary", b"2.0\n"), ("data.tar.gz", b"")], "want control.tar and data.tar"),
        ([("debian-binary", b"2.0\n"), ("data.tar.gz", b""), ("control.tar.gz", b"")], "want control.tar and data.tar"),
        ([("debian-binary", b"2.0\n"), ("control.tar.rar", b""), ("data.tar", b"")], "want control.tar and data.tar"),
        ([("debian-binary", b"3.0\n"), ("control.tar", b""), ("data.tar", b"")], "not format 2.x"),
    ],
)
def test_members_out_of_dpkg_order_are_refused(tmp_path: Path, members: list[tuple[str, bytes]], says: str) -> None:
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, blob in members:
        out.write(f"{name:<16}{0:<12}0     0     100644  {len(blob):<10}`\n".encode() + blob + b"\n" * (len(blob) % 2))
    (tmp_path / "odd.deb").write_bytes(out.getvalue())
    with pytest.raises(InvalidRequest, match=f"not a valid Debian binary package \\(.*{says}"):
        deb.inspect(str(tmp_path / "odd.deb"))


def test_a_truncated_member_is_refused(tmp_path: Path) -> None:
    whole = bomb_deb(tmp_path, 1, "zst").read_bytes()
    (tmp_path / "cut.deb").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InvalidRequest, match=r"not a valid Debian binary package \(truncated ar member\)"):
        deb.inspect(str(tmp_path / "cut.deb"))


def test_no_zstd_tool_is_said_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host without the zstd tool cannot read a zstd payload: that is said (exit 5), not 'not a valid package'."""
    from prodng import run
    from prodng.errors import SystemFailure

    made = ar_deb(tmp_path / "z.deb", control_tar(), ("data.tar.zst", zstd_frame([bytes(1024)])))
    monkeypatch.setitem(run.BASE_ENV, "PATH", str(tmp_path))  # where run.require looks for tools
    with pytest.raises(SystemFailure, match="zstd is not installed"):
        deb.inspect(str(made))
