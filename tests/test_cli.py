"""The CLI is generated from the verb table; usage errors are one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

from prodng import argparser, cli
from prodng.verbs import VERBS


def _subcommands() -> set[str]:
    parser = argparser.build_parser()
    found = set()
    top = next(a for a in parser._actions if a.dest == "verb")
    for name, sub in top.choices.items():  # type: ignore[union-attr]
        nested = [a for a in sub._actions if a.dest == "subverb"]
        if nested:
            found |= {f"{name} {n}" for n in nested[0].choices}  # type: ignore[union-attr]
        else:
            found.add(name)
    return found


def test_every_verb_is_a_subcommand_and_back() -> None:
    assert _subcommands() == {v.name for v in VERBS}


def test_every_verb_has_a_unique_route_and_method() -> None:
    routes = [v.route for v in VERBS]
    assert len(routes) == len(set(routes))
    assert all(v.method in ("GET", "POST") for v in VERBS)
    assert {v.name for v in VERBS if v.method == "GET"} >= {"ls", "info", "logs", "template ls", "template info"}


def test_implicit_run() -> None:
    assert cli._with_implicit_run(["bookworm", "svc.deb", "dhcp"]) == ["run", "bookworm", "svc.deb", "dhcp"]
    assert cli._with_implicit_run(["--root", "/x", "bookworm"]) == ["--root", "/x", "run", "bookworm"]
    assert cli._with_implicit_run(["ls"]) == ["ls"]
    assert cli._with_implicit_run(["template", "ls"]) == ["template", "ls"]


def test_usage_error_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "prodng", "stop"], capture_output=True, text=True)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("prodng: error:")


def test_help_lists_verbs() -> None:
    result = subprocess.run([sys.executable, "-m", "prodng", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for verb in ("run", "freeze", "thaw", "exec", "template"):
        assert verb in result.stdout


def test_every_handler_resolves_and_takes_its_params() -> None:
    """Handlers are named as strings in the table: each one exists and takes exactly the verb's parameters."""
    import inspect

    from prodng.handlers import create

    for verb in VERBS:
        signature = inspect.signature(verb.handler_function())
        if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            signature = inspect.signature(create._record)  # run and create pass their **kw on to it
        assert list(signature.parameters) == ["ctx", *(p.name for p in verb.params)], verb.name


def test_short_verbs_import_nothing_heavy() -> None:
    """`prodng ls`, `info` and `freeze` start fast: pyroute2, debian and aiohttp are imported by the verbs that
    need them (bench/cli.py measures the start-up)."""
    code = (
        "import sys\n"
        "from prodng import verbs\n"
        "import prodng.cli\n"
        "for name in ('ls', 'info', 'freeze', 'thaw', 'stop', 'kill', 'logs'):\n"
        "    verbs.BY_NAME[name].handler_function()\n"
        "print(sorted(m for m in ('pyroute2', 'debian', 'aiohttp', 'cryptography', 'typing') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


PLAIN_LINES = [
    ["ls"],
    ["--json", "ls"],
    ["ls", "--json", "--debug"],
    ["--root", "/x", "info", "web"],
    ["info", "web", "--root", "/y", "--root", "/z"],
    ["--root", "/a", "freeze", "--root", "/b", "web"],
    ["thaw", ""],
    ["stop", "web"],
    ["kill", "web"],
    ["logs", "web"],
    ["query", "SELECT 1"],
    ["template", "ls"],
    ["template", "info", "bookworm"],
    ["--remote", "unix:/s", "--cert", "c", "--key", "k", "--cacert", "a", "rm", "web"],
    ["events"],
    ["pool"],
]
ARGPARSE_LINES = [
    [],
    ["--help"],
    ["info", "-h"],
    ["stop", "-t", "3", "web"],
    ["kill", "-s", "HUP", "web"],
    ["logs", "-f", "web"],
    ["--js", "ls"],  # an abbreviation: argparse's to take or refuse
    ["--root=/x", "ls"],
    ["--root", "-x", "ls"],
    ["info", "--", "web"],
    ["info", "-web"],
    ["template", "--json", "ls"],
    ["exec", "web", "true"],
    ["upgrade", "web", "a.deb"],
    ["bookworm", "svc.deb", "dhcp"],
    ["info"],
    ["info", "a", "b"],
]


def test_the_plain_reader_reads_as_argparse_does() -> None:
    """The CLI reads the common command lines itself (start-up time): what it reads, it reads as argparse does."""
    for line in PLAIN_LINES:
        plain = cli.read_plain(cli._with_implicit_run(line))
        assert plain is not None, line
        assert plain == argparser.read(cli._with_implicit_run(line), None), line


def test_the_plain_reader_leaves_the_rest_to_argparse() -> None:
    for line in ARGPARSE_LINES:
        assert cli.read_plain(cli._with_implicit_run(line)) is None, line


def test_short_verbs_start_without_argparse_dataclasses_or_logging() -> None:
    """What bench/cli.py measures, by what is imported: the plain reader, frozen value classes and the lazy logger
    keep argparse, dataclasses and logging (about 15 ms of CPU together) out of `ls`, `info` and `freeze`."""
    code = (
        "import sys\n"
        "from prodng import cli, verbs\n"
        "verb, values, options = cli.read_plain(sys.argv[1:])\n"
        "verb.handler_function()\n"
        "print(sorted(m for m in ('argparse', 'dataclasses', 'logging', 'hashlib', 'shutil') if m in sys.modules))\n"
    )
    for line in (["ls"], ["info", "web"], ["freeze", "web"], ["thaw", "web"]):
        result = subprocess.run([sys.executable, "-I", "-c", code, *line], capture_output=True, text=True, check=True)
        assert result.stdout.strip() == "[]", line
