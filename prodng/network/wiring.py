"""What is wired for one container, and where it is kept: names, MACs, state/NAME/net.json.

The veth and MAC names are derived from the prodng root and the container's name, so
whoever comes next (the keeper, a later stop/rm) finds the same objects without asking
anyone. The runtime directory is per prodng root *and* per network namespace.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prodng import locks
from prodng.config import Paths
from prodng.container import state
from prodng.network.modes import DOMAIN, Bridge

# ---- names for one container's parts: stable across restarts ----


def keeper_argv(paths: Paths, name: str) -> list[str]:
    """The keeper's command line; the monitor hands it to the warm keeper server if one answers."""
    # The keeper may be forked from a server started with another environment: the CLI's
    # settings travel in its arguments.
    settings = paths.settings.as_argv()
    return [sys.executable, "-I", "-m", "prodng.network.keeper_server", str(paths.root), name, *settings]


def veth_name(paths: Paths, name: str) -> str:
    return "pn" + paths.digest(name)[:12]


def mac_address(paths: Paths, name: str) -> str:
    """Locally administered and stable, so dnsmasq gives a restarted container its old address."""
    raw = paths.digest(name)[12:22]
    return "02:" + ":".join(raw[i : i + 2] for i in range(0, 10, 2))


def runtime_dir(paths: Paths) -> Path:
    """dnsmasq's files and the claims, per prodng root and per network namespace, in /run:
    a reboot empties it, as it stops every container."""
    netns = os.stat("/proc/thread-self/ns/net").st_ino
    return Path("/run/prodng") / f"{paths.digest()[:8]}-{netns}"


def keeper_server(paths: Paths) -> Path:
    return runtime_dir(paths) / "keeper.sock"


# ---- the per-container record of what is wired: state/NAME/net.json ----


def net_file(paths: Paths, name: str) -> Path:
    return paths.container_state(name) / "net.json"


def read(paths: Paths, name: str) -> dict[str, object]:
    try:
        return dict(json.loads(net_file(paths, name).read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def write(paths: Paths, name: str, data: dict[str, object]) -> None:
    state.write_atomic(net_file(paths, name), json.dumps(data), durable=False)


def keeper_owner(wired: dict[str, object]) -> str:
    """How a keeper signs what it installs (the bridge port's filter): pid and start time."""
    return f"keeper {wired.get('keeper_pid', 0)} {wired.get('keeper_start', 0)}"


def keeper_alive(paths: Paths, name: str) -> bool:
    wired = read(paths, name)
    return state.same_process(int(str(wired.get("keeper_pid", 0))), int(str(wired.get("keeper_start", 0))))


# ---- host side: bridge, firewall table, dnsmasq ----


@contextmanager
def locked(paths: Paths) -> Iterator[None]:
    with locks.hold(paths.locks / "network.lock"):
        yield


def resolv_conf_path(paths: Paths, name: str) -> Path:
    return paths.container_state(name) / "resolv.conf"


def write_resolv_conf(paths: Paths, name: str, net: Bridge) -> None:
    """Bound read-only on the container's /etc/resolv.conf: dnsmasq, and NAME for NAME.prodng."""
    text = f"nameserver {net.gateway}\nsearch {DOMAIN}\n"
    state.write_atomic(resolv_conf_path(paths, name), text, mode=0o644, durable=False)  # any uid resolves


def describe(paths: Paths, name: str) -> dict[str, object]:
    wired = read(paths, name)
    if not wired:
        return {}
    return {
        k: wired[k] for k in ("ip", "prefixlen", "gateway", "mac", "veth", "dns", "filters", "outbound") if k in wired
    }
