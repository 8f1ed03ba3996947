"""systemd units in an installed root: parsing, lookup (aliases, masks, templates, drop-ins) and which
units systemd would start at boot (multi-user.target and what it pulls in).

Rules from systemd.unit(5): the unit search path is /etc/systemd/system, /run/systemd/system,
/lib/systemd/system (the first holding a name wins); a link to /dev/null masks; a link to
another unit is an alias; foo@bar.service falls back to foo@.service; drop-ins in NAME.d/*.conf
(and foo@.service.d, service.d) are applied in file-name order; an empty assignment resets a
list. Enabled units are the links in *.wants/ and *.requires/ directories that deb-systemd-helper
made (with policy-rc.d forbidding a start, it still enables), plus Wants=/Requires= of what is
pulled in. Init scripts without a native unit become units as systemd-sysv-generator makes them.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from prodng.payload.rootfiles import RootFiles

SEARCH_PATH = ("/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
BOOT_TARGET = "multi-user.target"
PULLING = ("Wants", "Requires", "Requisite", "BindsTo", "Upholds")
# systemd's own machinery, which a container's init stands in for (or which needs a real machine).
NOT_STARTED = re.compile(
    r"^(systemd-|getty@|serial-getty@|console-getty|container-getty@|e2scrub|fstrim|apt-daily|dpkg-db-backup|"
    r"logrotate|man-db|emergency|rescue|ifup@|networking|keyboard-setup|console-setup|udev|dbus|"
    r"getty-static|plymouth|kmod|modprobe@|user@|user-runtime-dir@|ssh-session-cleanup|sysstat|lvm2|blk-availability)"
)
SYSV_SKIP = {
    "rc",
    "rcS",
    "README",
    "skeleton",
    "hwclock.sh",
    "procps",
    "kmod",
    "udev",
    "networking",
    "sendsigs",
    "umountfs",
    "umountroot",
    "halt",
    "reboot",
    "single",
    "killprocs",
    "bootlogs",
    "rmnologin",
    "mountall.sh",
    "checkroot.sh",
    "checkfs.sh",
    "mountkernfs.sh",
    "mountdevsubfs.sh",
    "urandom",
    "dbus",
    "rsync",
}


@dataclass
class Unit:
    name: str  # as asked for, e.g. postgresql@15-main.service
    path: str = ""  # the fragment, "" when none
    masked: bool = False
    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    sysv: bool = False  # made from an init script

    def get(self, section: str, key: str, default: str = "") -> str:
        values = self.sections.get(section, {}).get(key, [])
        return values[-1] if values else default

    def all(self, section: str, key: str) -> list[str]:
        return list(self.sections.get(section, {}).get(key, []))

    def words(self, section: str, key: str) -> list[str]:
        return [w for v in self.all(section, key) for w in v.split()]

    @property
    def prefix(self) -> str:
        return self.name.split("@", 1)[0] if "@" in self.name else self.name.rsplit(".", 1)[0]

    @property
    def instance(self) -> str:
        return self.name.split("@", 1)[1].rsplit(".", 1)[0] if "@" in self.name else ""


def parse(text: str, sections: dict[str, dict[str, list[str]]] | None = None) -> dict[str, dict[str, list[str]]]:
    """systemd's ini dialect: [Section], Key=Value, '\\' continues a line, '#'/';' comment, 'Key=' resets."""
    sections = sections if sections is not None else {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if pending and stripped.startswith(("#", ";")):
            continue  # comments inside a continuation are dropped
        line = pending + stripped
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
        elif current is not None and "=" in line:
            key, value = (s.strip() for s in line.split("=", 1))
            if value == "":
                current[key] = []
            else:
                current.setdefault(key, []).append(value)
    if pending and current is not None and "=" in pending:
        key, value = (s.strip() for s in pending.split("=", 1))
        current.setdefault(key, []).append(value)
    return sections


class UnitStore:
    """Units of one root, loaded once each."""

    def __init__(self, files: RootFiles) -> None:
        self.files = files
        self._cache: dict[str, Unit] = {}

    def _find(self, name: str) -> tuple[str, str]:
        """(directory, the name found there) of the first fragment for name, following aliases."""
        for _ in range(8):
            for directory in SEARCH_PATH:
                path = f"{directory}/{name}"
                link = self.files.readlink(path)
                if link is not None:
                    if link in ("/dev/null", "/dev/null/"):
                        return directory, "/dev/null"
                    target = posixpath.basename(link)
                    if target != name and target.endswith(posixpath.splitext(name)[1]):
                        name = target  # an alias: the unit's real name is the link's target
                        break
                if self.files.read_text(path) is not None:
                    return directory, name
            else:
                return "", name
        return "", name

    def load(self, name: str) -> Unit:
        if name in self._cache:
            return self._cache[name]
        unit = Unit(name)
        directory, found = self._find(name)
        if not directory and "@" in name:
            template = re.sub(r"@[^.]*\.", "@.", name)
            directory, found = self._find(template)
        if found == "/dev/null":
            unit.masked = True
        elif directory:
            unit.path = f"{directory}/{found}"
            parse(self.files.read_text(unit.path) or "", unit.sections)
            for dropin in self._dropins(name, found):
                parse(self.files.read_text(dropin) or "", unit.sections)
        self._cache[name] = unit
        return unit

    def _dropins(self, name: str, found: str) -> list[str]:
        kind = name.rsplit(".", 1)[-1]
        names = [f"{kind}.d", f"{found}.d", f"{name}.d"]
        if "@" in name:
            names.insert(1, re.sub(r"@[^.]*\.", "@.", name) + ".d")
        chosen: dict[str, str] = {}
        for directory in reversed(SEARCH_PATH):  # later (higher priority) directories replace a file name
            for folder in dict.fromkeys(names):
                for entry in self.files.listdir(f"{directory}/{folder}"):
                    if entry.endswith(".conf"):
                        chosen[entry] = f"{directory}/{folder}/{entry}"
        return [chosen[k] for k in sorted(chosen)]

    def linked(self, name: str, suffix: str) -> list[str]:
        """Units linked in NAME.wants/ (or .requires/) over the search path, and what generators add."""
        found = generated(self.files).get(f"{name}.{suffix}", [])
        for directory in SEARCH_PATH:
            for entry in self.files.listdir(f"{directory}/{name}.{suffix}"):
                found.append(entry)
        return found

    def pulled(self, unit: Unit) -> Iterator[str]:
        for key in PULLING:
            yield from unit.words("Unit", key)
        yield from self.linked(unit.name, "wants")
        yield from self.linked(unit.name, "requires")


GENERATORS = "/lib/systemd/system-generators"


def _postgresql(files: RootFiles) -> list[str]:
    """postgresql-common: a postgresql@VERSION-CLUSTER for every cluster whose start.conf says auto."""
    wants = []
    for version in files.listdir("/etc/postgresql"):
        for cluster in files.listdir(f"/etc/postgresql/{version}"):
            base = f"/etc/postgresql/{version}/{cluster}"
            text = files.read_text(f"{base}/start.conf") or "auto"
            lines = [line.split("#")[0].strip() for line in text.splitlines()]
            if files.read_text(f"{base}/postgresql.conf") is not None and "auto" in lines:
                wants.append(f"postgresql@{version}-{cluster}.service")
    return wants


def _openvpn(files: RootFiles) -> list[str]:
    """openvpn: AUTOSTART of /etc/default/openvpn (default all): openvpn@NAME for /etc/openvpn/NAME.conf."""
    from prodng.payload.execline import env_file  # the generator sources the file; its assignments suffice

    autostart = env_file(files.read_text("/etc/default/openvpn") or "").get("AUTOSTART", "all").split()
    if autostart == ["none"]:
        return []
    configs = [e[: -len(".conf")] for e in files.listdir("/etc/openvpn") if e.endswith(".conf")]
    chosen = configs if autostart in ([], ["all"]) else [n for n in autostart if n in configs]
    return [f"openvpn@{name}.service" for name in chosen]


def generated(files: RootFiles) -> dict[str, list[str]]:
    """What the generators of installed packages would link in /run/systemd/generator at boot
    (prodng runs none of them: these are their rules, read from their scripts)."""
    found: dict[str, list[str]] = {}
    installed = set(files.listdir(GENERATORS))
    if files.listdir("/etc/postgresql"):
        found["postgresql.service.wants"] = _postgresql(files)
    if "openvpn-generator" in installed:
        found["openvpn.service.wants"] = _openvpn(files)
    if "postfix-instance-generator" in installed:
        found["postfix.service.wants"] = ["postfix@-.service"]
    return found


def sysv_units(files: RootFiles, store: UnitStore) -> dict[str, Unit]:
    """systemd-sysv-generator: an enabled init script (an S link in rc2.d-rc5.d) without a native unit
    runs as a forking service with RemainAfterExit, PIDFile from its PIDFILE= (or 'pidfile:')."""
    enabled: dict[str, int] = {}
    for level in "2345":
        for entry in files.listdir(f"/etc/rc{level}.d"):
            match = re.match(r"^S(\d\d)(.+)$", entry)
            if match and match.group(2) not in SYSV_SKIP:
                enabled.setdefault(match.group(2), int(match.group(1)))
    found = {}
    for script, _order in sorted(enabled.items(), key=lambda item: (item[1], item[0])):
        name = f"{script}.service"
        text = files.read_text(f"/etc/init.d/{script}")
        if text is None or store.load(name).path or store.load(name).masked:
            continue
        pidfile = re.search(r"^\s*(?:#\s*pidfile:\s*|PIDFILE=)[\"']?(/[^\"'\s;]+)", text, re.M)
        unit = Unit(name, path=f"/etc/init.d/{script}", sysv=True)
        service = {
            "Type": ["forking"],
            "ExecStart": [f"/etc/init.d/{script} start"],
            "ExecStop": [f"/etc/init.d/{script} stop"],
            "ExecReload": [f"/etc/init.d/{script} reload"],
            "RemainAfterExit": ["yes"],
            "TimeoutSec": ["5min"],
            "KillMode": ["process"],
        }
        if pidfile and "$" not in pidfile.group(1):
            service["PIDFile"] = [pidfile.group(1)]
        unit.sections = {"Unit": {"Description": [f"LSB: {script}"]}, "Service": service}
        store._cache[name] = unit
        found[name] = unit
    return found


def boot_units(store: UnitStore) -> list[Unit]:
    """Every service unit systemd would start to reach multi-user.target, unordered, masks excluded."""
    seen: set[str] = set()
    services: dict[str, Unit] = {}
    queue = [BOOT_TARGET]
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        unit = store.load(name)
        if unit.masked:
            continue
        if name.endswith(".service"):
            if NOT_STARTED.match(name) or not unit.path or "@." in name or name.endswith("@.service"):
                continue
            services[name] = unit
        elif not name.endswith(".target"):
            continue  # sockets, timers, paths, mounts: a container has no activation but boot
        queue.extend(store.pulled(unit))
    for name, unit in sysv_units(store.files, store).items():
        services.setdefault(name, unit)
    return list(services.values())


def order(units: list[Unit]) -> list[Unit]:
    """Topological order by After=/Before= among the chosen units (name order otherwise); a cycle is
    broken at the alphabetically first unit, as systemd breaks one by dropping a job."""
    names = {u.name: u for u in units}
    after: dict[str, set[str]] = {n: set() for n in names}
    for unit in units:
        for other in unit.words("Unit", "After"):
            if other in names and other != unit.name:
                after[unit.name].add(other)
        for other in unit.words("Unit", "Before"):
            if other in names and other != unit.name:
                after[other].add(unit.name)
    result: list[Unit] = []
    pending = sorted(names)
    while pending:
        ready = [n for n in pending if not (after[n] - {u.name for u in result})]
        chosen = ready[0] if ready else pending[0]
        result.append(names[chosen])
        pending.remove(chosen)
    return result
