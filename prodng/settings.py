"""Host settings, read once: ROOT/settings.toml, then the environment (PRODNG_<KEY>) over it.

The CLI and the agent build one `Settings` at start and it travels on `Paths`; nothing
deeper reads os.environ. The network keeper, which may be forked from a server started
with another environment, gets the starting CLI's values in its argv (`as_argv`).

    # /var/lib/prodng/settings.toml
    pool_size = "32G"
    pids = 512            # default limits of every container, changed per container by flags
    memory = "1G"
    tmpfs_size = "64M"
    disk = "10G"
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from prodng.errors import InvalidRequest
from prodng.frozen import fields, frozen, replace

GiB = 1024**3


def _host_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


@frozen
class Settings:
    pool_size: int = 64 * GiB  # the pool image's apparent size (sparse), before first use
    bridge: str = "prodng0"
    subnet: str = "10.89.0.0/16"
    dhcp_timeout: float = 10.0  # seconds a dhcp container waits for its first lease
    lease_time: str = "1h"
    nat: bool = False  # every container on the bridge reaches beyond it, masqueraded (else only with --nat)
    recipes: tuple[str, ...] = ()  # more recipe folders, searched before the shipped ones
    # Default limits of every container (and install job); flags on run/create change one container's.
    pids: int = 2048  # systemd's DefaultTasksMax is 15% of pid_max; a fork bomb stops here
    memory: int = 0  # bytes; 0: half the host's RAM (see default_memory)
    memory_high: int = 0  # bytes, cgroup v2 only (throttled before the OOM killer); 0: none
    tmpfs_size: int = 64 * 1024**2  # size= of /run, /tmp and /dev/shm inside (charged to the memory cgroup)
    disk: int = 10 * GiB  # btrfs qgroup limit of a container's root; 0: none

    def default_memory(self) -> int:
        """No single container may take the host: half its RAM unless a setting says otherwise."""
        return self.memory or _host_memory() // 2

    def as_argv(self) -> list[str]:
        """KEY=VALUE words for a process started with another environment (the keeper)."""
        return [f"{s.key}={s.unparse(getattr(self, s.key))}" for s in TABLE if s.keeper]


@frozen
class Setting:
    key: str
    parse: Callable[[str], object]
    unparse: Callable[[object], str] = str
    keeper: bool = False  # the network keeper needs it

    @property
    def env(self) -> str:
        return "PRODNG_" + self.key.upper()


def _size(text: str) -> int:
    from prodng.config import parse_size

    return 0 if text.strip() in ("0", "none") else parse_size(text)


def _count(text: str) -> int:
    from prodng.config import parse_int

    value = parse_int(text, "pids")
    if value < 0:
        raise InvalidRequest(f"pids must not be negative, not {value}")
    return value


def _seconds(text: str) -> float:
    from prodng.config import parse_number

    value = parse_number(text, "dhcp_timeout")
    if value <= 0:
        raise InvalidRequest(f"dhcp_timeout must be positive, not {text}")
    return value


def _bridge(text: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,14}", text):
        raise InvalidRequest(f"bad bridge name {text!r}", hint="up to 15 of a-z, 0-9, _")
    return text


def _subnet(text: str) -> str:
    try:
        network = ipaddress.IPv4Network(text)
    except ValueError:
        raise InvalidRequest(f"bad subnet {text!r}", hint="an IPv4 network such as 10.89.0.0/16") from None
    if network.prefixlen > 28:
        raise InvalidRequest(f"subnet {text} is too small", hint="at most /28")
    return text


def _lease(text: str) -> str:
    if not re.fullmatch(r"[0-9]{1,9}[smhd]?|infinite", text):
        raise InvalidRequest(f"bad lease_time {text!r}", hint="dnsmasq's form: 1h, 30m, 3600")
    return text


def _flag(text: str) -> bool:
    if text.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise InvalidRequest(f"bad flag {text!r}", hint="true or false")
    return text.lower() in ("1", "true", "yes", "on")


def _folders(text: str) -> tuple[str, ...]:
    return tuple(p for p in text.split(":") if p)


TABLE = (
    Setting("pool_size", _size),
    Setting("bridge", _bridge, keeper=True),
    Setting("subnet", _subnet, keeper=True),
    Setting("dhcp_timeout", _seconds, keeper=True),
    Setting("lease_time", _lease, keeper=True),
    Setting("nat", _flag, unparse=lambda v: "true" if v else "false", keeper=True),
    Setting("recipes", _folders, unparse=lambda v: ":".join(v)),  # type: ignore[arg-type]
    Setting("pids", _count),
    Setting("memory", _size),
    Setting("memory_high", _size),
    Setting("tmpfs_size", _size),
    Setting("disk", _size),
)
_BY_KEY = {s.key: s for s in TABLE}
assert set(_BY_KEY) == {f.name for f in fields(Settings)}


def load(root: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """ROOT/settings.toml (if any), then PRODNG_* variables over it."""
    environ = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    file = root / "settings.toml"
    try:
        with open(file, "rb") as f:
            import tomllib  # here: it costs every CLI start a few ms, and most roots have no settings file

            data = tomllib.load(f)
    except (FileNotFoundError, NotADirectoryError):  # no file, or a root not made yet (the pool says why)
        data = {}
    except ValueError as err:  # tomllib.TOMLDecodeError
        raise InvalidRequest(f"{file}: {err}") from None
    for key, value in data.items():
        if key not in _BY_KEY:
            raise InvalidRequest(f"{file}: unknown setting {key!r}", hint=", ".join(_BY_KEY))
        raw[key] = ":".join(value) if isinstance(value, list) else str(value)
    raw.update({s.key: environ[s.env] for s in TABLE if s.env in environ})
    return from_pairs(raw, str(file))


def from_pairs(raw: Mapping[str, str], where: str = "settings") -> Settings:
    values: dict[str, object] = {}
    for key, text in raw.items():
        try:
            values[key] = _BY_KEY[key].parse(text)
        except InvalidRequest as err:
            raise InvalidRequest(f"{where}: {key}: {err}", hint=err.hint) from None
    return replace(Settings(), **values)  # type: ignore[arg-type]


def from_argv(words: list[str]) -> Settings:
    """The inverse of Settings.as_argv."""
    return from_pairs(dict(w.partition("=")[::2] for w in words if w.partition("=")[0] in _BY_KEY), "argv")
