"""Template recipes: small deb822 files in templates/ (suite, variant, packages, mirror)."""

from __future__ import annotations

import re
from pathlib import Path

from prodng.errors import InvalidRequest, NotFound
from prodng.frozen import frozen

NAME_RE = re.compile(r"[a-z0-9][a-z0-9.+-]{0,62}")  # matched in full: no trailing newline
SUITE_RE = re.compile(r"^[a-z][a-z0-9-]{1,31}$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]+$")
VARIANTS = ("minbase", "buildd", "-")
REQUIRED = ("Name", "Suite")
KNOWN = set(REQUIRED) | {"Description", "Variant", "Components", "Packages", "Mirror"}
DEFAULT_MIRROR = "http://deb.debian.org/debian"


@frozen
class Recipe:
    name: str
    suite: str
    variant: str = "minbase"
    components: tuple[str, ...] = ("main",)
    packages: tuple[str, ...] = ()
    mirror: str = ""

    def resolved_mirror(self) -> str:
        return self.mirror or host_mirror()


def search_path(extra_folders: tuple[str, ...] = ()) -> list[Path]:
    """The `recipes` setting's folders first, then the shipped templates/ folders."""
    extra = [Path(p) for p in extra_folders]
    shipped = [Path(__file__).resolve().parents[2] / "templates", Path("/usr/share/prodng/templates")]
    return extra + shipped


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise InvalidRequest(f"invalid template name {name!r}", hint="1-63 lower-case letters, digits, . + -")
    return name


def find(name: str, extra_folders: tuple[str, ...] = ()) -> Recipe:
    check_name(name)
    for folder in search_path(extra_folders):
        candidate = folder / f"{name}.recipe"
        if candidate.is_file():
            return parse(candidate)
    known = ", ".join(sorted(available(extra_folders))) or "none"
    raise NotFound(f"unknown template {name!r}", hint=f"recipes available: {known}")


def available(extra_folders: tuple[str, ...] = ()) -> set[str]:
    return {p.stem for folder in search_path(extra_folders) if folder.is_dir() for p in folder.glob("*.recipe")}


def parse(path: Path) -> Recipe:
    """Read and check one recipe; every defect is reported with the file's name."""

    def bad(why: str) -> InvalidRequest:
        return InvalidRequest(f"recipe {path}: {why}")

    from debian.deb822 import Deb822  # here: the verb table imports this module for NAME_RE at CLI start-up

    try:
        fields = Deb822(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise bad(f"unreadable: {err}") from None
    missing = [k for k in REQUIRED if not fields.get(k, "").strip()]
    if missing:
        raise bad(f"missing field {', '.join(missing)}")
    unknown = sorted(set(fields) - KNOWN)
    if unknown:
        raise bad(f"unknown field {', '.join(unknown)}")
    name, suite = fields["Name"].strip(), fields["Suite"].strip()
    if not NAME_RE.fullmatch(name) or name != path.stem:
        raise bad(f"Name {name!r} must be a valid name equal to the file name {path.stem!r}")
    if not SUITE_RE.fullmatch(suite):
        raise bad(f"malformed Suite {suite!r}")
    variant = fields.get("Variant", "minbase").strip()
    if variant not in VARIANTS:
        raise bad(f"Variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    packages = tuple(p.strip() for p in fields.get("Packages", "").replace("\n", ",").split(",") if p.strip())
    for package in packages:
        if not PACKAGE_RE.fullmatch(package):
            raise bad(f"malformed package name {package!r} in Packages")
    components = tuple(fields.get("Components", "main").split())
    mirror = fields.get("Mirror", "").strip()
    if mirror and not re.fullmatch(r"(https?|file)://\S+", mirror):
        raise bad(f"malformed Mirror {mirror!r}")
    return Recipe(name, suite, variant, components, packages, mirror)


def host_mirror() -> str:
    """The first Debian archive in the host's apt sources (deb822 or one-line format)."""
    from debian.deb822 import Deb822  # as in parse()

    uris: list[str] = []
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for para in Deb822.iter_paragraphs(sources.read_text()):
            if "deb" in para.get("Types", "").split() and para.get("Enabled", "yes") != "no":
                uris += para.get("URIs", "").split()
    for listfile in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if listfile.is_file():
            for line in listfile.read_text().splitlines():
                words = [w for w in line.split() if not w.startswith("[")]
                if len(words) >= 3 and words[0] == "deb":
                    uris.append(words[1])
    archives = [u for u in uris if "security" not in u and "debian" in u]
    return archives[0] if archives else DEFAULT_MIRROR
