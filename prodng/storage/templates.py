"""Template roots: debootstrap a recipe into a temporary subvolume, then publish it read-only.

A build is atomic: it happens in templates/.build-NAME-PID and is made read-only
and renamed into place only on success. debootstrap runs in its own mount and
pid namespaces, tied to us by PR_SET_PDEATHSIG: if we are killed, it dies and its
mounts vanish with it; the next build deletes the stale subvolume.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from debian.deb822 import Deb822

from prodng import locks, run
from prodng.config import Paths
from prodng.container import state
from prodng.errors import Conflict, NotFound, SystemFailure
from prodng.storage import btrfs, recipes

log = logging.getLogger(__name__)

METADATA = ".prodng-template.json"
BUILD_PREFIX = ".build-"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    suite: str
    variant: str
    mirror: str
    built: float
    package_count: int
    packages: dict[str, str]
    read_only: bool
    used_by: list[str]

    def summary(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k != "packages"}


def _lock(paths: Paths, name: str) -> Path:
    return paths.locks / f"template-{name}.lock"


def clean_stale_builds(paths: Paths) -> list[str]:
    """Delete build subvolumes whose builder is gone (killed mid-build)."""
    removed = []
    for entry in paths.templates.glob(f"{BUILD_PREFIX}*"):
        name = entry.name[len(BUILD_PREFIX) :].rsplit("-", 1)[0]
        if not locks.is_held(_lock(paths, name)):
            log.info("removing stale build %s", entry)
            btrfs.delete_subvolume(entry)
            removed.append(entry.name)
    return removed


def build(paths: Paths, name: str, progress: Progress, *, force: bool = False) -> TemplateInfo:
    recipe = recipes.find(name)
    clean_stale_builds(paths)
    with locks.hold(_lock(paths, name), wait=False, what=f"template {name}"):
        final = paths.template_root(name)
        if final.exists() and not force:
            raise Conflict(f"template {name} is already built", hint="use --force to rebuild it")
        work = paths.templates / f"{BUILD_PREFIX}{name}-{os.getpid()}"
        btrfs.create_subvolume(work)
        try:
            _debootstrap(recipe, work, progress)
            meta = _metadata(recipe, work)
            (work / METADATA).write_text(json.dumps(meta, indent=1))
            btrfs.set_read_only(work)
            if final.exists():
                _remove(paths, name)
            os.rename(work, final)
        except BaseException:
            btrfs.delete_subvolume(work)
            raise
    progress(f"template {name} built: {meta['package_count']} packages")
    return info(paths, name)


def _debootstrap(recipe: recipes.Recipe, target: Path, progress: Progress) -> None:
    run.require("debootstrap", "debootstrap")
    cmd: list[str | Path] = [
        "unshare",
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "debootstrap",
        f"--variant={recipe.variant}",
        f"--components={','.join(recipe.components)}",
    ]
    if recipe.packages:
        cmd.append(f"--include={','.join(recipe.packages)}")
    cmd += [recipe.suite, target, recipe.resolved_mirror()]
    tail: list[str] = []
    with run.stream(cmd) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-5:]
            if line.startswith(("I:", "W:", "E:")):
                progress(line[3:].strip())
        status = proc.wait()
    if status != 0:
        why = next((t for t in reversed(tail) if t.startswith("E:")), tail[-1] if tail else "")
        raise SystemFailure(f"debootstrap of {recipe.name} failed: {why or f'exit status {status}'}")


def installed_packages(root: Path) -> dict[str, str]:
    """name -> version, from a root's own dpkg database (never the host's)."""
    status = root / "var/lib/dpkg/status"
    if not status.is_file():
        return {}
    packages = {}
    with open(status) as f:
        for para in Deb822.iter_paragraphs(f):
            if para.get("Status", "").endswith(" installed"):
                arch = para.get("Architecture", "")
                key = para["Package"] if arch in ("all", "") else f"{para['Package']}:{arch}"
                packages[key] = para.get("Version", "")
    return packages


def _metadata(recipe: recipes.Recipe, root: Path) -> dict[str, object]:
    packages = installed_packages(root)
    return {
        "name": recipe.name,
        "suite": recipe.suite,
        "variant": recipe.variant,
        "mirror": recipe.resolved_mirror(),
        "extra_packages": list(recipe.packages),
        "built": time.time(),
        "package_count": len(packages),
        "packages": packages,
    }


def names(paths: Paths) -> list[str]:
    if not paths.templates.is_dir():
        return []
    return sorted(p.name for p in paths.templates.iterdir() if not p.name.startswith(".") and (p / METADATA).is_file())


def info(paths: Paths, name: str) -> TemplateInfo:
    root = require(paths, name)
    meta = json.loads((root / METADATA).read_text())
    return TemplateInfo(
        name=name,
        suite=meta["suite"],
        variant=meta["variant"],
        mirror=meta["mirror"],
        built=meta["built"],
        package_count=meta["package_count"],
        packages=meta["packages"],
        read_only=btrfs.is_read_only(root),
        used_by=users(paths, name),
    )


def users(paths: Paths, name: str) -> list[str]:
    return [c for c in state.names(paths) if state.load(paths, c).template == name]


def remove(paths: Paths, name: str, *, force: bool = False) -> None:
    info(paths, name)  # NotFound if absent
    with locks.hold(_lock(paths, name), wait=False, what=f"template {name}"):
        in_use = users(paths, name)
        if in_use and not force:
            raise Conflict(f"template {name} is used by {', '.join(in_use)}", hint="remove them or use --force")
        _remove(paths, name)


def _remove(paths: Paths, name: str) -> None:
    """Snapshots are independent subvolumes: containers keep their roots."""
    btrfs.delete_subvolume(paths.template_root(name))


def require(paths: Paths, name: str) -> Path:
    root = paths.template_root(name)
    if not (root / METADATA).is_file():
        recipes.find(name)
        raise NotFound(f"template {name} is not built", hint=f"prodng template build {name}")
    return root
