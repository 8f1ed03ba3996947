"""prodng's inspection tables: one generator per table, served both to osqueryd
(prodng/osquery_extension.py) and to the embedded SQL engine (prodng/query.py).

A generator takes the set of container (or template) names the query is
restricted to, or None for all, so a constraint on `name`/`container` never
scans the others.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prodng.config import Paths
from prodng.container import cgroups, observe, state
from prodng.network import wiring
from prodng.storage import quota, rootdb, templates

Row = dict[str, object]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Table:
    name: str
    key: str  # the column whose equality constraints narrow the scan
    columns: tuple[tuple[str, str], ...]  # (name, TEXT | INTEGER | BIGINT | DOUBLE)
    generate: Callable[[Paths, set[str] | None], Iterable[Row]]
    description: str

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]


def _containers(paths: Paths, wanted: set[str] | None) -> Iterator[tuple[state.ContainerRecord, observe.Observation]]:
    for name in state.names(paths):
        if wanted is not None and name not in wanted:
            continue
        try:
            record = state.load(paths, name)
        except Exception:  # removed while we looked
            continue
        yield record, observe.observe(paths, record)


def _live(paths: Paths, wanted: set[str] | None) -> Iterator[tuple[state.ContainerRecord, int]]:
    for record, seen in _containers(paths, wanted):
        if seen.pid:
            yield record, seen.pid


def _wired_columns(paths: Paths, name: str, running: bool) -> Row:
    """Address, MAC and the bridge's filters holding the container (dhcp and static, while it runs)."""
    wired = wiring.read(paths, name) if running else {}
    return {key: str(wired.get(key, "")) for key in ("ip", "mac", "filters", "outbound")}


def containers(paths: Paths, wanted: set[str] | None) -> Iterator[Row]:
    for record, seen in _containers(paths, wanted):
        yield {
            "name": record.name,
            "state": str(seen.state),
            "template": record.template,
            "payloads": ",".join(record.payloads),
            "pid": seen.pid,
            **_wired_columns(paths, record.name, bool(seen.pid)),
            "network": str(record.network),
            "command": " ".join(record.argv),
            "created": int(record.created),
            "started": int(seen.started_at) if seen.started_at else None,
            "restarts": seen.restarts,
            "exit_code": seen.exit_code,
            "restart_policy": str(record.restart),
            "memory_limit": record.limits.memory,
            "pids_limit": record.limits.pids,
            "cpus_limit": record.limits.cpus,
            "memory_high": record.limits.memory_high,
            "tmpfs_size": record.limits.tmpfs_size,
            "disk_limit": record.limits.disk,
            "disk_used": disk.used if (disk := quota.usage(paths.pool, paths.container_root(record.name))) else None,
            "oom_kills": cgroups.oom_kills(record.cgroups) if seen.pid else None,
        }


def _process_row(container: str, pid: int, users: dict[int, str]) -> Row | None:
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        status = dict(line.split(":", 1) for line in (proc / "status").read_text().splitlines() if ":" in line)
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError):
        return None  # exited while we looked
    comm, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
    uid = int(status["Uid"].split()[0])
    return {
        "container": container,
        "pid": pid,
        "ns_pid": int(status["NSpid"].split()[-1]),
        "name": comm,
        "cmdline": cmdline,
        "state": rest[0],
        "uid": uid,
        "user": users.get(uid, str(uid)),
        "rss_bytes": int(rest[21]) * PAGE,
        "cpu_time_ms": (int(rest[11]) + int(rest[12])) * 1000 // CLOCK_TICKS,
    }


def processes(paths: Paths, wanted: set[str] | None) -> Iterator[Row]:
    for record, _ in _live(paths, wanted):
        users = rootdb.user_names(paths.container_root(record.name))
        for pid in sorted(cgroups.procs(record.cgroups)):
            if row := _process_row(record.name, pid, users):
                yield row


