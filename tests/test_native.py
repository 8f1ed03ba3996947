"""The C core's pure parts (config parsing, bind targets, error kinds) as a C program: no root needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prodng import errors

from conftest import REPO

sys.path.insert(0, str(REPO / "native"))
from build_native import build_program  # type: ignore[import-not-found]  # noqa: E402


def test_config_parsing_bind_targets_and_error_kinds(tmp_path: Path) -> None:
    program = build_program(
        tmp_path / "test_config", ["tests/test_config.c", "util.c", "config.c", "inroot.c", "idmap.c", "rootfs.c"], []
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # No tcache: the program counts leaks with mallinfo2, which counts tcache'd chunks as in use.
    env = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}
    result = subprocess.run([program, scratch], capture_output=True, text=True, timeout=60, env=env)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines[-1] == "ok", result.stdout + result.stderr
    # Every kind the C core can report has its error class in Python, and no other.
    assert lines[0].split()[1:] == list(errors._NATIVE_KINDS)


@pytest.mark.parametrize(
    ("report", "cls", "message"),
    [
        (
            "invalid exec /no/such: No such file or directory",
            errors.InvalidRequest,
            "cannot start: exec /no/such: No such file or directory",
        ),
        (
            "refused refusing root: proc is a symlink",
            errors.InvalidRequest,
            "cannot start: refusing root: proc is a symlink",
        ),
        (
            "notfound exec x: No such file or directory",
            errors.NotFound,
            "cannot start: exec x: No such file or directory",
        ),
        (
            "system mount proc on /proc: Permission denied",
            errors.SystemFailure,
            "cannot start: mount proc on /proc: Permission denied",
        ),
        ("something unexpected", errors.SystemFailure, "cannot start: something unexpected"),
    ],
)
def test_native_error_kinds_map_to_classes(report: str, cls: type[errors.ProdngError], message: str) -> None:
    error = errors.from_native(report, "cannot start")
    assert type(error) is cls and error.message == message
