"""tmpfiles.d(5) entries of a root, compiled to the few operations the container's init applies at each
start, before any unit: /run is a fresh tmpfs every time, as on a booted host.

Supported: d/D/v/q/Q (directory), f/F (file, with its argument as content), L (symlink), z/Z (mode and
owner of an existing path), p (fifo). The rest (x, r, R, e, w, a, h, c, b, C) either cleans up,
which a fresh /run makes moot, or reaches devices and attributes a container does not own.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from prodng.payload.rootfiles import RootFiles

DIRS = ("/etc/tmpfiles.d", "/run/tmpfiles.d", "/lib/tmpfiles.d", "/usr/lib/tmpfiles.d")
KINDS = {"d": "d", "D": "d", "v": "d", "q": "d", "Q": "d", "f": "f", "F": "F", "L": "L", "z": "z", "Z": "z", "p": "p"}
SKIPPED_PREFIXES = ("/proc", "/sys", "/dev/", "/run/systemd/", "/var/log/journal", "/home", "/root", "/srv", "/tmp")
SPECIFIERS = {"t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "T": "/tmp", "V": "/var/tmp",
              "E": "/etc", "h": "/root", "%": "%"}  # fmt: skip


@dataclass(frozen=True)
class PathOp:
    """One filesystem operation the init applies inside the container (as root, symlinks followed
    only inside the root since it has pivoted into it)."""

    kind: str  # d: directory, f: file if missing, F: file truncated, L: symlink, z: adjust, p: fifo
    path: str
    mode: int = -1  # -1: the default (0755 directories, 0644 files); adjusts keep the mode
    uid: int = -1  # -1: unchanged (root for what is created)
    gid: int = -1
    argument: str = ""

    def encode(self) -> str:
        mode = "" if self.mode < 0 else f"{self.mode:o}"
        return "\x1f".join((self.kind, self.path, mode, str(self.uid), str(self.gid), self.argument))


def _files(files: RootFiles) -> list[str]:
    """One file per name, /etc beating /run beating /usr/lib; applied in name order."""
    chosen: dict[str, str] = {}
    for directory in reversed(DIRS):
        for entry in files.listdir(directory):
            if entry.endswith(".conf"):
                chosen[entry] = f"{directory}/{entry}"
    return [chosen[name] for name in sorted(chosen)]


def _owner(text: str, table: dict[str, tuple[int, int]]) -> int:
    if text in ("-", ""):
        return -1
    text = text.lstrip(":")
    if text.isdigit():
        return int(text)
    return table[text][0] if text in table else -1


def parse_line(line: str, users: dict[str, tuple[int, int]], groups: dict[str, tuple[int, int]]) -> PathOp | None:
    fields = line.split(None, 6)
    if len(fields) < 2 or line.startswith("#"):
        return None
    kind = fields[0].rstrip("!-=~^+")
    if kind not in KINDS:
        return None
    path = re.sub(r"%(.)", lambda m: SPECIFIERS.get(m.group(1), m.group(0)), fields[1])
    if ".." in path.split("/"):
        return None
    path = posixpath.normpath(path)
    if not path.startswith("/") or "%" in path or "*" in path or "?" in path:
        return None
    if path.startswith(SKIPPED_PREFIXES) or path == "/tmp":
        return None
    field = fields + ["-"] * (7 - len(fields))
    mode = int(field[2].lstrip("~:"), 8) if re.fullmatch(r"[~:]?[0-7]{3,4}", field[2]) else -1
    argument = "" if field[6] == "-" else field[6]
    if kind in ("f", "F"):
        argument = argument.encode().decode("unicode_escape", errors="replace") if "\\" in argument else argument
    return PathOp(KINDS[kind], path, mode, _owner(field[3], users), _owner(field[4], groups), argument)


def compile_tmpfiles(
    files: RootFiles, users: dict[str, tuple[int, int]], groups: dict[str, tuple[int, int]]
) -> list[PathOp]:
    ops: list[PathOp] = []
    seen: set[tuple[str, str]] = set()
    for conf in _files(files):
        for raw in (files.read_text(conf) or "").splitlines():
            op = parse_line(raw.strip(), users, groups)
            if op and (op.kind, op.path) not in seen:  # the first line for a path wins, as in tmpfiles
                seen.add((op.kind, op.path))
                ops.append(op)
    return ops
