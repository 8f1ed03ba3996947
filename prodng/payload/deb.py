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

from debian import debfile

from prodng.errors import InvalidRequest

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


def _members(data: tarfile.TarFile, label: str, disk_limit: int | None) -> tuple[list[tarfile.TarInfo], int]:
    """data.tar's headers, summing the sizes as they come: a member that would take the sum past
    the disk limit is refused at its header, before its (perhaps 8 GiB of) data is decompressed."""
    members, total = [], 0
    while (member := data.next()) is not None:
        total += member.size
        if disk_limit and total > disk_limit:
            raise InvalidRequest(
                f"{label}: unpacks to more than the container's disk limit of {disk_limit // 1024**2} MiB "
                f"({total // 1024**2} MiB by /{member.name.removeprefix('./')})",
                hint="a larger --disk, or a smaller payload",
            )
        members.append(member)
    return members, total


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
    """Validate a .deb without unpacking it anywhere; every refusal names the file and the cause."""
    label = os.path.basename(path)
    if not os.path.isfile(path):
        raise InvalidRequest(f"{label}: no such file")
    try:
        deb = debfile.DebFile(path)
        control = deb.debcontrol()
        data = deb.data.tgz()
        members, unpacked = _members(data, label, disk_limit)
    except InvalidRequest:
        raise
    except Exception as err:  # a hostile archive can break the parser in any way: all mean "not a .deb"
        raise InvalidRequest(f"{label}: not a valid Debian binary package ({err or type(err).__name__})") from None
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
    units = []
    for member in members:
        if why := _check_member(member):
            raise InvalidRequest(f"{label} ({package}): {why}")
        name = posixpath.normpath(member.name.removeprefix("./"))
        if name.startswith(UNIT_DIRS) and name.endswith(".service") and "@" not in name and not member.isdir():
            units.append("/" + name)
            if why := _unit_commands_error(data, member):
                raise InvalidRequest(f"{label} ({package}): /{name}: {why}")
    if why := _split_error(control.get("X-Prodng-Exec", "")):
        raise InvalidRequest(f"{label} ({package}): X-Prodng-Exec: {why}")
    return Payload(
        path=os.path.abspath(path),
        package=package,
        version=version,
        architecture=architecture,
        sha256=_checksum(path),
        exec_field=control.get("X-Prodng-Exec", "").strip(),
        units=tuple(sorted(units)),
        unpacked_size=unpacked,
    )


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
    entries = _unit_section(handle.read().decode(errors="replace"), "Service")
    for key, value in entries:
        if key.startswith("Exec") or key == "Environment":
            if why := _split_error(value):
                return f"{key}: {why}"
    return None


def _unit_section(text: str, section: str) -> list[tuple[str, str]]:
    entries, current, pending = [], "", ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
        elif current == section and "=" in line:
            key, value = line.split("=", 1)
            entries.append((key.strip(), value.strip()))
    return entries
