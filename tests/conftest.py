"""Shared fixtures: one throw-away prodng root per session, the bookworm template (cached across sessions)
and the probe template."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest
import template_cache
from probe_helpers import probe_binary, probe_template  # noqa: F401 (fixtures for every test module)

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")
IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    marker = pytest.mark.skip(reason="needs root (run scripts/test.sh as root; CI does)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(marker)


class Prodng:
    """Drives the real CLI (python -m prodng) against one root directory."""

    def __init__(self, root: Path, prefix: tuple[str, ...] = ()) -> None:
        self.root = root
        self.prefix = prefix  # e.g. nsenter into a test's network namespace
        self.env = {**os.environ, "PRODNG_ROOT": str(root), "PRODNG_POOL_SIZE": "16G"}

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.prefix, sys.executable, "-m", "prodng", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"prodng {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def json(self, *args: str) -> Any:  # JSON: tests index it freely
        return json.loads(self(*args, "--json").stdout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "prodng", *args],
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def info(self, name: str) -> dict[str, object]:
        data = self.json("info", name)
        assert isinstance(data, dict)
        return data

    def wait_for(
        self, predicate: Callable[[], T | None | Literal[False]], timeout: float = 15.0, what: str = "condition"
    ) -> T:
        """predicate()'s first true value (a falsy one means not yet)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


def _teardown(root: Path) -> None:
    env = {**os.environ, "PRODNG_ROOT": str(root)}
    state = root / "state"
    for record in state.glob("*/record.json") if state.is_dir() else []:
        subprocess.run([sys.executable, "-m", "prodng", "rm", "-f", record.parent.name], env=env, capture_output=True)
    pool = root / "pool"
    if os.path.ismount(pool):
        subprocess.run(["umount", "-l", str(pool)], check=False)
    shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def own_netns(root: Path, name: str) -> Iterator[Prodng]:
    """A network namespace of the test's own that plays the host for prodng run in it (through
    nsenter: only the network namespace changes). On the way out prodng's host side in there (keeper
    server, dnsmasq, bridge, its /run/prodng directory) is shut down by pid before the namespace goes:
    a directory left behind would be found again when the kernel reuses the namespace's inode."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    prefix = ("nsenter", f"--net=/run/netns/{name}")
    try:
        subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], check=True)
        yield Prodng(root, prefix=prefix)
    finally:
        subprocess.run(
            [
                *prefix,
                sys.executable,
                "-c",
                "from prodng.network import host, modes; from prodng.config import open_root; import sys;"
                " paths = open_root(sys.argv[1]); host.shut_down(paths, modes.bridge(paths.settings))",
                str(root),
            ],
            check=False,
            timeout=60,
        )
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="session")
def session_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="prodng-test-", dir="/var/tmp"))
    yield root
    _teardown(root)


@pytest.fixture(scope="session")
def prodng(session_root: Path) -> Prodng:
    return Prodng(session_root)


@pytest.fixture(scope="session")
def template(prodng: Prodng) -> str:
    """The real bookworm template: debootstrapped (~30 s) once, then received from the test cache (~1 s)."""
    template_cache.ensure(prodng, "bookworm")
    return "bookworm"


@pytest.fixture
def fresh_root() -> Iterator[Prodng]:
    root = Path(tempfile.mkdtemp(prefix="prodng-fresh-", dir="/var/tmp"))
    yield Prodng(root)
    _teardown(root)


@pytest.fixture
def container(prodng: Prodng, request: pytest.FixtureRequest) -> Iterator[str]:
    """A name for one test's container; removed afterwards whatever happened."""
    name = "t-" + request.node.name.replace("[", "-").replace("]", "")[:40].replace("_", "-")
    yield name
    prodng("rm", "-f", name, check=False)
