"""Everything is a .deb: validate a payload before it touches anything, install it with
its dependencies inside a sandboxed snapshot (never on the host), find its service.

Installed roots are cached as read-only snapshots keyed by the template build and the
payloads' checksums, so the second run of the same set costs one snapshot.
"""

from __future__ import annotations

import hashlib
import os
import platform
import posixpath
import re
import shlex
import tarfile
from dataclasses import dataclass, field

from debian.deb822 import Deb822

from prodng.errors import InvalidRequest, ProdngError
from prodng.payload import debarchive, units

PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
VERSION_RE = re.compile(r"^([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")
ARCHES = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "armhf",
    "i686": "i386",
    "ppc64le": "ppc64el",
    "s390x": "s390x",
    "riscv64": "riscv64",
}
UNIT_DIRS = ("lib/systemd/system/", "usr/lib/systemd/system/")
CONTROL_FILE_MAX = 1024**2  # a control file is a few KB; Packages files list it whole
CONTROL_MAX = 64 * 1024**2  # control.tar: the control file and the maintainer scripts


@dataclass(frozen=True)
class Payload:
    path: str
    package: str
    version: str
    architecture: str
    sha256: str
    exec_field: str = ""
    units: tuple[str, ...] = field(default=())  # paths of shipped *.service units, inside the root
    unpacked_size: int = 0  # the sum of data.tar's member sizes: what unpacking writes, at least


def host_architecture() -> str:
    return ARCHES.get(platform.machine(), platform.machine())