def deb_packages(paths: Paths, wanted: set[str] | None) -> Iterator[Row]:
    """Every package in each container's own dpkg database (never the host's)."""
    for record, _ in _containers(paths, wanted):
        for para in rootdb.dpkg_status(paths.container_root(record.name)):
            yield {
                "container": record.name,
                "name": para.get("Package", ""),
                "version": para.get("Version", ""),
                "arch": para.get("Architecture", ""),
                "source": para.get("Source", para.get("Package", "")).split(" ")[0],
                "status": para.get("Status", ""),
            }


def service_rows(paths: Paths, wanted: set[str] | None) -> Iterator[Row]:
    """Every unit of each container's service plan, as its init last reported it."""
    for record, _ in _containers(paths, wanted):
        for unit in state.read_units(paths, record.name)[1]:
            yield {"container": record.name, **{k: v for k, v in unit.items() if k not in ("boot_failed", "log")}}


def mounts(paths: Paths, wanted: set[str] | None) -> Iterator[Row]:
    for record, pid in _live(paths, wanted):
        try:
            lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in lines:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            yield {
                "container": record.name,
                "path": fields[4],
                "type": tail[0],
                "source": tail[1],
                "options": fields[5],
            }


def interfaces(paths: Paths, wanted: set[str] | None) -> Iterator[Row]:
    from pyroute2 import IPRoute

    for record, pid in _live(paths, wanted):
        if record.network.kind == "host":
            continue  # the host's interfaces are not the container's to report
        with IPRoute(netns=f"/proc/{pid}/ns/net") as ipr:
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            for addr in ipr.get_addr():
                yield {
                    "container": record.name,
                    "interface": names.get(addr["index"], ""),
                    "address": addr.get_attr("IFA_ADDRESS"),
                    "prefixlen": addr["prefixlen"],
                    "family": "inet6" if addr["family"] == 10 else "inet",
                }


def _decode_address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # /proc/net prints each 32-bit word in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)), int(port, 16)


def _socket_owners(pids: list[int]) -> dict[str, int]:
    owners: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    owners.setdefault(target[8:-1], pid)
        except OSError:
            continue
    return owners


def listening_ports(paths: Paths, wanted: set[str] | None) -> Iterator[Row]:
    """From the container's own net namespace (/proc/PID/net is per-namespace)."""
    for record, pid in _live(paths, wanted):
        owners = _socket_owners(cgroups.procs(record.cgroups))
        for protocol, listening in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
            try:
                lines = Path(f"/proc/{pid}/net/{protocol}").read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if fields[3] != listening:
                    continue
                address, port = _decode_address(fields[1])
                yield {
                    "container": record.name,
                    "protocol": protocol.rstrip("6"),
                    "family": "inet6" if protocol.endswith("6") else "inet",
                    "address": address,
                    "port": port,
                    "pid": owners.get(fields[9]),
                }


def cgroup_stats(paths: Paths, wanted: set[str] | None) -> Iterator[Row]:
    for record, seen in _containers(paths, wanted):
        if not seen.pid:
            continue
        stats = cgroups.stats(record.cgroups)
        yield {
            "container": record.name,
            "cpu_ns": stats["cpu_ns"],
            "memory_bytes": stats["memory_bytes"],
            "pids": stats["pids"],
            "frozen": int(cgroups.is_frozen(record.cgroups)),
        }


def template_rows(paths: Paths, wanted: set[str] | None) -> Iterator[Row]:
    if not paths.templates.is_dir():
        return
    for name in templates.names(paths):
        if wanted is None or name in wanted:
            info = templates.info(paths, name)
            yield {
                "name": name,
                "suite": info.suite,
                "variant": info.variant,
                "built": int(info.built),
                "package_count": info.package_count,
                "used_by": ",".join(info.used_by),
            }


