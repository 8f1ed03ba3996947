"""The command line as argparse reads it, built from the verb table (prodng/verbs.py).

It reads what prodng/cli.py's own reader leaves to it: help, a verb's options, positional
lists, `--` and every usage error. Importing and building argparse is a good part of a short
verb's run time, so the CLI imports this module only for those command lines.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from prodng.errors import ProdngError
from prodng.params import Kind, Param
from prodng.verbs import BY_NAME, VERBS, Verb

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs CLI start-up time
if TYPE_CHECKING:
    from typing import Any, NoReturn

GLOBAL_OPTIONS = ("root", "json", "debug", "remote", "cert", "key", "cacert")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"prodng: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
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
    global_options(parser, suppress=False)
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
        global_options(sub, suppress=True)
        for param in verb.params:
            _add_param(sub, param)
    return parser


def read(argv: list[str], word: str | None) -> tuple[Verb | None, dict[str, object], dict[str, Any]]:
    """The verb, its arguments and the global options; with no verb, the help is printed."""
    parser = build_parser(word)
    args, extra = parser.parse_known_args(argv)
    options = {name: getattr(args, name) for name in GLOBAL_OPTIONS}
    verb = BY_NAME.get(f"{args.verb} {args.subverb}" if getattr(args, "subverb", None) else args.verb or "")
    if verb is None:
        parser.print_help()
        return None, {}, options
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
    return verb, values, options


def agent_parser() -> Parser:
    parser = Parser(prog="prodng agent", description="serve every verb over HTTPS and a unix socket")
    global_options(parser, suppress=False)
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
        global_options(p, suppress=True)
    return parser
