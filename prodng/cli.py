"""The prodng command line, generated from the verb table (prodng/verbs.py)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from prodng import terminal
from prodng.config import open_root
from prodng.errors import ProdngError, from_os_error
from prodng.params import Kind, Param
from prodng.verbs import BY_NAME, VERBS, Output, Verb, call, context

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs CLI start-up time
if TYPE_CHECKING:
    from typing import Any, NoReturn

EXIT_INTERNAL = 70


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"prodng: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--root", default=default, help="state and pool directory (PRODNG_ROOT, /var/lib/prodng)")
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS if suppress else False, help="machine-readable output"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="log every command; show tracebacks",
    )
    parser.add_argument(
        "--remote", default=default, metavar="URL", help="run the verb on an agent: https://HOST:PORT or unix:PATH"
    )
    parser.add_argument("--cert", default=default, help="client certificate for --remote (default: the agent's)")
    parser.add_argument("--key", default=default, help="client key for --remote")
    parser.add_argument("--cacert", default=default, help="CA to verify the agent with (default: the agent's)")


def _word_parser(param: Param) -> Callable[[str], object]:
    def convert(text: str) -> object:
        try:
            return param.parse(text)
        except ProdngError as err:  # argparse reports it as a usage error: one line, exit 2
            raise argparse.ArgumentTypeError(err.message) from None

    return convert


def _add_param(parser: argparse.ArgumentParser, param: Param) -> None:
    options: dict[str, Any] = dict(param.kind.cli_options, help=param.help)
    if param.kind.parse_word:
        options["type"] = _word_parser(param)
    if param.positional:
        if param.kind is Kind.LIST:
            options = {"nargs": "+", "help": param.help}
        parser.add_argument(param.name, **options)
    else:
        parser.add_argument(*param.flags, dest=param.name, default=param.default, **options)


def build_parser(word: str | None = None) -> Parser:
    """The whole command line, or only the verbs starting with WORD: building all of
    them would be a good part of a short verb's run time."""
    parser = Parser(
        prog="prodng",
        description="Run services in hermetic copy-on-write chroots.",
        epilog="prodng TEMPLATE [PAYLOAD] [NETMODE] is short for prodng run ...",
    )
    _global_options(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    groups: dict[str, argparse._SubParsersAction[Parser]] = {}
    for verb in VERBS:
        words = verb.name.split()
        if word is not None and words[0] != word:
            continue
        target = subparsers
        if len(words) == 2:
            if words[0] not in groups:
                group = subparsers.add_parser(words[0], help=f"{words[0]} verbs")
                groups[words[0]] = group.add_subparsers(dest="subverb", metavar="VERB", parser_class=Parser)
            target = groups[words[0]]
        sub = target.add_parser(words[-1], help=verb.help, description=verb.help)
        _global_options(sub, suppress=True)
        for param in verb.params:
            _add_param(sub, param)
    return parser


OPTIONS_WITH_VALUES = {"--root", "--remote", "--cert", "--key", "--cacert"}


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


def _selected_verb(args: argparse.Namespace) -> Verb | None:
    if not args.verb:
        return None
    name = f"{args.verb} {args.subverb}" if getattr(args, "subverb", None) else args.verb
    return BY_NAME.get(name)


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


def _line(item: object, as_json: bool, tty: bool) -> str:
    """A log record (prodng/container/logs.py), an event or a line of text, as one line."""
    if as_json or (isinstance(item, dict) and "source" not in item):
        return json.dumps(item)
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
            print(json.dumps(result))
        else:  # over --remote the command's output comes back in the answer
            sys.stdout.write(_shown(str(result.get("stdout", "")), tty))
            sys.stderr.write(_shown(str(result.get("stderr", "")), sys.stderr.isatty()))
        return int(str(result["exit_code"]))  # the command's own output is all it prints
    if as_json:
        print(json.dumps(result, indent=1, default=str))
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


def _agent_parser() -> Parser:
    parser = Parser(prog="prodng agent", description="serve every verb over HTTPS and a unix socket")
    _global_options(parser, suppress=False)
    parser.add_argument("--listen", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=1337)
    parser.add_argument("--socket", default=None, help="unix socket (default ROOT/agent.sock)")
    sub = parser.add_subparsers(dest="action", parser_class=Parser)
    trust = sub.add_parser("trust", help="manage trusted client certificates").add_subparsers(
        dest="trust", required=True, parser_class=Parser
    )
    add = trust.add_parser("add", help="trust a client certificate (PEM)")
    add.add_argument("name")
    add.add_argument("pem")
    trust.add_parser("ls", help="list trusted client certificates")
    trust.add_parser("rm", help="stop trusting a client certificate").add_argument("name")
    for p in trust.choices.values():
        _global_options(p, suppress=True)
    return parser


def agent_main(argv: list[str]) -> int:
    """The agent and its trust store: host administration, deliberately not a REST verb."""
    from prodng.agent import credentials  # cryptography: imported by agent commands only

    args = _agent_parser().parse_args(argv)
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


def _values(parser: Parser, verb: Verb, args: argparse.Namespace, extra: list[str]) -> dict[str, object]:
    """The verb's arguments from what argparse made of the command line."""
    values = {p.name: getattr(args, p.name) for p in verb.params}
    spill = next((p for p in verb.params if p.positional and p.kind is Kind.LIST), None)
    if spill and extra and not any(e.startswith("-") for e in extra):
        values[spill.name] = values[spill.name] + extra  # positionals after options
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    for p in verb.params:
        if p.kind is Kind.LIST and values[p.name] is None:
            values[p.name] = []
        elif p.kind is Kind.ARGV and values[p.name][:1] == ["--"]:
            values[p.name] = values[p.name][1:]  # `exec NAME -- CMD`: the -- only ends prodng's options
    return values


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    index = _first_word(raw)
    if raw[index : index + 1] == ["agent"]:
        return agent_main(raw[:index] + raw[index + 1 :])
    raw = _with_implicit_run(raw)
    word = raw[index] if index < len(raw) and not {"-h", "--help"} & set(raw[:index]) else None
    parser = build_parser(word)
    args, extra = parser.parse_known_args(raw)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(message)s")
    verb = _selected_verb(args)
    if verb is None:
        parser.print_help()
        return 2
    values = _values(parser, verb, args, extra)
    try:
        if args.remote:
            from prodng.agent import remote  # http.client and ssl: for --remote only

            connection = remote.connect(args.remote, open_root(args.root), args.cert, args.key, args.cacert)
            result = remote.call(connection, verb, values)
        else:
            result = call(verb, context(args.root, _progress, interactive=True), values)
        if sys.stderr.isatty() and verb.progress:  # end the progress line
            sys.stderr.write("\n")
        code = render(verb, result, args.json)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except ProdngError as err:
        _report(f"prodng: error: {err}")
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `prodng ls | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 128 + signal.SIGPIPE
    except Exception as err:  # an unexpected failure is still one line unless --debug
        if args.debug:
            raise
        if isinstance(err, OSError) and (known := from_os_error(err)):
            _report(f"prodng: error: {known}")
            return known.exit_code
        _report(f"prodng: internal error: {type(err).__name__}: {err} (rerun with --debug)")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
