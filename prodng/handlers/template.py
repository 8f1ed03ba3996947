"""template build, import, ls, info, rm."""

from __future__ import annotations

from pathlib import Path

from prodng.payload import install
from prodng.storage import templates
from prodng.verbs import Context


def template_build(ctx: Context, name: str, force: bool) -> dict[str, object]:
    built = templates.build(ctx.paths, name, ctx.progress, force=force).summary()
    install.prune(ctx.paths, name)  # installs on the replaced build can never be used again
    return built


def template_import(ctx: Context, name: str, source: str, force: bool) -> dict[str, object]:
    imported = templates.import_root(ctx.paths, name, Path(source).absolute(), force=force).summary()
    install.prune(ctx.paths, name)
    return imported


def prune(ctx: Context) -> dict[str, object]:
    return {"removed": install.prune(ctx.paths)}


def template_ls(ctx: Context) -> list[dict[str, object]]:
    if not ctx.pool_if_present():
        return []
    return [templates.info(ctx.paths, n).summary() for n in templates.names(ctx.paths)]


def template_info(ctx: Context, name: str) -> dict[str, object]:
    info = templates.info(ctx.paths, name)
    return {**info.summary(), "packages": info.packages}


def template_rm(ctx: Context, name: str, force: bool) -> dict[str, object]:
    templates.remove(ctx.paths, name, force=force)
    return {"name": name, "removed": True}
