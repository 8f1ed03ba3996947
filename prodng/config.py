"""Where prodng keeps its files; everything lives under one root directory."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from prodng.errors import InvalidRequest
from prodng.frozen import field, frozen
from prodng.settings import Settings, load

DEFAULT_ROOT = Path("/var/lib/prodng")


@frozen
class Paths:
    """Where prodng's files are, and the host's settings (built once, see prodng.settings)."""

    root: Path
    settings: Settings = field(default_factory=Settings, compare=False)

    @property
    def pool(self) -> Path:
        return self.root / "pool"

    @property
    def pool_image(self) -> Path:
        return self.root / "pool.img"

    @property
    def templates(self) -> Path:
        return self.pool / "templates"

    @property
    def containers(self) -> Path:
        return self.pool / "containers"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def container_state(self, name: str) -> Path:
        return self.state / name

    def container_root(self, name: str) -> Path:
        return self.containers / name

    def template_root(self, name: str) -> Path:
        return self.templates / name

    def cgroup_leaf(self, name: str) -> str:
        """Cgroups are host-wide: a second root (tests, benchmarks) must not collide with the first."""
        if self.root == DEFAULT_ROOT:
            return name
        return f"{name}@{self.digest()[:8]}"

    def digest(self, *words: str) -> str:
        """sha256 of the root and words, NUL-separated, in hex: names of host-wide objects
        (cgroups, veths, /run directories) that stay the same for a root and differ between roots."""
        import hashlib  # OpenSSL's load is a good part of a short verb's start-up; few verbs need this

        return hashlib.sha256("\0".join((str(self.root), *words)).encode()).hexdigest()


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """--root wins over PRODNG_ROOT, which wins over /var/lib/prodng."""
    chosen = root or os.environ.get("PRODNG_ROOT") or DEFAULT_ROOT
    return Path(chosen).absolute()


def open_root(root: str | os.PathLike[str] | None = None) -> Paths:
    """The CLI's and the agent's start: the root, and its settings read once."""
    resolved = resolve_root(root)
    return Paths(resolved, load(resolved))


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_number(text: str, what: str) -> float:
    """A finite decimal number in ASCII digits: float() alone takes 'nan', 'inf', '1e400'
    (= inf) and Arabic-Indic digits, each of which later loops or fails far from here."""
    cleaned = text.strip()
    value = float(cleaned) if _DECIMAL_RE.fullmatch(cleaned) else math.nan
    if not math.isfinite(value):
        raise InvalidRequest(f"{what} must be a finite number, not {text[:40]!r}")
    return value


def parse_int(text: str, what: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,18}", text.strip()):
        raise InvalidRequest(f"{what} must be a whole number, not {text[:40]!r}")
    return int(text)


def parse_size(text: str) -> int:
    """'512M' -> 536870912; plain numbers are bytes."""
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = cleaned[-1:] if cleaned[-1:] in _UNITS and cleaned[-1:] else ""
    number = cleaned[: -len(unit)] if unit else cleaned
    if not _DECIMAL_RE.fullmatch(number):
        raise InvalidRequest(f"not a size: {text[:40]!r}", hint="use e.g. 512M or 2G")
    scaled = float(number) * _UNITS[unit]
    if not math.isfinite(scaled) or scaled >= 2**63:
        raise InvalidRequest(f"size too large: {text[:40]!r}")
    value = int(scaled)
    if value <= 0:
        raise InvalidRequest(f"size must be positive: {text[:40]!r}")
    return value
