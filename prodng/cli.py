"""The prodng command line, generated from the verb table (prodng/verbs.py).

Start-up is part of every command's cost: `prodng ls`, `info` and `freeze` stay under twice
the bare interpreter's (bench/cli.py). So argparse, json and logging are imported only where
needed, and the common command line (a verb, its one-word arguments, global options) is read
here by hand, as argparse would read it; anything else (help, a verb's own options, lists,
`--`, usage errors) goes to argparse (prodng/argparser.py), built from the same table.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from prodng import terminal
from prodng.config import open_root
from prodng.errors import ProdngError, from_os_error
from prodng.params import Kind
from prodng.verbs import BY_NAME, VERBS, Output, Verb, call, context

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs CLI start-up time
if TYPE_CHECKING:
    from typing import Any

EXIT_INTERNAL = 70

OPTIONS_WITH_VALUES = {"--root", "--remote", "--cert", "--key", "--cacert"}
FLAGS = {"--json", "--debug"}


def _first_word(argv: list[str]) -> int:
    """Index of the verb: the first argument that is not a global option or its value."""
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] in OPTIONS_WITH_VALUES else 1
    return index


def _with_implicit_run(argv: list[str]) -> list[str]:
    """`prodng bookworm svc.deb dhcp` means `prodng run bookworm svc.deb dhcp`."""
    index = _first_word(argv)
    verbs = {v.name.split()[0] for v in VERBS}
    if index < len(argv) and argv[index] not in verbs:
        return argv[:index] + ["run"] + argv[index:]
    return argv


def read_plain(argv: list[str]) -> tuple[Verb, dict[str, object], dict[str, Any]] | None:
    """`[OPTION...] VERB [WORD...]`, global options anywhere after the verb's name too, with one
    plain word for each positional parameter of the verb (all of them single words): the verb,
    its arguments (the others at their defaults) and the global options, exactly as argparse
    reads that line. None for any other line, which argparse reads (or refuses)."""
    options: dict[str, Any] = {"root": None, "json": False, "debug": False}
    options.update(remote=None, cert=None, key=None, cacert=None)
    words: list[tuple[int, str]] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in FLAGS:
            options[word[2:]] = True
        elif word in OPTIONS_WITH_VALUES and index + 1 < len(argv) and not argv[index + 1].startswith("-"):
            index += 1
            options[word[2:]] = argv[index]
        elif word.startswith("-"):  # help, a verb's option, --, an option's =form or abbreviation
            return None
        else:
            words.append((index, word))
        index += 1
    if not words:
        return None
    verb = BY_NAME.get(words[0][1])
    if verb is None and len(words) > 1 and words[1][0] == words[0][0] + 1:  # `template ls`: next to each other
        verb = BY_NAME.get(f"{words[0][1]} {words[1][1]}")
    if verb is None:
        return None
    given = [word for _, word in words[len(verb.name.split()) :]]
    positional = [p for p in verb.params if p.positional]
    if len(given) != len(positional) or any(p.kind is not Kind.STR for p in positional):
        return None
    values: dict[str, object] = dict(zip((p.name for p in positional), given, strict=True))
    for p in verb.params:
        if not p.positional:
            values[p.name] = [] if p.kind is Kind.LIST and p.default is None else p.default
    return verb, values, options


_progress_shown = False  # a progress line is on the terminal, not ended yet


def _progress(line: str) -> None:
    global _progress_shown
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + terminal.escape(line[:100]))
        sys.stderr.flush()
        _progress_shown = True
    else:
        print(line, file=sys.stderr, flush=True)


def _report(text: str) -> None:
    """An error line. What a container wrote can be in it (a unit's last log lines, apt's output of a
    failed install): on a terminal it is escaped as container output is everywhere else, on a line
    of its own after any progress line."""
    global _progress_shown
    if sys.stderr.isatty():
        sys.stderr.write("\n" if _progress_shown else "")
        _progress_shown = False
        text = terminal.escape(text)
    print(text, file=sys.stderr)


def _format_cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    return str(value)


def _shown(text: str, tty: bool) -> str:
    return terminal.escape(text) if tty else text


def _json(value: object, **options: Any) -> str:
    import json  # the table and field outputs of the short verbs need none

    return json.dumps(value, **options)


def _line(item: object, as_json: bool, tty: bool) -> str:
    """A log record (prodng/container/logs.py), an event or a line of text, as one line."""
    if as_json or (isinstance(item, dict) and "source" not in item):
        return _json(item)
    if isinstance(item, dict):
        own = item["source"] == "prodng" and tty
        return terminal.own_line(str(item["line"])) if own else _shown(str(item["line"]), tty)
    return _shown(str(item), tty)


def render(verb: Verb, result: object, as_json: bool) -> int:
    """Print a verb's result; on a terminal, what came from a container is escaped (prodng/terminal.py)."""
    tty = sys.stdout.isatty()
    if isinstance(result, Iterator) or (verb.output is Output.LOG and not as_json and isinstance(result, list)):
        for line in result:
            if line is not None:  # None: a follower's heartbeat
                print(_line(line, as_json, tty), flush=True)
        return 0
    if verb.output is Output.COMMAND and isinstance(result, dict):
        if as_json:
            print(_json(result))
        else:  # over --remote the command's output comes back in the answer
            sys.stdout.write(_shown(str(result.get("stdout", "")), tty))
            sys.stderr.write(_shown(str(result.get("stderr", "")), sys.stderr.isatty()))
        return int(str(result["exit_code"]))  # the command's own output is all it prints
    if as_json:
        print(_json(result, indent=1, default=str))
    elif verb.output is Output.TABLE and isinstance(result, list) and (verb.columns or result):
        columns = verb.columns or tuple(result[0])
        rows = [[_shown(_format_cell(r.get(c)), tty) for c in columns] for r in result]
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    elif isinstance(result, list):
        for line in result:
            if line is not None:  # None: a follower's heartbeat
                print(_shown(str(line), tty))
    elif isinstance(result, dict) and verb.output is Output.NAME:
        print(result["name"])
    elif isinstance(result, dict):
        for key, value in result.items():
            if isinstance(value, dict) and key == "packages":
                value = f"{len(value)} (see --json)"
            if key == "services" and isinstance(value, list) and value:
                print("services:")
                for line in (text for unit in value for text in _unit_lines(unit)):
                    print(_shown(line, tty))
                continue
            print(f"{key}: {_shown(_format_cell(value), tty)}")
    return 0


