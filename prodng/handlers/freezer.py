"""freeze and thaw: a module of their own so that they import only container.freezer (CLI start-up)."""

from __future__ import annotations

from prodng.container import freezer, observe
from prodng.verbs import Context


def freeze(ctx: Context, name: str) -> dict[str, object]:
    freezer.set_frozen(ctx.paths, name, True)
    return observe.describe(ctx.paths, name)


def thaw(ctx: Context, name: str) -> dict[str, object]:
    freezer.set_frozen(ctx.paths, name, False)
    return observe.describe(ctx.paths, name)
