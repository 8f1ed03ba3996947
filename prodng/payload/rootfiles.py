"""Reading files of a container's root from the host, as the container will see them.

A package's files are the package author's, and a running container rewrites its root and its :rw
binds at will: /etc/default/foo may be a symlink to /etc/shadow, and a bound /data may hold
`link -> /etc`, either of which read naively from the host is the *host's* file. A container path
is walked here one component at a time, the way the container's kernel will walk it: a bind's
target shows the bind's source, a symlink (in the root or in a bind) is re-rooted at the
container's root, `..` stops at it. Every lookup, at every step, goes through prodng.storage.inroot
under the tree the component lives in (the root, or a bind's source), so even a link swapped in
between two steps resolves inside that tree and nothing else of the host is ever read.

This is the one place the plan compiler reads a root through.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path

from prodng.storage import inroot

MAX_LINKS = 40
MAX_READ = 1 << 20

Located = tuple[Path, str]  # (the tree a container path lives in: the root or a bind's source, the path in it)


@dataclass(frozen=True)
class RootFiles:
    root: Path
    binds: tuple[tuple[str, str], ...] = ()  # (host source, container target): the target shows the source

    def _locate(self, path: str) -> Located | None:
        """Which tree a container path lives in and the rest of it; None under a bind whose source has a
        symlink on the way now (the init refuses to mount it: binds take their real path). A file's
        source lives in its directory."""
        for source, target in sorted(self.binds, key=lambda b: -len(b[1])):
            if path == target or path.startswith(target.rstrip("/") + "/"):
                named = posixpath.normpath(source)
                if os.path.realpath(named) != named:
                    return None
                rest = path[len(target) :]
                if os.path.isdir(named):
                    return Path(named), rest
                return Path(posixpath.dirname(named)), "/" + posixpath.basename(named) + rest
        return self.root, path

    def _lstat(self, where: Located | None) -> os.stat_result | None:
        if where is None:
            return None
        base, rest = where
        try:
            return os.stat(base) if rest in ("", "/") else inroot.lstat(base, rest)
        except OSError:
            return None

    def _walk(self, path: str, follow_last: bool = True) -> str | None:
        """The container path with every symlink resolved the container's way; None if it goes
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
            where = self._locate("/" + "/".join([*done, name]))
            st = self._lstat(where) if (parts or follow_last) else None
            if where is not None and st is not None and stat.S_ISLNK(st.st_mode):
                links += 1
                if links > MAX_LINKS:
                    return None
                try:
                    target = inroot.readlink(*where)
                except OSError:
                    return None
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p and p != "."] + parts
                continue
            done.append(name)
        return "/" + "/".join(done)

    def resolve(self, path: str, follow_last: bool = True) -> Located | None:
        """Where a container path is (the tree and the path in it), symlinks resolved inside the root."""
        walked = self._walk(path, follow_last)
        return None if walked is None else self._locate(walked)

    def read_text(self, path: str) -> str | None:
        where = self.resolve(path)
        if where is None:
            return None
        try:
            return inroot.read_text(*where, limit=MAX_READ)
        except OSError:  # missing, not a regular file, too large, or out of reach
            return None

    def listdir(self, path: str) -> list[str]:
        """The entries of a directory, binds onto names in it included."""
        where = self.resolve(path)
        clean = posixpath.normpath("/" + path.lstrip("/"))
        bound = {posixpath.basename(t) for _, t in self.binds if posixpath.dirname(t) == clean}
        try:
            found = set(inroot.listdir(*where)) if where is not None else set()
        except OSError:
            found = set()
        return sorted(found | bound)

    def readlink(self, path: str) -> str | None:
        """The link's target when path (its parent resolved) is a symlink, else None."""
        parent = self._walk(posixpath.dirname(path))
        name = posixpath.basename(path)
        if parent is None or name in ("", ".", ".."):
            return None
        where = self._locate(posixpath.join(parent, name))
        if where is None or where[1] in ("", "/"):  # a bind's target: a mount point, never a link
            return None
        try:
            return inroot.readlink(*where)
        except OSError:
            return None

    def exists(self, path: str) -> bool:
        where = self.resolve(path)
        st = self._lstat(where) if where is not None else None
        return st is not None and not stat.S_ISLNK(st.st_mode)

    def is_dir(self, path: str) -> bool:
        where = self.resolve(path)
        st = self._lstat(where) if where is not None else None
        return st is not None and stat.S_ISDIR(st.st_mode)

    def size(self, path: str) -> int:
        where = self.resolve(path)
        st = self._lstat(where) if where is not None else None
        return st.st_size if st is not None else 0

    def executable(self, path: str) -> bool:
        where = self.resolve(path)
        st = self._lstat(where) if where is not None else None
        return st is not None and stat.S_ISREG(st.st_mode) and bool(st.st_mode & 0o111)