TABLES: tuple[Table, ...] = (
    Table(
        "prodng_containers",
        "name",
        (
            ("name", "TEXT"),
            ("state", "TEXT"),
            ("template", "TEXT"),
            ("payloads", "TEXT"),
            ("pid", "INTEGER"),
            ("ip", "TEXT"),
            ("mac", "TEXT"),
            ("filters", "TEXT"),  # the bridge's per-port filters holding it (network.nft.FILTERS)
            ("outbound", "TEXT"),  # nat: beyond the bridge, masqueraded; bridge: containers and published ports only
            ("network", "TEXT"),
            ("command", "TEXT"),
            ("created", "BIGINT"),
            ("started", "BIGINT"),
            ("restarts", "INTEGER"),
            ("exit_code", "INTEGER"),
            ("restart_policy", "TEXT"),
            ("memory_limit", "BIGINT"),
            ("pids_limit", "INTEGER"),
            ("cpus_limit", "DOUBLE"),
            ("memory_high", "BIGINT"),
            ("tmpfs_size", "BIGINT"),
            ("disk_limit", "BIGINT"),
            ("disk_used", "BIGINT"),
            ("oom_kills", "INTEGER"),
        ),
        containers,
        "one row per container",
    ),
    Table(
        "prodng_processes",
        "container",
        (
            ("container", "TEXT"),
            ("pid", "INTEGER"),
            ("ns_pid", "INTEGER"),
            ("name", "TEXT"),
            ("cmdline", "TEXT"),
            ("state", "TEXT"),
            ("uid", "INTEGER"),
            ("user", "TEXT"),
            ("rss_bytes", "BIGINT"),
            ("cpu_time_ms", "BIGINT"),
        ),
        processes,
        "every process of every running container",
    ),
    Table(
        "prodng_deb_packages",
        "container",
        (
            ("container", "TEXT"),
            ("name", "TEXT"),
            ("version", "TEXT"),
            ("arch", "TEXT"),
            ("source", "TEXT"),
            ("status", "TEXT"),
        ),
        deb_packages,
        "the dpkg database of each container's root",
    ),
    Table(
        "prodng_services",
        "container",
        (
            ("container", "TEXT"),
            ("name", "TEXT"),
            ("state", "TEXT"),
            ("pid", "INTEGER"),
            ("restarts", "INTEGER"),
            ("exit_code", "INTEGER"),
            ("since", "REAL"),
            ("error", "TEXT"),
        ),
        service_rows,
        "the units each container's init runs (systemd's view: state, main pid, restarts, error)",
    ),
    Table(
        "prodng_mounts",
        "container",
        (("container", "TEXT"), ("path", "TEXT"), ("type", "TEXT"), ("source", "TEXT"), ("options", "TEXT")),
        mounts,
        "the mount table each running container sees",
    ),
    Table(
        "prodng_interfaces",
        "container",
        (
            ("container", "TEXT"),
            ("interface", "TEXT"),
            ("address", "TEXT"),
            ("prefixlen", "INTEGER"),
            ("family", "TEXT"),
        ),
        interfaces,
        "addresses in each container's network namespace",
    ),
    Table(
        "prodng_listening_ports",
        "container",
        (
            ("container", "TEXT"),
            ("protocol", "TEXT"),
            ("family", "TEXT"),
            ("address", "TEXT"),
            ("port", "INTEGER"),
            ("pid", "INTEGER"),
        ),
        listening_ports,
        "listening sockets in each container's network namespace",
    ),
    Table(
        "prodng_cgroup_stats",
        "container",
        (
            ("container", "TEXT"),
            ("cpu_ns", "BIGINT"),
            ("memory_bytes", "BIGINT"),
            ("pids", "INTEGER"),
            ("frozen", "INTEGER"),
        ),
        cgroup_stats,
        "cgroup accounting and freezer state",
    ),
    Table(
        "prodng_templates",
        "name",
        (
            ("name", "TEXT"),
            ("suite", "TEXT"),
            ("variant", "TEXT"),
            ("built", "BIGINT"),
            ("package_count", "INTEGER"),
            ("used_by", "TEXT"),
        ),
        template_rows,
        "built template roots",
    ),
)
BY_NAME = {t.name: t for t in TABLES}
