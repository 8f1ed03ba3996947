"""Host-side access to a path inside a container or template root, resolved the container's way.

A root is written by untrusted package code. Whatever prodng reads, writes or deletes in it
from the host (units, EnvironmentFile=, passwd, dpkg status, policy-rc.d, the install marker)
goes through this module, so a planted `etc/passwd -> /etc/shadow`, `usr/sbin -> /usr/sbin`,
`EnvironmentFile=/../../../tmp/x` or a FIFO never reaches the host:

- Paths resolve with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) under an
  fd of the root (systemd's chase(), runc's securejoin): `..` and absolute symlinks stop at the
  root, /proc magic links and other mounts are refused. Without openat2 (kernels before 5.6) a
  component-by-component O_NOFOLLOW walk refuses every symlink and `..` instead.
- Reads open the file O_PATH first and check it is a regular file before opening it for reading
  (systemd's fd_reopen), so a FIFO, a device or a socket is never opened at all; bytes are capped.
- Changes (create, unlink, rename, chown, mkdir) act on the last component through an fd of its
  parent directory, resolved as above, and never follow a symlink at the last component.

Errors are OSError with the errno (ENOENT, ELOOP, EXDEV, ...); NotRegularFile and TooLarge say
what a read refused. Callers turn them into their own one-line errors.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10
RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV
READ_LIMIT = 4 * 1024**2  # no file prodng reads in a root (unit, passwd, env file) is near this
STATUS_LIMIT = 64 * 1024**2  # dpkg's status file of a large root is a few MB

_have_openat2: bool | None = None


class NotRegularFile(OSError):
    """A read refused a FIFO, device, socket or directory."""


class TooLarge(OSError):
    """A read found more bytes than its cap."""


def _relative(path: str) -> str:
    """The path as seen from the root: absolute or relative, it means the same."""
    rel = path.lstrip("/")
    return rel or "."


def _openat2(rootfd: int, path: str, flags: int, mode: int = 0) -> int:
    global _have_openat2
    if _have_openat2 is not False:
        from prodng._native import lib  # type: ignore[import-not-found]

        fd = lib.pn_openat2(rootfd, os.fsencode(path), flags, mode, RESOLVE)
        if fd != -errno.ENOSYS:
            _have_openat2 = True
            if fd < 0:
                raise OSError(-fd, os.strerror(-fd), path)
            return int(fd)
        _have_openat2 = False
    return _walk(rootfd, path, flags, mode)


def _walk(rootfd: int, path: str, flags: int, mode: int = 0) -> int:
    """The fallback without openat2: no symlink and no `..` anywhere, no other filesystem."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise OSError(errno.EXDEV, "`..` in a path inside a root", path)
    device = os.fstat(rootfd).st_dev
    current = os.dup(rootfd)
    try:
        for part in parts[:-1]:
            following = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current = following
            if os.fstat(current).st_dev != device:
                raise OSError(errno.EXDEV, "another filesystem inside a root", path)
        last = parts[-1] if parts else "."
        return os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=current)
    finally:
        os.close(current)


@contextmanager
def _root_fd(root: Path) -> Iterator[int]:
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def opened(root: Path, path: str, flags: int = os.O_PATH, mode: int = 0) -> Iterator[int]:
    """An fd of path inside root (O_PATH unless flags say otherwise), closed on exit."""
    with _root_fd(root) as rootfd:
        fd = _openat2(rootfd, _relative(path), flags, mode)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def _parent(root: Path, path: str) -> Iterator[tuple[int, str]]:
    """The parent directory's fd and the last component, which is never followed."""
    head, _, name = _relative(path).rstrip("/").rpartition("/")
    if name in ("", ".", ".."):
        raise OSError(errno.EINVAL, "no file name at the end of a path inside a root", path)
    with opened(root, head or ".", os.O_PATH | os.O_DIRECTORY) as parent:
        yield parent, name


def read_bytes(root: Path, path: str, limit: int = READ_LIMIT) -> bytes:
    """A regular file's bytes; NotRegularFile for anything else, TooLarge beyond limit."""
    with opened(root, path) as handle:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", path)
        # Reopened through the O_PATH fd: the inode checked is the inode read (no second lookup).
        fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise TooLarge(errno.EFBIG, f"larger than {limit} bytes", path)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(root: Path, path: str, limit: int = READ_LIMIT) -> str:
    return read_bytes(root, path, limit).decode(errors="replace")


def is_file(root: Path, path: str) -> bool:
    """True if path (its symlinks followed inside root) is a regular file."""
    try:
        with opened(root, path) as handle:
            return stat.S_ISREG(os.fstat(handle).st_mode)
    except OSError:
        return False


def listdir(root: Path, path: str) -> list[str]:
    """The names in a directory (its symlinks followed inside root)."""
    with opened(root, path, os.O_RDONLY | os.O_DIRECTORY) as fd:
        return os.listdir(fd)


def lstat(root: Path, path: str) -> os.stat_result:
    with _parent(root, path) as (parent, name):
        return os.stat(name, dir_fd=parent, follow_symlinks=False)


def exists(root: Path, path: str) -> bool:
    """True if something (even a dangling symlink) is at path."""
    try:
        lstat(root, path)
    except OSError:
        return False
    return True


def readlink(root: Path, path: str) -> str:
    with _parent(root, path) as (parent, name):
        return os.readlink(name, dir_fd=parent)


def write_bytes(root: Path, path: str, data: bytes, mode: int = 0o644) -> None:
    """Replace path with a new regular file (written beside it, renamed over it): whatever was
    there, a symlink or a FIFO included, is replaced, never written through."""
    with _parent(root, path) as (parent, name):
        staged = f".{name}.prodng-{os.getpid()}"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
        try:
            try:
                os.fchmod(fd, mode)  # not the umask's
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.rename(staged, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            os.unlink(staged, dir_fd=parent)
            raise


def write_text(root: Path, path: str, text: str, mode: int = 0o644) -> None:
    write_bytes(root, path, text.encode(), mode)


def unlink(root: Path, path: str, *, missing_ok: bool = False) -> None:
    """Remove the entry at path (a symlink itself, never what it points at)."""
    try:
        with _parent(root, path) as (parent, name):
            os.unlink(name, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):  # nothing there, as seen from inside the root
        if not missing_ok:
            raise


def rmdir(root: Path, path: str) -> None:
    with _parent(root, path) as (parent, name):
        os.rmdir(name, dir_fd=parent)


def mkdir(root: Path, path: str, mode: int = 0o755, *, exist_ok: bool = False) -> None:
    with _parent(root, path) as (parent, name):
        try:
            os.mkdir(name, mode, dir_fd=parent)
        except FileExistsError:
            if not (exist_ok and stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)):
                raise


def rename(root: Path, source: str, target: str) -> None:
    with _parent(root, source) as (from_dir, from_name), _parent(root, target) as (to_dir, to_name):
        os.rename(from_name, to_name, src_dir_fd=from_dir, dst_dir_fd=to_dir)


def chown(root: Path, path: str, uid: int, gid: int) -> None:
    """Change the owner of the entry at path (a symlink's own owner, never its target's)."""
    with _parent(root, path) as (parent, name):
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
