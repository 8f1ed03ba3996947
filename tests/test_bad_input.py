"""Bad input is a user error in one line with its own exit code, on the CLI and over REST (issue 17, 8/10/13)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_payload import built_deb

from prodng import run
from prodng.config import parse_size
from prodng.errors import InvalidRequest
from prodng.network import modes
from prodng.params import parse_param
from prodng.payload import deb
from prodng.verbs import BY_NAME

NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "١٢", "0x10", "1_000", ""]


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRODNG_ROOT": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "prodng", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prodng: error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize("text", NON_FINITE)
def test_every_number_param_refuses_non_finite(text: str) -> None:
    params = [p for v in BY_NAME.values() for p in v.params if p.kind.parse_word]
    assert {p.name for p in params} >= {"timeout", "cpus", "pids", "tail"}
    for param in params:
        with pytest.raises(InvalidRequest):
            parse_param(param, text)


@pytest.mark.parametrize("raw", [math.nan, math.inf, -math.inf, "nan", "1e400"])
def test_rest_numbers_refuse_non_finite(raw: object) -> None:
    """JSON bodies carry NaN and Infinity (Python's json reads them) as numbers, not text."""
    timeout = next(p for p in BY_NAME["stop"].params if p.name == "timeout")
    with pytest.raises(InvalidRequest):
        timeout.parse(raw)


def test_no_text_param_takes_a_nul_byte() -> None:
    """A NUL in an exec's argv over REST was an internal error of the agent (Popen refused it)."""
    params = [p for v in BY_NAME.values() for p in v.params if p.kind.name in ("STR", "LIST", "ARGV")]
    assert {p.name for p in params} >= {"command", "name", "user"}
    for param in params:
        with pytest.raises(InvalidRequest, match="NUL byte"):
            parse_param(param, ["ok", "a\0b"] if param.kind.many else "a\0b")


@pytest.mark.parametrize("text", ["1e400", "nan", "inf", "9e18G", "١٢M"])
def test_sizes_refuse_non_finite(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_size(text)


@pytest.mark.parametrize(
    "args",
    [
        ("stop", "-t", "nan", "x"),
        ("stop", "-t", "inf", "x"),
        ("query", "--timeout", "nan", "SELECT 1"),
        ("run", "probe", "--exec", "/x", "--cpus", "nan"),
        ("run", "probe", "--exec", "/x", "--cpus", "inf"),
        ("run", "probe", "--exec", "/x", "--memory", "1e400"),
        ("run", "probe", "--exec", "/x", "--name", ""),
        ("run", "probe", "--exec", "/x", "--net", "dhcp", "-p", "٨٠:80"),
        ("run", "../x", "--exec", "/x"),
        ("logs", "--tail", "nan", "x"),
    ],
)
def test_cli_refuses_in_one_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    line = one_line_error(cli(tmp_path, *args))
    assert "internal" not in line
    if args[1] == "../x":
        assert "template name" in line  # not reported as a bad container name
    assert not (tmp_path / "state").exists()  # refused before anything was made


def test_unicode_digits_in_ports_refused() -> None:
    assert int("٨٠") == 80  # why [0-9]: Python reads them
    with pytest.raises(InvalidRequest):
        modes.parse_forwards(["٨٠:80"])


def test_broken_pipe_is_quiet(tmp_path: Path) -> None:
    """`prodng ... | head`: the reader is gone before prodng writes; no traceback, SIGPIPE's status."""
    read, write = os.pipe()
    os.close(read)
    env = {**os.environ, "PRODNG_ROOT": str(tmp_path)}
    sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20000) SELECT x FROM c"
    result = subprocess.run(
        [sys.executable, "-m", "prodng", "query", sql], env=env, stdout=write, stderr=subprocess.PIPE, text=True
    )
    os.close(write)
    assert result.stderr == ""
    assert result.returncode == 141


@pytest.mark.root
def test_failed_nft_is_one_telling_line() -> None:
    """nft ends its complaint with the statement and a caret line; the error names the cause."""
    with pytest.raises(Exception) as caught:
        run.run(["unshare", "-n", "nft", "-f", "-"], input="add element ip prodng-none forwards { tcp . 80 }\n")
    message = str(caught.value)
    assert "Error:" in message and "^" not in message and "\n" not in message


def _deb_with(tmp_path: Path, control_extra: str, unit: str | None) -> str:
    return built_deb(
        tmp_path, "quoted", control_extra, {} if unit is None else {"lib/systemd/system/quoted.service": unit}
    )


def test_unbalanced_quote_in_exec_start_refused_before_install(tmp_path: Path) -> None:
    path = _deb_with(tmp_path, "", "[Service]\nExecStart=/bin/echo 'unbalanced\n")
    with pytest.raises(InvalidRequest, match="ExecStart.*quotation"):
        deb.inspect(path)


@pytest.mark.parametrize(
    "unit",
    [
        "[Service]\nExecStart=/bin/echo \\\n  'unbalanced\n",  # a continued line is one line
        "[Service]\nExecStart=/bin/echo \\\n# a comment inside a continuation is dropped\n  'unbalanced",
        '[Unit]\nDescription=x\n[Service]\nExecStartPre=/bin/true\nExecReload=/bin/kill "-HUP\n',
    ],
)
def test_unit_read_as_systemd_reads_it_before_install(tmp_path: Path, unit: str) -> None:
    """deb.inspect reads a shipped unit with the parser the service is made with (payload/units.py)."""
    with pytest.raises(InvalidRequest, match="Exec.*quotation"):
        deb.inspect(_deb_with(tmp_path, "", unit))


def test_exec_start_reset_by_an_empty_assignment_is_not_checked(tmp_path: Path) -> None:
    """`ExecStart=` empties the list (systemd.unit(5)): what came before it is never run, so never refused."""
    unit = "[Service]\nExecStart=/bin/echo 'unbalanced\nExecStart=\nExecStart=/bin/true\n"
    assert deb.inspect(_deb_with(tmp_path, "", unit)).units == ("/lib/systemd/system/quoted.service",)


def test_unbalanced_quote_in_x_prodng_exec_refused(tmp_path: Path) -> None:
    path = _deb_with(tmp_path, 'X-Prodng-Exec: /bin/echo "unbalanced\n', None)
    with pytest.raises(InvalidRequest, match="X-Prodng-Exec.*quotation"):
        deb.inspect(path)
