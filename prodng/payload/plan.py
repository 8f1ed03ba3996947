"""The service plan: what the container's init starts, compiled from an installed root's units the way
systemd would read them (see units.py for which units, execline.py for the value syntax).

Compiled on the host at every start (the root may have changed since the last one) and handed to
the init in the monitor config (container/monitor.py); the init only executes it.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from prodng.container.validation import DEFAULT_PATH
from prodng.errors import InvalidRequest
from prodng.payload import execline, packages, units
from prodng.payload.execline import Command
from prodng.payload.rootfiles import RootFiles
from prodng.payload.tmpfiles import PathOp, compile_tmpfiles

DEFAULT_TIMEOUT = 90.0  # DefaultTimeoutStartSec= and DefaultTimeoutStopSec=
TYPES = {"simple": "simple", "exec": "exec", "forking": "forking", "oneshot": "oneshot", "notify": "notify",
         "notify-reload": "notify", "dbus": "simple", "idle": "simple"}  # fmt: skip
RESTARTS = ("no", "always", "on-success", "on-failure", "on-abnormal", "on-abort", "on-watchdog")
PHASES = {"ExecCondition": "condition", "ExecStartPre": "pre", "ExecStart": "start", "ExecStartPost": "post",
          "ExecReload": "reload", "ExecStop": "stop", "ExecStopPost": "stoppost"}  # fmt: skip
DIRECTORIES = {"RuntimeDirectory": "/run", "StateDirectory": "/var/lib", "CacheDirectory": "/var/cache",
               "LogsDirectory": "/var/log", "ConfigurationDirectory": "/etc"}  # fmt: skip


@dataclass(frozen=True)
class ServicePlan:
    name: str
    type: str = "simple"
    commands: tuple[tuple[str, Command], ...] = ()  # (phase, command) in order
    user: str = "root"
    uid: int = 0
    gid: int = 0
    groups: tuple[int, ...] = ()
    workdir: str = "/"
    env: tuple[str, ...] = ()
    pidfile: str = ""
    kill_mode: str = "control-group"
    kill_signal: int = int(signal.SIGTERM)
    send_sigkill: bool = True
    start_timeout: float = DEFAULT_TIMEOUT
    stop_timeout: float = DEFAULT_TIMEOUT
    restart: str = "no"
    restart_sec: float = 0.1
    remain: bool = False
    dirs: tuple[PathOp, ...] = ()
    skip: str = ""  # why a condition says not to start it ("" : start it)
    ambient: tuple[str, ...] = ()  # AmbientCapabilities=, names without CAP_
    essential: bool = True  # shipped by a payload or what it depends on (not only recommends): must start
    source: str = ""


@dataclass(frozen=True)
class Plan:
    services: tuple[ServicePlan, ...]
    tmpfiles: tuple[PathOp, ...] = ()
    ids: dict[str, tuple[int, int]] = field(default_factory=dict)


# ---- users ----


def id_table(files: RootFiles, name: str) -> dict[str, tuple[int, int]]:
    """passwd or group of the root: name -> (id, primary gid or 0)."""
    found: dict[str, tuple[int, int]] = {}
    for line in (files.read_text(f"/etc/{name}") or "").splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[2].isdigit():
            found.setdefault(fields[0], (int(fields[2]), int(fields[3]) if fields[3].isdigit() else 0))
    return found


def _members(files: RootFiles, user: str) -> list[int]:
    """The user's supplementary groups, as initgroups() finds them."""
    gids = []
    for line in (files.read_text("/etc/group") or "").splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[2].isdigit() and user in fields[3].split(","):
            gids.append(int(fields[2]))
    return gids


def _home(files: RootFiles, user: str) -> str:
    for line in (files.read_text("/etc/passwd") or "").splitlines():
        fields = line.split(":")
        if len(fields) > 5 and fields[0] == user:
            return fields[5]
    return "/"