def _unit_lines(unit: dict[str, object]) -> list[str]:
    """One unit of `info`: its state, and for one that failed its error and last lines of output."""
    words = [f"  {unit['name']}  {unit['state']}"]
    words += [f"pid {unit['pid']}"] if unit.get("pid") else []
    words += [f"restarts {unit['restarts']}"] if unit.get("restarts") else []
    head = "  ".join(words) + (f": {unit['error']}" if unit.get("error") else "")
    failed = unit["state"] in ("failed", "restarting") or bool(unit.get("boot_failed"))
    log = unit.get("log")
    return [head] + ([f"      | {line}" for line in log] if failed and isinstance(log, list) else [])


def agent_main(argv: list[str]) -> int:
    """The agent and its trust store: host administration, deliberately not a REST verb."""
    import logging

    from prodng import argparser
    from prodng.agent import credentials  # cryptography: imported by agent commands only

    args = argparser.agent_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    try:
        paths = open_root(args.root)
        if args.action is None:
            from prodng.agent.server import serve  # aiohttp

            return serve(paths, args.listen, args.port, Path(args.socket) if args.socket else None)
        credentials.ensure(paths)
        actions: dict[str, Callable[[], object]] = {
            "add": lambda: credentials.trust_add(paths, args.name, args.pem),
            "ls": lambda: credentials.trust_list(paths),
            "rm": lambda: credentials.trust_rm(paths, args.name),
        }
        result = actions[args.trust]()
    except ProdngError as err:
        _report(f"prodng: error: {err}")
        return err.exit_code
    columns = ("name", "subject", "fingerprint", "expires")
    trust_verb = Verb("agent trust", "", "GET", "", (), columns, output=Output.TABLE)
    return render(trust_verb, result, args.json)


def _configure_logging(debug: bool) -> None:
    """Log lines are the message alone, on stderr; --debug adds each command prodng runs.
    Left alone when neither --debug asks nor the verb's modules import logging (the short verbs
    log through prodng.logger): what reaches an unconfigured logging at WARNING or above is
    printed just the same, the message alone on stderr (logging's last resort)."""
    if debug or "logging" in sys.modules:
        import logging

        logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s")


def _run(verb: Verb, values: dict[str, object], options: dict[str, Any]) -> int:
    """Run the verb, here or on an agent (--remote), and print its result."""
    if options["remote"]:
        _configure_logging(options["debug"])
        from prodng.agent import remote  # http.client and ssl: for --remote only

        paths = open_root(options["root"])
        connection = remote.connect(options["remote"], paths, options["cert"], options["key"], options["cacert"])
        result = remote.call(connection, verb, values)
    else:
        verb.handler_function()  # its modules first: whether they use logging decides _configure_logging
        _configure_logging(options["debug"])
        result = call(verb, context(options["root"], _progress, interactive=True), values)
    if sys.stderr.isatty() and verb.progress:  # end the progress line
        sys.stderr.write("\n")
    code = render(verb, result, options["json"])
    sys.stdout.flush()  # here, not at exit: a closed pipe is then caught in main
    return code


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    index = _first_word(raw)
    if raw[index : index + 1] == ["agent"]:
        return agent_main(raw[:index] + raw[index + 1 :])
    raw = _with_implicit_run(raw)
    read = read_plain(raw)
    if read is None:
        from prodng import argparser

        word = raw[index] if index < len(raw) and not {"-h", "--help"} & set(raw[:index]) else None
        verb, values, options = argparser.read(raw, word)
        if verb is None:  # its help was printed
            return 2
    else:
        verb, values, options = read
    try:
        return _run(verb, values, options)
    except ProdngError as err:
        _report(f"prodng: error: {err}")
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `prodng ls | head`: the reader has all it wanted
        import signal

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 128 + signal.SIGPIPE
    except Exception as err:  # an unexpected failure is still one line unless --debug
        if options["debug"]:
            raise
        if isinstance(err, OSError) and (known := from_os_error(err)):
            _report(f"prodng: error: {known}")
            return known.exit_code
        _report(f"prodng: internal error: {type(err).__name__}: {err} (rerun with --debug)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
