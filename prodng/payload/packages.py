"""Which installed packages a container's payloads need (Depends and Pre-Depends, followed through the
root's dpkg database) and which package ships a file: a unit of a package that was installed only as
a Recommends may fail without failing the container, as a Debian host boots with it failed."""

from __future__ import annotations

import re

from prodng.payload.rootfiles import RootFiles


def _stanzas(text: str) -> list[dict[str, str]]:
    found = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if fields.get("Package") and "installed" in fields.get("Status", "").split():
            found.append(fields)
    return found


def needed(files: RootFiles, roots: list[str]) -> set[str]:
    """roots and everything they depend on, transitively (an alternative or a virtual package: every
    installed package that satisfies it)."""
    stanzas = _stanzas(files.read_text("/var/lib/dpkg/status") or "")
    provides: dict[str, set[str]] = {}
    depends: dict[str, list[str]] = {}
    for s in stanzas:
        name = s["Package"]
        provides.setdefault(name, set()).add(name)
        for virtual in re.split(r"\s*,\s*", s.get("Provides", "")):
            if virtual:
                provides.setdefault(virtual.split()[0], set()).add(name)
        wanted = ",".join(v for v in (s.get("Depends", ""), s.get("Pre-Depends", "")) if v)
        depends[name] = [alt.strip().split()[0].split(":")[0] for alt in re.split(r"[,|]", wanted) if alt.strip()]
    seen: set[str] = set()
    queue = [r for r in roots if r in depends]
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        for dep in depends.get(name, []):
            queue.extend(provides.get(dep, ()))
    return seen


def owners(files: RootFiles, packages: set[str]) -> set[str]:
    """Every path the given packages ship (from /var/lib/dpkg/info/PKG[:ARCH].list)."""
    paths: set[str] = set()
    for entry in files.listdir("/var/lib/dpkg/info"):
        if entry.endswith(".list") and entry[:-5].split(":")[0] in packages:
            paths.update((files.read_text(f"/var/lib/dpkg/info/{entry}") or "").splitlines())
    return paths