def _checksum(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_member(member: tarfile.TarInfo) -> str | None:
    """The member's path inside the root, or why it is refused."""
    name = member.name
    if name.startswith("/"):
        return f"absolute path {name!r} in data.tar"
    parts = name.removeprefix("./").split("/")
    if ".." in parts:
        return f"path traversal {name!r} in data.tar"
    if member.isdev() and not member.isfifo():
        # Nothing may make a device node in a root: install jobs have no CAP_MKNOD, roots are nodev.
        return f"device node {name!r} in data.tar: payloads may not ship devices"
    if member.islnk():
        target = member.linkname
        if target.startswith("/") or ".." in target.removeprefix("./").split("/"):
            return f"hard link {name!r} -> {target!r} leaves the root"
    return None


def _add_size(total: int, member: tarfile.TarInfo, label: str, disk_limit: int | None) -> int:
    """The running sum of data.tar's sizes: a member that would take it past the disk limit is
    refused at its header, before its (perhaps 8 GiB of) data is decompressed."""
    total += member.size
    if disk_limit and total > disk_limit:
        raise InvalidRequest(
            f"{label}: unpacks to more than the container's disk limit of {disk_limit // 1024**2} MiB "
            f"({total // 1024**2} MiB by /{member.name.removeprefix('./')})",
            hint="a larger --disk, or a smaller payload",
        )
    return total


def check_unpacked_size(payloads: list[Payload], disk_limit: int | None) -> None:
    """Together, too: the payloads' data must fit the disk limit (dependencies come on top)."""
    total = sum(p.unpacked_size for p in payloads)
    if disk_limit and total > disk_limit:
        names = ", ".join(p.package for p in payloads)
        raise InvalidRequest(
            f"{names}: unpack to {total // 1024**2} MiB, more than the disk limit of {disk_limit // 1024**2} MiB",
            hint="a larger --disk",
        )


def inspect(path: str, disk_limit: int | None = None) -> Payload:
    """Validate a .deb without unpacking it anywhere, in one pass over it and in bounded memory
    (debarchive); every refusal names the file and the cause."""
    label = os.path.basename(path)
    if not os.path.isfile(path):
        raise InvalidRequest(f"{label}: no such file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise InvalidRequest(f"{label}: cannot open: {err.strerror}") from None
    try:
        control_part, data_part = debarchive.deb_parts(fd)
        with debarchive.tar_stream(fd, control_part) as tar:
            control = _control(tar, label)
        package = _check_control(label, control)
        with debarchive.tar_stream(fd, data_part) as tar:
            shipped, unpacked = _walk_data(tar, label, package, disk_limit)
    except ProdngError:  # what it says (a refusal, or no zstd tool on this host)
        raise
    except Exception as err:  # a hostile archive can break the parser in any way: all mean "not a .deb"
        raise InvalidRequest(f"{label}: not a valid Debian binary package ({err or type(err).__name__})") from None
    finally:
        os.close(fd)
    if why := _split_error(control.get("X-Prodng-Exec", "")):
        raise InvalidRequest(f"{label} ({package}): X-Prodng-Exec: {why}")
    return Payload(
        path=os.path.abspath(path),
        package=package,
        version=control["Version"],
        architecture=control["Architecture"],
        sha256=_checksum(path),
        exec_field=control.get("X-Prodng-Exec", "").strip(),
        units=tuple(sorted(shipped)),
        unpacked_size=unpacked,
    )


def _control(tar: tarfile.TarFile, label: str) -> Deb822:
    """The control file of control.tar; the other members (maintainer scripts) are only skipped,
    and all of them together may not unpack to more than CONTROL_MAX."""
    total, found = 0, None
    for member in debarchive.headers(tar):
        total += member.size
        if total > CONTROL_MAX:
            raise InvalidRequest(f"{label}: control.tar unpacks to more than {CONTROL_MAX // 1024**2} MiB")
        if posixpath.normpath(member.name) == "control" and member.isfile() and member.size <= CONTROL_FILE_MAX:
            handle = tar.extractfile(member)
            found = Deb822(handle.read().decode(errors="replace")) if handle else None
    if found is None:
        raise InvalidRequest(f"{label}: no control file of at most {CONTROL_FILE_MAX // 1024} KiB in control.tar")
    return found


def _check_control(label: str, control: Deb822) -> str:
    """The package's name, once its Package, Version and Architecture fields are fit to use."""
    package, version = control.get("Package", ""), control.get("Version", "")
    architecture = control.get("Architecture", "")
    if not PACKAGE_RE.fullmatch(package):
        raise InvalidRequest(f"{label}: invalid Package field {package!r}")
    if not VERSION_RE.fullmatch(version):
        raise InvalidRequest(f"{label} ({package}): invalid Version field {version!r}")
    if architecture not in ("all", host_architecture()):
        raise InvalidRequest(
            f"{label} ({package}): architecture {architecture} does not fit this {host_architecture()} host"
        )
    return str(package)


def _walk_data(tar: tarfile.TarFile, label: str, package: str, disk_limit: int | None) -> tuple[list[str], int]:
    """Every member of data.tar checked as its header comes: its size against the disk limit, its
    path and kind, and a unit's command lines; returns the units and the unpacked size."""
    shipped, total = [], 0
    for member in debarchive.headers(tar):
        total = _add_size(total, member, label, disk_limit)
        if why := _check_member(member):
            raise InvalidRequest(f"{label} ({package}): {why}")
        name = posixpath.normpath(member.name.removeprefix("./"))
        if name.startswith(UNIT_DIRS) and name.endswith(".service") and "@" not in name and not member.isdir():
            shipped.append("/" + name)
            if why := _unit_commands_error(tar, member):
                raise InvalidRequest(f"{label} ({package}): /{name}: {why}")
    return shipped, total


def _split_error(command: str) -> str | None:
    try:
        shlex.split(command.lstrip("-@:+!"))
    except ValueError as err:  # found now, not after a whole install
        return f"cannot split {command[:60]!r}: {err}"
    return None


def _unit_commands_error(data: tarfile.TarFile, member: tarfile.TarInfo) -> str | None:
    """Why the unit's command lines cannot be split as the service is made from them, if they cannot."""
    handle = data.extractfile(member) if member.isfile() and member.size <= 1024**2 else None
    if handle is None:
        return None  # a link or a huge file: read later, from the installed root
    service = units.parse(handle.read().decode(errors="replace")).get("Service", {})
    for key, values in service.items():
        if key.startswith("Exec") or key == "Environment":
            for value in values:
                if why := _split_error(value):
                    return f"{key}: {why}"
    return None
