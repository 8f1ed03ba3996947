"""A root's own databases, read from the host through inroot: accounts (/etc/passwd, /etc/group)
and dpkg's status. One parser each for every caller (payload ids, the tables, template metadata).

A root is anyone's: an unreadable, oversized or non-regular file reads as empty, never as the
host's file and never as a hang.
"""

from __future__ import annotations

import logging
from pathlib import Path

from debian.deb822 import Deb822

from prodng.storage import inroot

log = logging.getLogger(__name__)

DPKG_STATUS = "/var/lib/dpkg/status"


def _text(root: Path, path: str, limit: int) -> str:
    try:
        return inroot.read_text(root, path, limit)
    except FileNotFoundError:
        return ""
    except OSError as err:
        log.warning("ignoring %s in %s: %s", path, root, err.strerror)
        return ""


def accounts(root: Path, table: str) -> dict[str, tuple[int, int]]:
    """name -> (id, primary group id) from /etc/passwd ("passwd") or /etc/group ("group", gid twice)."""
    found: dict[str, tuple[int, int]] = {}
    for line in _text(root, f"/etc/{table}", inroot.READ_LIMIT).splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2].isdigit():
            primary = fields[3] if table == "passwd" and len(fields) > 3 else fields[2]
            found.setdefault(fields[0], (int(fields[2]), int(primary) if primary.isdigit() else 0))
    return found


def user_names(root: Path) -> dict[int, str]:
    """uid -> the first user name with it."""
    names: dict[int, str] = {}
    for name, (uid, _) in accounts(root, "passwd").items():
        names.setdefault(uid, name)
    return names


def dpkg_status(root: Path) -> list[Deb822]:
    """Every paragraph of the root's own dpkg database (never the host's)."""
    return list(Deb822.iter_paragraphs(_text(root, DPKG_STATUS, inroot.STATUS_LIMIT).splitlines()))


def installed_packages(root: Path) -> dict[str, str]:
    """name (name:arch unless all) -> version of every installed package."""
    packages = {}
    for para in dpkg_status(root):
        if para.get("Status", "").endswith(" installed") and "Package" in para:
            arch = para.get("Architecture", "")
            key = para["Package"] if arch in ("all", "") else f"{para['Package']}:{arch}"
            packages[key] = para.get("Version", "")
    return packages
