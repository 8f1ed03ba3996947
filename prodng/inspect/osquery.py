"""prodng-osquery-extension: serve prodng's tables to a running osqueryd.

Adapter over the osquery SDK (untyped). osqueryd starts it with --socket (and
--timeout, --interval); the prodng root comes from PRODNG_ROOT. Autoload it with:

    echo /usr/bin/prodng-osquery-extension > /etc/osquery/extensions.load
    osqueryd --extensions_autoload=/etc/osquery/extensions.load --extensions_timeout=3 \\
             --extensions_require=prodng
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

import osquery  # type: ignore[import-untyped]

from prodng.config import Paths, open_root
from prodng.inspect import tables

EQUALS = 2  # osquery's constraint operator for '='


def wanted_values(context: Mapping[str, object] | str, key: str) -> set[str] | None:
    """The values an equality constraint on the key column allows, or None for no constraint."""
    if isinstance(context, str):
        context = json.loads(context) if context else {}
    for constraint in context.get("constraints", []):  # type: ignore[union-attr]
        if constraint.get("name") == key:
            values = {c["expr"] for c in constraint.get("list", []) if int(c.get("op", 0)) == EQUALS}
            if values:
                return values
    return None


def plugin_for(table: tables.Table, paths: Paths) -> type:
    """One osquery TablePlugin class per prodng table (the SDK registers classes)."""

    def name(self: object) -> str:
        return table.name

    def columns(self: object) -> list[object]:
        # prodng column kinds are osquery type names (TEXT, INTEGER, BIGINT, DOUBLE)
        return [osquery.TableColumn(name=c, type=kind) for c, kind in table.columns]

    def generate(self: object, context: dict[str, object]) -> list[dict[str, str]]:
        rows = table.generate(paths, wanted_values(context, table.key))
        return [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]

    return type(
        f"Prodng_{table.name}", (osquery.TablePlugin,), {"name": name, "columns": columns, "generate": generate}
    )


def main() -> int:
    if os.geteuid() != 0:
        print("prodng-osquery-extension: must run as root (osquery loads only root-owned extensions)", file=sys.stderr)
        return 1
    paths = open_root()
    manager = osquery.ExtensionManager()
    for table in tables.TABLES:
        manager.add_plugin(plugin_for(table, paths))
    osquery.start_extension(name="prodng", version=__import__("prodng").__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
