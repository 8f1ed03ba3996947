"""Claims: a DNS name, an address or a host port belongs to one container at a time.

The DNS name (case-blind, as DNS is), a static address and the host ports are taken
under the network lock before anything starts; a leased address when its keeper
publishes it (dnsmasq gave it out, so whoever held it before has lost it). They are
released by the keeper's teardown, or by whoever finds a dead keeper's work undone: that
teardown removes a shared object (a forward, the NAT of an address) only while its claim
is the container's own or nobody's, under the lock new owners claim under, so the rm of
a container whose keeper was killed never removes what the port's or the address's new
owner installed.
"""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from prodng.config import Paths
from prodng.errors import Conflict
from prodng.network.modes import DOMAIN, Bridge, Forward, Mode, check_static
from prodng.network.wiring import keeper_alive, locked, runtime_dir

# ---- claims: a static address or a host port belongs to one container at a time ----


def _claim_path(paths: Paths, key: str) -> Path:
    return runtime_dir(paths) / "claims" / key


def claim(paths: Paths, name: str, mode: Mode, forwards: tuple[Forward, ...], net: Bridge) -> None:
    """Check and take the container's DNS name, static address and host ports; all or none."""
    # DNS is case-blind and container names are not: web and WEB would both answer for web.prodng.
    keys = [f"name-{name.lower()}.{DOMAIN}", *(f"{f.proto}-{f.host_port}" for f in forwards)]
    if mode.address:
        check_static(mode, net)
        keys.append(f"ip-{mode.address.ip}")
    with locked(paths):
        for key in keys:
            owner = _claim_path(paths, key)
            holder = owner.read_text() if owner.exists() else ""
            if holder and holder != name and keeper_alive(paths, holder):
                raise Conflict(f"{_describe(key)} is in use by container {holder}")
        for f in forwards:
            _check_port_free(f)
        for key in keys:
            owner = _claim_path(paths, key)
            owner.parent.mkdir(parents=True, exist_ok=True)
            owner.write_text(name)


def _describe(key: str) -> str:
    kind, _, what = key.partition("-")
    return {"name": "DNS name ", "ip": "address ", "tcp": "host port tcp/", "udp": "host port udp/"}[kind] + what


def _check_port_free(forward: Forward) -> None:
    kind = socket.SOCK_STREAM if forward.proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("0.0.0.0", forward.host_port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise Conflict(f"host port {forward.host_port}/{forward.proto} is in use on the host") from None
            raise


def claim_leased_address(paths: Paths, name: str, address: str) -> None:
    """The address dnsmasq leased to NAME is NAME's: a stale claim of a dead keeper's goes."""
    with locked(paths):
        owner = _claim_path(paths, f"ip-{address}")
        owner.parent.mkdir(parents=True, exist_ok=True)
        owner.write_text(name)


def release_claims(paths: Paths, name: str) -> None:
    with locked(paths):
        release_claims_locked(paths, name)


def release_claims_locked(paths: Paths, name: str) -> None:
    directory = runtime_dir(paths) / "claims"
    for owner in directory.iterdir() if directory.is_dir() else ():
        if owner.read_text() == name:
            owner.unlink(missing_ok=True)


def release_address(paths: Paths, name: str, address: str) -> None:
    """A keeper's old address, after a renewal gave it another one."""
    with locked(paths):
        if mine_or_nobodys(paths, name, f"ip-{address}"):
            _claim_path(paths, f"ip-{address}").unlink(missing_ok=True)


def mine_or_nobodys(paths: Paths, name: str, key: str) -> bool:
    """Whether NAME may remove what hangs on KEY (tcp-PORT, udp-PORT, ip-ADDRESS): no other
    container has claimed it since. The caller holds the network lock."""
    owner = _claim_path(paths, key)
    return (owner.read_text() if owner.exists() else "") in ("", name)


def not_claimed_by_others(paths: Paths, name: str, forwards: tuple[Forward, ...]) -> tuple[Forward, ...]:
    """The forwards whose host port no other container has claimed since: only these may be
    removed for NAME (a port freed by a dead keeper may already forward to its new owner).
    The caller holds the network lock."""
    return tuple(f for f in forwards if mine_or_nobodys(paths, name, f"{f.proto}-{f.host_port}"))
