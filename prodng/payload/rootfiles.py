"""Reading files of a container's root from the host, with every symlink resolved inside the root.

A package's files are the package author's: /etc/default/foo may be a symlink to /etc/shadow,
which read naively from the host would be the *host's* shadow. Every path here is walked one
component at a time, symlinks re-rooted at the container's root (openat2's RESOLVE_IN_ROOT,
done by hand), so nothing outside the root is ever read. Binds (HOST:CONTAINER) are honoured
so a bound /etc/default file is what the service will see.

This is the one place the plan compiler reads a root through; the safe in-root path module of
the host-files work can replace its body.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_LINKS = 40
MAX_READ = 1 << 20


@dataclass(frozen=True)
class RootFiles:
    root: Path
    binds: tuple[tuple[str, str], ...] = ()  # (host source, container target): the target shows the source

    def _base(self, path: str) -> tuple[Path, str]:
        """Which tree a container path lives in (a bind's source, or the root) and the rest of it."""
        for source, target in sorted(self.binds, key=lambda b: -len(b[1])):
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return Path(source), path[len(target) :]
        return self.root, path

    def resolve(self, path: str, follow_last: bool = True) -> Path | None:
        """The host path of a container path, symlinks resolved inside the root; None if it leaves it
        through too many links."""
        parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
        done: list[str] = []
        links = 0
        while parts:
            name = parts.pop(0)
            if name == "..":
                if done:
                    done.pop()
                continue
            base, rest = self._base("/" + "/".join([*done, name]))
            host = base / rest.lstrip("/") if rest else base
            if (parts or follow_last) and host.is_symlink() and base == self.root:
                links += 1
                if links > MAX_LINKS:
                    return None
                target = os.readlink(host)
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            done.append(name)
        base, rest = self._base("/" + "/".join(done))
        return base / rest.lstrip("/") if rest else base

    def read_text(self, path: str) -> str | None:
        host = self.resolve(path)
        if host is None:
            return None
        try:
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return os.read(fd, MAX_READ).decode(errors="replace")
        finally:
            os.close(fd)

    def listdir(self, path: str) -> list[str]:
        """The entries of a directory, binds onto names in it included."""
        host = self.resolve(path)
        clean = posixpath.normpath("/" + path.lstrip("/"))
        bound = {posixpath.basename(t) for _, t in self.binds if posixpath.dirname(t) == clean}
        try:
            found = set(os.listdir(host)) if host is not None and host.is_dir() else set()
        except OSError:
            found = set()
        return sorted(found | bound)

    def readlink(self, path: str) -> str | None:
        """The link's target when path (its parent resolved) is a symlink, else None."""
        parent = self.resolve(posixpath.dirname(path))
        if parent is None:
            return None
        try:
            return os.readlink(parent / posixpath.basename(path))
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        host = self.resolve(path)
        return host is not None and os.path.lexists(host) and (not host.is_symlink())

    def is_dir(self, path: str) -> bool:
        host = self.resolve(path)
        return host is not None and host.is_dir() and not host.is_symlink()

    def size(self, path: str) -> int:
        host = self.resolve(path)
        try:
            return os.lstat(host).st_size if host is not None else 0
        except OSError:
            return 0

    def executable(self, path: str) -> bool:
        host = self.resolve(path)
        try:
            st = os.lstat(host) if host is not None else None
        except OSError:
            return False
        return st is not None and stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)
