"""The prodng command line, generated from the verb table (prodng/verbs.py)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn

from .errors import ProdngError
from .verbs import BY_NAME, VERBS, Param, Verb, call, context

EXIT_INTERNAL = 70


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"prodng: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _global_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("--root", default=default, help="state and pool directory (PRODNG_ROOT, /var/lib/prodng)")
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="machine-readable output")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="log every command; show tracebacks")


def _add_param(parser: argparse.ArgumentParser, param: Param) -> None:
    kinds: dict[str, dict[str, object]] = {
        "str": {}, "int": {"type": int}, "float": {"type": float},
        "bool": {"action": "store_true"}, "list": {"action": "append"}, "argv": {"nargs": argparse.REMAINDER},
    }
    options = dict(kinds[param.kind], help=param.help)
    if param.positional:
        if param.kind == "list":
            options = {"nargs": "+", "help": param.help}
        parser.add_argument(param.name, **options)  # type: ignore[arg-type]
    else:
        parser.add_argument(*param.flags, dest=param.name, default=param.default, **options)  # type: ignore[arg-type]


def build_parser() -> Parser:
    parser = Parser(prog="prodng", description="Run services in hermetic copy-on-write chroots.",
                    epilog="prodng TEMPLATE [PAYLOAD] [NETMODE] is short for prodng run ...")
    _global_options(parser, suppress=False)
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    groups: dict[str, argparse._SubParsersAction[Parser]] = {}
    for verb in VERBS:
        words = verb.name.split()
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


def _with_implicit_run(argv: list[str]) -> list[str]:
    """`prodng bookworm svc.deb dhcp` means `prodng run bookworm svc.deb dhcp`."""
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] == "--root" else 1
    verbs = {v.name.split()[0] for v in VERBS}
    if index < len(argv) and argv[index] not in verbs:
        return argv[:index] + ["run"] + argv[index:]
    return argv


def _selected_verb(args: argparse.Namespace) -> Verb | None:
    if not args.verb:
        return None
    name = f"{args.verb} {args.subverb}" if getattr(args, "subverb", None) else args.verb
    return BY_NAME.get(name)


def _progress(line: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + line[: 100])
        sys.stderr.flush()
    else:
        print(line, file=sys.stderr, flush=True)


def _format_cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "-"
    return str(value)


def render(verb: Verb, result: object, as_json: bool) -> int:
    if isinstance(result, Iterator):
        for line in result:
            print(json.dumps(line) if as_json else line, flush=True)
        return 0
    if verb.name == "exec" and isinstance(result, dict):
        if as_json:
            print(json.dumps(result))
        return int(str(result["exit_code"]))  # the command's own output is all it prints
    if as_json:
        print(json.dumps(result, indent=1, default=str))
    elif isinstance(result, list) and (verb.columns or (result and isinstance(result[0], dict))):
        columns = verb.columns or tuple(result[0])
        rows = [[_format_cell(r.get(c)) for c in columns] for r in result]
        widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
        print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    elif isinstance(result, list):
        for line in result:
            print(line)
    elif isinstance(result, dict) and verb.name == "run":
        print(result["name"])
    elif isinstance(result, dict):
        for key, value in result.items():
            if isinstance(value, dict) and key == "packages":
                value = f"{len(value)} (see --json)"
            print(f"{key}: {_format_cell(value)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(_with_implicit_run(raw))
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="%(message)s")
    verb = _selected_verb(args)
    if verb is None:
        parser.print_help()
        return 2
    values = {p.name: getattr(args, p.name) for p in verb.params}
    spill = next((p for p in verb.params if p.positional and p.kind == "list"), None)
    if spill and extra and not any(e.startswith("-") for e in extra):
        values[spill.name] = values[spill.name] + extra  # positionals after options
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    for p in verb.params:
        if p.kind == "list" and values[p.name] is None:
            values[p.name] = []
    if verb.name == "exec" and values["command"][:1] == ["--"]:
        values["command"] = values["command"][1:]
    try:
        result = call(verb, context(args.root, _progress, interactive=True), values)
        if sys.stderr.isatty() and verb.name == "template build":
            sys.stderr.write("\n")
        return render(verb, result, args.json)
    except ProdngError as err:
        print(f"prodng: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # an unexpected failure is still one line unless --debug
        if args.debug:
            raise
        print(f"prodng: internal error: {type(err).__name__}: {err} (rerun with --debug)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