def resolve_ids(files: RootFiles, unit: units.Unit) -> tuple[str, int, int, tuple[int, ...]]:
    user = unit.get("Service", "User") or ("nobody" if unit.get("Service", "DynamicUser") == "yes" else "")
    group = unit.get("Service", "Group") or ("nogroup" if unit.get("Service", "DynamicUser") == "yes" else "")
    users, groups = id_table(files, "passwd"), id_table(files, "group")
    uid = gid = 0
    if user and user != "root":
        if user not in users and not user.isdigit():
            raise InvalidRequest(f"{unit.name}: User={user} does not exist in the container")
        uid, gid = users.get(user, (int(user) if user.isdigit() else 0, 0))
    if group:
        if group not in groups and not group.isdigit():
            raise InvalidRequest(f"{unit.name}: Group={group} does not exist in the container")
        gid = groups[group][0] if group in groups else int(group)
    extra = _members(files, user) if user and user != "root" else []
    for name in unit.words("Service", "SupplementaryGroups"):
        if name in groups:
            extra.append(groups[name][0])
        elif name.isdigit():
            extra.append(int(name))
    return user or "root", uid, gid, tuple(dict.fromkeys(g for g in extra if g != gid))


# ---- conditions ----


def _condition(files: RootFiles, key: str, value: str, caps: frozenset[str]) -> bool:
    checks: dict[str, Callable[[str], bool]] = {
        "PathExists": lambda v: files.exists(v) or files.is_dir(v),
        "PathIsDirectory": files.is_dir,
        "PathExistsGlob": lambda v: any(
            fnmatch.fnmatch(n, posixpath.basename(v)) for n in files.listdir(posixpath.dirname(v))
        ),
        "FileNotEmpty": lambda v: files.size(v) > 0,
        "DirectoryNotEmpty": lambda v: bool(files.listdir(v)),
        "FileIsExecutable": files.executable,
        "PathIsSymbolicLink": lambda v: files.readlink(v) is not None,
        "Virtualization": lambda v: v in ("yes", "container", "true", "1"),
        "Capability": lambda v: v.removeprefix("CAP_") in caps,
        "KernelCommandLine": lambda v: False,
        "NeedsUpdate": lambda v: False,
        "FirstBoot": lambda v: False,
        "Security": lambda v: False,
    }
    check = checks.get(key)
    return True if check is None else bool(check(value))


def conditions(files: RootFiles, unit: units.Unit, caps: frozenset[str], spec: execline.Specifiers) -> str:
    """'' when every Condition*/Assert* holds (triggering '|' ones: at least one), else the first that fails."""
    triggering: list[tuple[str, bool]] = []
    for key, values in unit.sections.get("Unit", {}).items():
        kind = key.removeprefix("Condition").removeprefix("Assert")
        if kind == key:
            continue
        for value in values:
            value = spec.expand(value)
            trigger, value = value.startswith("|"), value.lstrip("|")
            negate, value = value.startswith("!"), value.lstrip("!")
            holds = _condition(files, kind, value, caps) != negate
            if trigger:
                triggering.append((f"{key}=|{'!' if negate else ''}{value}", holds))
            elif not holds:
                return f"{key}={'!' if negate else ''}{value} not met"
    if triggering and not any(holds for _, holds in triggering):
        return f"{triggering[0][0]} not met"
    return ""


# ---- one unit ----


def _environment(files: RootFiles, unit: units.Unit, spec: execline.Specifiers) -> dict[str, str]:
    env = {"PATH": DEFAULT_PATH, "container": "prodng"}
    if spec.user != "root" or unit.get("Service", "User"):
        env.update(HOME=spec.home, USER=spec.user, LOGNAME=spec.user, SHELL="/bin/sh")
    env.update(execline.environment([spec.expand(v) for v in unit.all("Service", "Environment")]))
    for value in unit.all("Service", "EnvironmentFile"):
        path = spec.expand(value)
        text = files.read_text(path.lstrip("-"))
        if text is None and not path.startswith("-"):
            raise InvalidRequest(f"{unit.name}: EnvironmentFile {path} is missing in the container")
        env.update(execline.env_file(text or ""))
    return env


