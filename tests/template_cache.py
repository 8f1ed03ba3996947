"""The bookworm template across test sessions: debootstrapped once (~30 s), then kept as a btrfs send stream in
the test cache and received into each new session's pool in about a second.

The cache is keyed by the recipe, the mirror and the code that builds templates, so a change to any of them
builds afresh, and it is rebuilt when older than a week (the mirror moves on). PRODNG_TEST_TEMPLATE_CACHE=0
turns it off.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from probe_helpers import cache_dir

from prodng.storage import recipes

if TYPE_CHECKING:
    from conftest import Prodng

MAX_AGE = 7 * 86400
BUILD_CODE = [Path(recipes.__file__), Path(recipes.__file__).with_name("templates.py")]


def _key(name: str) -> str:
    recipe = next(
        folder / f"{name}.recipe" for folder in recipes.search_path() if (folder / f"{name}.recipe").is_file()
    )
    digest = hashlib.sha256(recipe.read_bytes() + recipes.find(name).resolved_mirror().encode())
    for source in BUILD_CODE:
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def _btrfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["btrfs", *args], capture_output=True, text=True, timeout=600)


def ensure(prodng: Prodng, name: str) -> None:
    """Template NAME in prodng's pool: received from the cache, or built and then cached."""
    if name in prodng("template", "ls").stdout.split():
        return
    templates = prodng.root / "pool" / "templates"
    stream = cache_dir() / f"template-{name}-{_key(name)}.btrfs"
    use_cache = os.environ.get("PRODNG_TEST_TEMPLATE_CACHE", "1") != "0"
    if use_cache and stream.is_file() and time.time() - stream.stat().st_mtime < MAX_AGE:
        prodng("template", "info", name, check=False)  # lays out the pool (a NotFound answer is expected)
        if _btrfs("receive", "-q", "-f", str(stream), str(templates)).returncode == 0:
            return
        _btrfs("subvolume", "delete", str(templates / name))  # a partial receive; build instead
        stream.unlink(missing_ok=True)
    prodng("template", "build", name, "--force", timeout=900)
    if use_cache:
        _store(templates / name, stream)


def _store(subvolume: Path, stream: Path) -> None:
    stream.parent.mkdir(parents=True, exist_ok=True)
    partial = stream.with_name(f".{stream.name}.{os.getpid()}")
    if _btrfs("send", "-q", "-f", str(partial), str(subvolume)).returncode == 0:
        os.replace(partial, stream)
    partial.unlink(missing_ok=True)
    for old in stream.parent.glob("template-*.btrfs"):  # other keys, once unused for a week
        if old != stream and time.time() - old.stat().st_mtime > MAX_AGE:
            old.unlink(missing_ok=True)
