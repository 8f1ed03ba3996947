"""Checking what a user asks of a container (binds, env, restart, limits, network) before
anything is touched, and naming containers."""

from __future__ import annotations

import os
import posixpath
import re
import secrets

from prodng.config import Paths
from prodng.container import state
from prodng.container.state import Bind, Limits
from prodng.errors import InvalidRequest
from prodng.frozen import replace
from prodng.network import modes
from prodng.settings import Settings

RESERVED_TARGETS = ("/proc", "/sys", "/dev")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ---- parsing user input: every check happens before anything is created ----


BIND_OPTIONS = ("ro", "rw", "dev", "suid")
BIND_HINT = "HOST:CONTAINER[:ro|rw][,dev][,suid][,owner=USER]"
USER_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?|[0-9]{1,10}")


def parse_binds(specs: list[str]) -> tuple[Bind, ...]:
    """HOST:CONTAINER[:OPTIONS]: read-only, nosuid and nodev on the whole bound tree unless OPTIONS
    (comma-separated) say rw, suid or dev; owner=USER idmaps the tree for a user of the container.
    HOST is kept as its real path."""
    binds = []
    for spec in specs:
        parts = spec.split(":")
        options = parts.pop().split(",") if len(parts) == 3 else ["ro"]
        owners = [o.removeprefix("owner=") for o in options if o.startswith("owner=")]
        flags = [o for o in options if not o.startswith("owner=")]
        if len(parts) != 2 or not set(flags) <= set(BIND_OPTIONS) or {"ro", "rw"} <= set(flags) or len(owners) > 1:
            raise InvalidRequest(f"malformed --bind {spec!r}", hint=BIND_HINT)
        source, target = parts
        if not os.path.isabs(source) or not os.path.exists(source):
            raise InvalidRequest(f"bind source {source!r} must be an existing absolute path")
        clean = posixpath.normpath(target)
        if not target.startswith("/") or ".." in target.split("/") or clean == "/" or "\x1f" in spec:
            raise InvalidRequest(f"bind target {target!r} must be an absolute path inside the container")
        if any(clean == r or clean.startswith(r + "/") for r in RESERVED_TARGETS):
            raise InvalidRequest(f"bind target {target!r} is managed by prodng")
        if owners:
            _check_owned_source(source, owners[0])
        # Kept as its real path, resolved now, as the operator named it: the init mounts it at every start with
        # no symlink allowed on the way, so one swapped in later (a container writing a parent of it through a
        # :rw bind) cannot aim the bind at another tree of the host.
        real = os.path.realpath(source)
        bind = Bind(real, clean, "rw" not in flags, dev="dev" in flags, suid="suid" in flags)
        binds.append(replace(bind, owner=owners[0]) if owners else bind)
    return tuple(binds)


def _check_owned_source(source: str, owner: str) -> None:
    """owner= maps the source's owner: the source must be named exactly (the init checks again when it
    mounts it) and must not be root's (the service's files would be root's on the host)."""
    if not USER_NAME.fullmatch(owner):
        raise InvalidRequest(f"bind owner {owner!r} is not a user name or uid", hint=BIND_HINT)
    real = os.path.realpath(source)
    if real != posixpath.normpath(source):
        raise InvalidRequest(f"bind source {source!r} goes through a symlink: owner= needs its real path {real!r}")
    if os.stat(source).st_uid == 0:
        raise InvalidRequest(
            f"bind source {source!r} is owned by root: owner= gives the service its owner's files, never root's",
            hint="chown it to any unprivileged user (who need not exist in the container)",
        )


def parse_env(specs: list[str]) -> tuple[str, ...]:
    for spec in specs:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", spec) or "\0" in spec:
            raise InvalidRequest(f"malformed -e {spec!r}", hint="KEY=VALUE")
    return tuple(specs)


def parse_restart(policy: str) -> tuple[state.Restart, int]:
    name, _, count = policy.partition(":")
    if name not in set(state.Restart) or (count and (name != "on-failure" or not count.isdigit())):
        raise InvalidRequest(f"unknown restart policy {policy!r}", hint="no, always, on-failure[:N]")
    return state.Restart(name), int(count or 0)


def check_limits(limits: Limits) -> Limits:
    for label, value in (("--memory", limits.memory), ("--pids", limits.pids), ("--cpus", limits.cpus)):
        if value is not None and not 0 < value < 2**63:  # nan and inf fail this too
            raise InvalidRequest(f"{label} must be positive, not {value}")
    for label, value, least in (
        ("--memory", limits.memory, 4 * 1024**2),
        ("--tmpfs-size", limits.tmpfs_size, 1024**2),
        ("--disk", limits.disk, 16 * 1024**2),  # btrfs needs some metadata room for the root itself
    ):
        if value is not None and value < least:
            raise InvalidRequest(f"{label} must be at least {least // 1024**2}M")
    return limits


def with_defaults(limits: Limits, settings: Settings) -> Limits:
    """Every container is limited: what the flags leave out comes from the host's settings
    (a setting of 0 means no limit of that kind)."""
    memory = limits.memory or settings.default_memory()
    high = settings.memory_high if settings.memory_high and settings.memory_high < memory else None
    return replace(
        limits,
        memory=memory,
        pids=limits.pids or settings.pids or None,
        memory_high=limits.memory_high or high,
        tmpfs_size=limits.tmpfs_size or settings.tmpfs_size or None,
        disk=limits.disk or settings.disk or None,
    )


def check_network(
    settings: Settings, name: str, mode: str, forwards: list[str], nat: bool = False
) -> tuple[modes.Mode, tuple[modes.Forward, ...]]:
    """The network mode, port forwards and NAT, parsed and checked."""
    parsed = modes.parse_mode(mode)
    published = modes.parse_forwards(forwards)
    if published and not parsed.wired:
        raise InvalidRequest(f"-p needs a dhcp or static network, not {mode!r}")
    if nat and not parsed.wired:
        raise InvalidRequest(f"--nat needs a dhcp or static network, not {mode!r}")
    modes.check_name(name, parsed)
    if parsed.address:
        modes.check_static(parsed, modes.bridge(settings))
    return parsed, published


def generate_name(paths: Paths, template: str) -> str:
    while True:
        name = f"{template}-{secrets.token_hex(3)}"
        if not state.exists(paths, name):
            return name
