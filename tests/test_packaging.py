"""prodng's own .deb: built by packaging/build-deb.sh, then installed by prodng into a container."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conftest import REPO, Prodng

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_own_deb_builds_and_installs_with_prodng(prodng: Prodng, template: str, container: str, tmp_path: Path) -> None:
    built = subprocess.run(
        ["bash", str(REPO / "packaging" / "build-deb.sh"), str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    deb = built.stdout.strip().splitlines()[-1]
    fields = subprocess.run(
        ["dpkg-deb", "-f", deb, "Package", "Architecture", "Depends"], capture_output=True, text=True, check=True
    ).stdout
    assert "Package: prodng" in fields and "dnsmasq-base" in fields and "python3-venv" in fields
    contents = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    assert "./lib/systemd/system/prodng-agent.service" in contents
    assert "./lib/systemd/system/prodng-boot.service" in contents
    assert "./opt/prodng/wheels/prodng-" in contents and "./opt/prodng/wheels/pyroute2-" in contents
    # Everything is a .deb: prodng installs itself (offline wheels, apt for the Debian side).
    prodng(template, deb, "none", "--name", container, "--exec", "sleep 100000", timeout=900)
    assert (
        "Run services in hermetic copy-on-write chroots." in prodng("exec", container, "--", "prodng", "--help").stdout
    )
    native = prodng(
        "exec",
        container,
        "--",
        "/opt/prodng/venv/bin/python",
        "-c",
        "import prodng._native, btrfsutil, prctl; from prodng.container import monitor; print(monitor.SHIM.exists())",
    )
    assert native.stdout.strip() == "True"
