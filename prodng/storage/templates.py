"""Template roots: debootstrap a recipe (or import a directory or tar archive) into a temporary
subvolume, then publish it read-only.

A build or import is atomic: it happens in templates/.build-NAME-PID and is made read-only
and renamed into place only on success. debootstrap runs in its own mount and
pid namespaces, tied to us by PR_SET_PDEATHSIG: if we are killed, it dies and its
mounts vanish with it; the next build deletes the stale subvolume.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from prodng import locks, run
from prodng.config import Paths
from prodng.container import state
from prodng.errors import Conflict, InvalidRequest, NotFound, SystemFailure
from prodng.storage import btrfs, inroot, recipes, rootdb

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
    source: str = ""  # what an imported template was made from

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


@contextmanager
def _staged(paths: Paths, name: str, *, force: bool) -> Iterator[Path]:
    """A subvolume to fill; published read-only as template NAME only if the body succeeds.

    Under the template's lock, so a concurrent build or import of the same name is refused;
    a killed prodng leaves templates/.build-NAME-PID, which clean_stale_builds removes.
    """
    clean_stale_builds(paths)
    with locks.hold(_lock(paths, name), wait=False, what=f"template {name}"):
        final = paths.template_root(name)
        if final.exists() and not force:
            raise Conflict(f"template {name} already exists", hint="use --force to replace it")
        work = paths.templates / f"{BUILD_PREFIX}{name}-{os.getpid()}"

        def make_room() -> None:
            if final.exists():
                _remove(paths, name)

        with btrfs.staged(work, final, make_room=make_room):
            yield work


def build(paths: Paths, name: str, progress: Progress, *, force: bool = False) -> TemplateInfo:
    recipe = recipes.find(name, paths.settings.recipes)
    with _staged(paths, name, force=force) as work:
        _debootstrap(recipe, work, progress)
        meta = _metadata(recipe, work)
        inroot.write_text(work, METADATA, json.dumps(meta, indent=1))
    progress(f"template {name} built: {meta['package_count']} packages")
    return info(paths, name)


def import_root(paths: Paths, name: str, source: Path, *, force: bool = False) -> TemplateInfo:
    """A template from a root made elsewhere: a directory (copied, reflinked where it can be) or a tar
    archive (plain, gzip, bzip2 or xz). Ownership, modes, links and xattrs are kept; GNU tar refuses
    members with ".." and strips leading "/"."""
    recipes.check_name(name)
    if source.is_dir() and paths.pool.resolve().is_relative_to(source.resolve()):
        raise InvalidRequest(f"{source} holds prodng's pool", hint="import a directory with only the root in it")
    copy = _import_command(source)
    with _staged(paths, name, force=force) as work:
        run.run([*copy, work])
        packages = rootdb.installed_packages(work)
        meta = {
            "name": name,
            "suite": "",
            "variant": "import",
            "mirror": "",
            "source": str(source),
            "built": time.time(),
            "package_count": len(packages),
            "packages": packages,
        }
        inroot.write_text(work, METADATA, json.dumps(meta, indent=1))
    return info(paths, name)


def _import_command(source: Path) -> list[str | Path]:
    """The command that copies source into a directory given last; refuses what is neither a directory
    nor a tar archive, before anything is made."""
    if source.is_dir():
        return ["cp", "-a", "--reflink=auto", "--no-target-directory", source]
    if source.is_file() and tarfile.is_tarfile(source):
        return [
            "tar",
            "--extract",
            "--numeric-owner",
            "--same-owner",
            "--preserve-permissions",
            "--xattrs",
            "--file",
            source,
            "--directory",
        ]
    if not source.exists():
        raise InvalidRequest(f"{source}: no such directory or archive")
    raise InvalidRequest(f"{source}: neither a directory nor a tar archive")


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
        # debootstrap refuses a nodev target (it makes /dev nodes), and the pool is nodev on the host: in
        # debootstrap's own mount namespace only, the target is a bind of itself with devices allowed.
        "sh",
        "-c",
        'mount --bind "$0" "$0" && mount -o remount,bind,dev "$0" && exec "$@"',
        target,
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


def _metadata(recipe: recipes.Recipe, root: Path) -> dict[str, object]:
    packages = rootdb.installed_packages(root)
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
    return sorted(
        p.name for p in paths.templates.iterdir() if not p.name.startswith(".") and inroot.is_file(p, METADATA)
    )


def info(paths: Paths, name: str) -> TemplateInfo:
    root = require(paths, name)
    meta = json.loads(inroot.read_text(root, METADATA))
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
        source=meta.get("source", ""),
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
    root = paths.template_root(recipes.check_name(name))  # before it becomes a path (a NUL, a ../)
    if not inroot.is_file(root, METADATA):
        recipes.find(name, paths.settings.recipes)
        raise NotFound(f"template {name} is not built", hint=f"prodng template build {name}")
    return root