def _dirs(unit: units.Unit, uid: int, gid: int) -> list[PathOp]:
    ops = []
    for key, base in DIRECTORIES.items():
        mode = unit.get("Service", f"{key}Mode", "0755")
        for word in unit.words("Service", key):
            path = word.split(":", 1)[0]
            if path.startswith("/") or ".." in path.split("/"):
                raise InvalidRequest(f"{unit.name}: {key}={path} must be relative")
            owner = (0, 0) if key == "ConfigurationDirectory" else (uid, gid)
            ops.append(PathOp("d", f"{base}/{path}", int(mode, 8), *owner))
    return ops


def _timeout(text: str) -> float:
    """Timeout*Sec=: 0 and infinity both mean none."""
    seconds = execline.timespan(text)
    return execline.INFINITY if seconds == 0 else seconds


def _signal(text: str) -> int:
    raw = text.upper().removeprefix("SIG")
    return int(raw) if raw.isdigit() else int(signal.Signals[f"SIG{raw}"])


def compile_unit(
    files: RootFiles, unit: units.Unit, hostname: str, env_override: dict[str, str], caps: frozenset[str]
) -> ServicePlan:
    user, uid, gid, groups = resolve_ids(files, unit)
    spec = execline.Specifiers(unit.name, hostname, user, uid, user, gid, _home(files, user) if uid else "/root")
    skip = conditions(files, unit, caps, spec)
    env = {**_environment(files, unit, spec), **env_override}
    kind, cmds = _type_and_commands(unit, spec, env)
    if kind == "notify":
        env["NOTIFY_SOCKET"] = "/run/systemd/notify"
    workdir = spec.expand(unit.get("Service", "WorkingDirectory", "/")).lstrip("-")
    pidfile = spec.expand(unit.get("Service", "PIDFile"))
    timeout = unit.get("Service", "TimeoutSec")
    start_default = "infinity" if kind == "oneshot" else (timeout or "90")
    restart = unit.get("Service", "Restart", "no")
    return ServicePlan(
        name=unit.name,
        type=kind,
        commands=tuple(cmds),
        user=user,
        uid=uid,
        gid=gid,
        groups=groups,
        workdir=spec.home if workdir == "~" else workdir or "/",
        env=tuple(f"{k}={v}" for k, v in env.items()),
        pidfile=pidfile if not pidfile or pidfile.startswith("/") else f"/run/{pidfile}",
        kill_mode=unit.get("Service", "KillMode", "control-group"),
        kill_signal=_signal(unit.get("Service", "KillSignal", "TERM")),
        send_sigkill=unit.get("Service", "SendSIGKILL", "yes") not in ("no", "false", "0"),
        start_timeout=_timeout(unit.get("Service", "TimeoutStartSec") or start_default),
        stop_timeout=_timeout(unit.get("Service", "TimeoutStopSec") or timeout or "90"),
        restart=restart if restart in RESTARTS else "no",
        restart_sec=max(execline.timespan(unit.get("Service", "RestartSec", "100ms")), 0.0),
        remain=unit.get("Service", "RemainAfterExit") in ("yes", "true", "1", "on"),
        dirs=tuple(_dirs(unit, uid, gid)),
        skip=skip,
        source=unit.path,
        ambient=tuple(
            w.removeprefix("CAP_")
            for w in unit.words("Service", "AmbientCapabilities")
            if w.removeprefix("CAP_") in caps
        ),
    )


