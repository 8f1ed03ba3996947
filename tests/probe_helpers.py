"""The static probe (tests/probe/probe.c): built once per version of its source, run on the host or in a container.

The binary is cached under ~/.cache/prodng-tests/probe-<hash>/probe, keyed by the source and the compiler flags,
so a session pays the ~0.3 s static link only when probe.c changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Prodng  # conftest imports this module: no import at run time

PROBE_SOURCE = Path(__file__).resolve().parent / "probe" / "probe.c"
CFLAGS = ("-static", "-O2", "-Wall", "-Wextra", "-Werror")
_TOKEN = re.compile(r"([\w-]+)=(\S*)")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "prodng-tests"


def build_probe() -> Path:
    """The probe binary for the current probe.c, compiled if this version is not cached yet."""
    source = PROBE_SOURCE.read_bytes()
    key = hashlib.sha256("\0".join(CFLAGS).encode() + b"\0" + source).hexdigest()[:16]
    binary = cache_dir() / f"probe-{key}" / "probe"
    if binary.is_file():
        os.utime(binary.parent)  # in use: not stale
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(f".probe-{os.getpid()}")  # a killed build never leaves a half-written binary
    result = subprocess.run(["gcc", *CFLAGS, "-o", str(partial), str(PROBE_SOURCE)], capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise AssertionError(f"building the probe failed:\n{result.stderr}")
    os.replace(partial, binary)
    # Other versions may be in use by a session of another checkout: remove only those unused for a day.
    for stale in binary.parent.parent.glob("probe-*"):
        if stale != binary.parent and time.time() - stale.stat().st_mtime > 86400:
            shutil.rmtree(stale, ignore_errors=True)
    return binary


def chain(*commands: str) -> list[str]:
    """The arguments of one probe run doing each command in turn, whatever the others gave:
    chain("a= open /x w", "caps") is `probe a= open /x w ; caps`."""
    return shlex.split(" ; ".join(commands))


def facts(output: str) -> dict[str, str]:
    """The key=value tokens of a probe's output (later lines win), \\xNN escapes decoded."""
    return {key: _unescape(value) for key, value in _TOKEN.findall(output)}


def results(output: str) -> dict[str, dict[str, str]]:
    """Each result line by its first key (a subcommand or a LABEL=): `sysrq=EROFS` -> {"sysrq": {"sysrq": "EROFS"}}."""
    lines = {}
    for line in output.splitlines():
        tokens = facts(line)
        if tokens and (first := _TOKEN.match(line)):
            lines[first.group(1)] = tokens
    return lines


def findings(output: str) -> list[dict[str, object]]:
    """The JSON lines of `probe racer`."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _unescape(value: str) -> str:
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


PASSWD = "root:x:0:0:root:/root:/bin/probe\nnobody:x:65534:65534:nobody:/nonexistent:/bin/probe\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def make_probe_root(root: Path, binary: Path) -> Path:
    """A root holding only the probe (no shell, no libc): what `prodng template import probe ROOT` takes."""
    for directory in ("bin", "etc", "proc", "sys", "dev", "run", "tmp", "root"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    shutil.copy(binary, root / "bin" / "probe")
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


@pytest.fixture(scope="session")
def probe_binary() -> Path:
    return build_probe()


@pytest.fixture(scope="session")
def probe_template(prodng: Prodng, probe_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A template holding only the probe, imported in milliseconds: for every test that needs a process in a
    container but nothing of Debian."""
    source = make_probe_root(tmp_path_factory.mktemp("probe-root"), probe_binary)
    prodng("template", "import", "probe", str(source))
    return "probe"
