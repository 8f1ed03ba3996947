"""Every host-side access to a path inside a container or template root goes through prodng.storage.inroot.

Walks prodng's code for a path built under a root (`root / x`, `os.path.join(work, x)`,
`paths.container_root(n) / x`) and fails on any that is not handed to inroot: a direct open(),
Path.read_text() or os.unlink() there follows the payload's symlinks on the host (issue 13).
"""

from __future__ import annotations

import ast
from pathlib import Path

PRODNG = Path(__file__).resolve().parent.parent / "prodng"
# Names prodng gives a root (a container's, a template's, an install's work or cached snapshot).
ROOT_NAMES = {"root", "rootfs", "work", "cached", "template_root", "previous_root", "incoming_root", "staged"}
ROOT_CALLS = {"container_root", "template_root"}
# Functions whose `root` is prodng's own directory (PRODNG_ROOT: state/, locks/, the log), not a container's.
# An entry is "module.py:function"; `paths.root` (Paths.root) is never a container's root either.
ALLOWED = {"storage/pool.py:_make_root", "settings.py:load"}


def _is_root(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ROOT_NAMES
    if isinstance(node, ast.Attribute):
        return node.attr in ROOT_NAMES - {"root"}
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        return name in ROOT_CALLS
    return False


def _builds_inside_root(node: ast.AST) -> bool:
    """root / "etc/passwd", os.path.join(root, ...), f"{root}/..."."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _is_root(node.left) or _builds_inside_root(node.left)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join":
        return bool(node.args) and _is_root(node.args[0])
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        return isinstance(first, ast.FormattedValue) and _is_root(first.value)
    return False


def offences(source: str, module: str) -> list[str]:
    found = []
    tree = ast.parse(source)
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if f"{module}:{function.name}" in ALLOWED:
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.expr) and _builds_inside_root(node):
                found.append(f"{module}:{node.lineno} ({function.name}): {ast.unparse(node)}")
    return sorted(set(found))


def test_no_direct_access_under_a_root() -> None:
    found = []
    for path in sorted(PRODNG.rglob("*.py")):
        if path.name == "inroot.py":
            continue
        found += offences(path.read_text(), str(path.relative_to(PRODNG)))
    assert not found, "paths under a root built outside prodng.storage.inroot:\n" + "\n".join(found)


def test_the_walk_sees_the_shapes_it_forbids() -> None:
    source = (
        "def f(root, paths, name):\n"
        "    (root / 'etc/passwd').read_text()\n"
        "    open(os.path.join(work, 'x'))\n"
        "    (paths.container_root(name) / 'var/lib/dpkg/status').open()\n"
        "    os.unlink(f'{rootfs}/usr/sbin/policy-rc.d')\n"
        "    inroot.read_text(root, 'etc/passwd')\n"
    )
    assert [o.split(" ")[0] for o in offences(source, "m.py")] == ["m.py:2", "m.py:3", "m.py:4", "m.py:5"]