def _type_and_commands(
    unit: units.Unit, spec: execline.Specifiers, env: dict[str, str]
) -> tuple[str, list[tuple[str, Command]]]:
    """Type= (systemd's default: simple with an ExecStart, else oneshot) and every Exec*= command by
    phase, specifiers and variables expanded; only a oneshot may have other than one ExecStart."""
    kind = unit.get("Service", "Type") or ("simple" if unit.all("Service", "ExecStart") else "oneshot")
    if kind not in TYPES:
        raise InvalidRequest(f"{unit.name}: unknown Type={kind}")
    kind = TYPES[kind]
    cmds: list[tuple[str, Command]] = []
    for key, phase in PHASES.items():
        for value in unit.all("Service", key):
            cmds += [(phase, c) for c in execline.commands(spec.expand(value), env)]
    if kind != "oneshot" and sum(1 for p, _ in cmds if p == "start") != 1:
        raise InvalidRequest(f"{unit.name}: Type={kind} needs exactly one ExecStart")
    return kind, cmds


def unit_name(text: str) -> str:
    """--unit NAME: a unit's name, '.service' implied."""
    name = text if re.search(r"\.[a-z]+$", text) else f"{text}.service"
    if not re.fullmatch(r"[A-Za-z0-9:_.\\@-]+\.service", name) or name.startswith(("-", ".")):
        raise InvalidRequest(f"invalid unit name {text!r}", hint="e.g. nginx or postgresql@15-main.service")
    return name


def _essential(files: RootFiles, payloads: tuple[str, ...], chosen: list[units.Unit]) -> set[str]:
    """The units shipped by the payloads' packages or their dependencies (links resolved: /lib is
    /usr/lib in a merged-/usr root)."""
    shipped = packages.owners(files, packages.needed(files, list(payloads)))
    found = set()
    for unit in chosen:
        path = unit.path
        alternatives = {path, path.replace("/usr/lib/", "/lib/", 1), path.replace("/lib/", "/usr/lib/", 1)}
        if alternatives & shipped or not payloads:
            found.add(unit.name)
    return found


def _unenabled(files: RootFiles, store: units.UnitStore, payloads: tuple[str, ...]) -> list[units.Unit]:
    """A payload that ships units but enables none (no maintainer scripts, as a hand-made package):
    its own units are what it means to run, so they start as if enabled."""
    shipped = sorted(packages.owners(files, set(payloads)))
    names = [
        posixpath.basename(p)
        for p in shipped
        if p.startswith(("/lib/systemd/system/", "/usr/lib/systemd/system/"))
        and p.endswith(".service")
        and "@" not in posixpath.basename(p)
    ]
    enabled = {u.name for u in units.boot_units(store)}
    if any(n in enabled for n in names):
        return []
    found = [store.load(n) for n in dict.fromkeys(names)]
    for unit in found:
        if not unit.masked and not unit.path:  # read inside the root only: a link out of it leads nowhere
            raise InvalidRequest(f"{unit.name} cannot be read in the container (a dangling link, or one out of it)")
    return [u for u in found if not u.masked]


def compile_plan(
    files: RootFiles,
    hostname: str,
    picked: tuple[str, ...],
    env_override: dict[str, str],
    caps: frozenset[str],
    payloads: tuple[str, ...] = (),
) -> Plan:
    """The plan for a root: the picked units, or every unit systemd would start at boot."""
    store = units.UnitStore(files)
    if picked:
        chosen = []
        for name in picked:
            unit = store.load(unit_name(name))
            if unit.masked or not unit.path:
                raise InvalidRequest(f"unit {unit.name} {'is masked' if unit.masked else 'does not exist'}")
            chosen.append(unit)
    else:
        chosen = units.boot_units(store) + _unenabled(files, store, payloads)
    essential = {u.name for u in chosen} if picked else _essential(files, payloads, chosen)
    services = tuple(
        replace(compile_unit(files, u, hostname, env_override, caps), essential=u.name in essential)
        for u in units.order(chosen)
    )
    users, groups = id_table(files, "passwd"), id_table(files, "group")
    return Plan(services, tuple(compile_tmpfiles(files, users, groups)), users)
