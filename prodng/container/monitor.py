"""The monitor contract: the config file prodng-shim (native/) reads, and the defaults in it.

Python writes one NUL-separated key/value file per start; the C monitor clones the
container's init from it (see container.lifecycle for the whole spawn path).
"""

from __future__ import annotations

import os
from pathlib import Path

from prodng.config import Paths
from prodng.container import cgroups, events
from prodng.container.state import ContainerRecord
from prodng.container.validation import DEFAULT_PATH
from prodng.errors import InvalidRequest
from prodng.network import wiring
from prodng.storage import quota

SHIM = Path(__file__).resolve().parents[1] / "libexec" / "prodng-shim"
LOG_MAX = 4 * 1024**2
# Docker's default set without MKNOD and NET_RAW: enough for daemons that bind
# low ports and drop to a user, nothing that reaches the kernel or the host.
DEFAULT_CAPS = {
    "CHOWN": 0,
    "DAC_OVERRIDE": 1,
    "FOWNER": 3,
    "FSETID": 4,
    "KILL": 5,
    "SETGID": 6,
    "SETUID": 7,
    "SETPCAP": 8,
    "NET_BIND_SERVICE": 10,
    "SYS_CHROOT": 18,
    "AUDIT_WRITE": 29,
    "SETFCAP": 31,
}


def _limit_watches(paths: Paths, record: ContainerRecord) -> list[tuple[str, str]]:
    """What the monitor polls to say when a limit is hit: the cgroup's OOM kill counter and the
    root's qgroup in sysfs (events `oom` and `disk_full`)."""
    watches = [("oom_watch", cgroups.oom_file(record.cgroups))]
    if record.limits.disk:
        watches.append(("quota_watch", quota.sysfs_dir(paths.pool, paths.container_root(record.name))))
    return [(key, value) for key, value in watches if value]


def config_bytes(
    paths: Paths,
    record: ContainerRecord,
    rootfs: Path | None = None,
    directory: Path | None = None,
    caps: tuple[int, ...] = tuple(DEFAULT_CAPS.values()),
    plan: list[tuple[str, str]] | None = None,
    owners: dict[str, tuple[int, int]] | None = None,
) -> bytes:
    """owners: the uid and gid in the root of each bind's owner= user (services.bind_owners)."""
    directory = directory or paths.container_state(record.name)
    env = {"PATH": DEFAULT_PATH, "HOME": "/root", "container": "prodng", "HOSTNAME": record.name}
    env.update(e.split("=", 1) for e in record.unit_env + record.env)  # type: ignore[misc]
    pairs: list[tuple[str, str]] = [
        ("name", record.name),
        ("rootfs", str(rootfs or paths.container_root(record.name))),
        ("uid", str(record.uid)),
        ("gid", str(record.gid)),
        ("forking", str(int(record.forking))),
        ("workdir", record.workdir),
        ("log", str(directory / "log")),
        ("log_max", str(LOG_MAX)),
        ("tmpfs_size", str(record.limits.tmpfs_size or 0)),  # 0: the init's own default
        ("status", str(directory / "status")),
        ("restart", str(record.restart)),
        ("restart_max", str(record.restart_max)),
        ("net", str(record.network)),
    ]
    if directory == paths.container_state(record.name):  # one-shot jobs (installs) are not containers
        pairs.append(("events", events.journal(paths)))
        pairs += [("events_lock", str(events.rotate_lock(paths))), ("events_max", str(events.ROTATE_BYTES))]
        pairs += _limit_watches(paths, record)
    pairs += [("arg", a) for a in record.argv]
    pairs += [("env", f"{k}={v}") for k, v in env.items()]
    pairs += [("cgroup", c) for c in record.cgroups]
    ids = owners or {}
    pairs += [("bind", f"{b.options(ids.get(b.owner))}\x1f{b.source}\x1f{b.target}") for b in record.binds]
    pairs += [("cap", str(c)) for c in caps]
    pairs += [("rundir", d) for d in record.run_dirs]
    if record.network.wired and directory == paths.container_state(record.name):
        resolv_conf = os.path.realpath(wiring.resolv_conf_path(paths, record.name))  # binds take no symlink
        pairs += [("bind", f"ro\x1f{resolv_conf}\x1f/etc/resolv.conf")]
        pairs += [("keeper", a) for a in wiring.keeper_argv(paths, record.name)]
        pairs += [("keeper_server", str(wiring.keeper_server(paths)))]
    pairs += plan or []
    for key, value in pairs:
        if "\0" in value:
            raise InvalidRequest(f"{key} must not contain NUL")
    return b"".join(f"{k}\0{v}\0".encode() for k, v in pairs)
