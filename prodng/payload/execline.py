"""systemd's value syntax: specifiers (%i, %n, ...), Exec*= lines with their prefixes, $VAR/${VAR}
expansion, EnvironmentFile= parsing and time spans. Pure functions (systemd.unit(5) "Specifiers",
systemd.service(5) "Command lines", systemd.exec(5) "Environment")."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from prodng.errors import InvalidRequest

INFINITY = -1.0
_SPAN_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0,
    "hours": 3600.0, "d": 86400.0, "day": 86400.0, "days": 86400.0, "": 1.0,
}  # fmt: skip


def unescape_instance(text: str) -> str:
    """systemd-escape --unescape: '-' is '/', \\xNN a byte."""
    text = text.replace("-", "/")
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), text)


@dataclass(frozen=True)
class Specifiers:
    name: str  # the unit's full name
    hostname: str = ""
    user: str = "root"
    uid: int = 0
    group: str = "root"
    gid: int = 0
    home: str = "/root"
    machine_id: str = ""
    boot_id: str = ""

    def table(self) -> dict[str, str]:
        prefix = self.name.split("@", 1)[0] if "@" in self.name else self.name.rsplit(".", 1)[0]
        instance = self.name.split("@", 1)[1].rsplit(".", 1)[0] if "@" in self.name else ""
        return {
            "n": self.name, "N": self.name.rsplit(".", 1)[0], "p": prefix, "P": unescape_instance(prefix),
            "i": instance, "I": unescape_instance(instance), "j": prefix.rsplit("-", 1)[-1],
            "J": unescape_instance(prefix.rsplit("-", 1)[-1]),
            "f": "/" + unescape_instance(instance or prefix).lstrip("/"),
            "t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "E": "/etc", "T": "/tmp",
            "V": "/var/tmp", "h": self.home, "s": "/bin/sh", "u": self.user, "U": str(self.uid), "g": self.group,
            "G": str(self.gid), "H": self.hostname, "l": self.hostname.split(".")[0], "m": self.machine_id,
            "b": self.boot_id, "v": "", "a": "", "o": "debian", "%": "%",
        }  # fmt: skip

    def expand(self, text: str) -> str:
        table = self.table()

        def one(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in table:
                raise InvalidRequest(f"{self.name}: unknown specifier %{key}")
            return table[key]

        return re.sub(r"%(.)", one, text)


def timespan(text: str) -> float:
    """'1min 30s', '90', '100ms', 'infinity' in seconds (INFINITY for none)."""
    text = text.strip()
    if text in ("infinity", ""):
        return INFINITY
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)\s*([a-z]*)", text):
        if unit not in _SPAN_UNITS:
            raise InvalidRequest(f"bad time span {text!r}")
        total += float(number) * _SPAN_UNITS[unit]
    return total


LATE = ("MAINPID",)  # known only when the command runs: the init substitutes it


def _expand_word(word: str, env: dict[str, str]) -> list[str]:
    """systemd.service(5): $VAR as a word of its own splits at whitespace into words (none when unset);
    ${VAR} inside a word is replaced as one; $VAR inside a word and $$ stay for the program (a shell)."""
    alone = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}", word)
    if alone:
        key = alone.group(1) or alone.group(2)
        if key in LATE and key not in env:
            return [word]
        value = env.get(key, "")
        return value.split() if alone.group(1) else [value]

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$$"
        return match.group(0) if match.group(1) in LATE else env.get(match.group(1), "")

    return [re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}", one, word).replace("$$", "$")]


@dataclass(frozen=True)
class Command:
    path: str
    argv: tuple[str, ...]
    ignore_failure: bool = False  # '-': a failure counts as success
    privileged: bool = False  # '+', '!', '!!': run as root, whatever User= says

    def flags(self) -> str:
        return ("-" if self.ignore_failure else "") + ("+" if self.privileged else "")


def commands(value: str, env: dict[str, str]) -> list[Command]:
    """One Exec*= value: prefixes (-, @, :, +, !, !!), words, a lone ';' separating commands, and
    $-expansion (unless ':')."""
    try:
        words = shlex.split(value.replace("\\;", "\x00"), posix=True)
    except ValueError as err:
        raise InvalidRequest(f"bad command line {value!r}: {err}") from None
    groups: list[list[str]] = [[]]
    for word in words:
        if word == ";":
            groups.append([])
        else:
            groups[-1].append(word.replace("\x00", ";"))
    return [_command(group, env) for group in groups if group]


def _command(words: list[str], env: dict[str, str]) -> Command:
    head = words[0]
    prefix = re.match(r"^[-@:+!|]*", head).group(0)  # type: ignore[union-attr]
    words = [head[len(prefix) :], *words[1:]]
    if words[0] == "":
        words = words[1:]
    if not words:
        raise InvalidRequest("empty command line")
    if ":" not in prefix:
        words = [words[0], *(out for w in words[1:] for out in _expand_word(w, env))]
    path = words[0]
    argv = words[1:] if "@" in prefix else words
    if "@" in prefix and not argv:
        raise InvalidRequest(f"command {path} with '@' has no argv[0]")
    return Command(path, tuple(argv), ignore_failure="-" in prefix, privileged="+" in prefix or "!" in prefix)


def env_file(text: str) -> dict[str, str]:
    """An EnvironmentFile=: KEY=VALUE lines, '#'/';' comments, shell quotes, '\\' continuations."""
    found: dict[str, str] = {}
    for line in text.replace("\\\n", "").splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[7:].lstrip()
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if not match or line.startswith(("#", ";")):
            continue
        raw = match.group(2).strip()
        try:
            words = shlex.split(raw, comments=True, posix=True)
            found[match.group(1)] = " ".join(words) if words else ""
        except ValueError:
            found[match.group(1)] = raw
    return found


def environment(values: list[str]) -> dict[str, str]:
    """Environment= lines: quoted words of KEY=VALUE."""
    found: dict[str, str] = {}
    for value in values:
        try:
            words = shlex.split(value)
        except ValueError:
            words = value.split()
        for word in words:
            if "=" in word and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", word):
                key, val = word.split("=", 1)
                found[key] = val
    return found
