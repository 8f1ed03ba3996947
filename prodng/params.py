"""What a verb's parameter holds, and how each face reads it: one Kind per type of value,
carrying its argparse options (cli.py), its REST converter (agent/app.py), its JSON schema
(agent/openapi.py) and, for numbers, the one strict parser of a word."""

from __future__ import annotations

import enum
from collections.abc import Callable

from prodng.config import parse_int, parse_number
from prodng.errors import InvalidRequest
from prodng.frozen import frozen


class NulByte(ValueError):
    """No name, path, argument or variable can hold one: every text ends up a C string (an exec's argv
    with one was an internal error of the agent)."""


def _text(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError
    if "\0" in raw:
        raise NulByte
    return raw


def _number_text(raw: object) -> str:
    # JSON numbers go through their text, so NaN and Infinity are refused like "nan" is;
    # JSON's true is no number (a bool is an int in Python).
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError
    return raw if isinstance(raw, str) else repr(raw)


def _flag(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).lower()  # a JSON 1 or 0 too
    if word not in TRUE | FALSE:
        raise ValueError
    return word in TRUE


def _words(raw: object) -> list[str]:
    return [_text(v) for v in (raw if isinstance(raw, list) else [raw])]


TRUE, FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})
STRINGS: dict[str, object] = {"type": "array", "items": {"type": "string"}}
PLAIN: dict[str, object] = {}  # argparse's default: one word, kept as text


class Kind(enum.Enum):
    """What a parameter holds, with all each face needs to know of it: its JSON schema
    (agent/openapi.py), its argparse options (cli.py), the converter of a REST value, query
    text or JSON (agent/app.py), and for numbers the one strict parser of a word, which
    refuses nan, inf, 1e400 and non-ASCII digits on the CLI and over REST alike."""

    STR = ({"type": "string"}, PLAIN, _text)
    INT = ({"type": "integer"}, PLAIN, _number_text, parse_int)
    FLOAT = ({"type": "number"}, PLAIN, _number_text, parse_number)
    BOOL = ({"type": "boolean"}, {"action": "store_true"}, _flag)
    LIST = (STRINGS, {"action": "append"}, _words)  # a positional list takes one or more words
    ARGV = ({**STRINGS, "minItems": 1}, {"nargs": "..."}, _words)  # a command line: the rest of the words

    def __init__(
        self,
        schema: dict[str, object],
        cli_options: dict[str, object],
        convert: Callable[[object], object],
        parse_word: Callable[[str, str], int | float] | None = None,
    ) -> None:
        self.schema = schema
        self.cli_options = cli_options
        self.convert = convert
        self.parse_word = parse_word

    @property
    def many(self) -> bool:
        """A list: repeated query keys gather, JSON gives an array, the CLI has none by default."""
        return self in (Kind.LIST, Kind.ARGV)

    def __str__(self) -> str:
        return self.name.lower()


@frozen
class Param:
    name: str
    help: str
    kind: Kind = Kind.STR
    positional: bool = False
    flags: tuple[str, ...] = ()
    default: object = None
    required: bool = False
    pattern: str = ""  # for the OpenAPI schema; the handler checks it anyway

    def parse(self, raw: object) -> object:
        """A CLI word or a REST value (query text or JSON) as this parameter's kind."""
        try:
            value = self.kind.convert(raw)
        except NulByte:
            raise InvalidRequest(f"{self.name} holds a NUL byte") from None
        except (ValueError, TypeError):
            raise InvalidRequest(f"{self.name} must be of type {self.kind}") from None
        if self.kind.parse_word and isinstance(value, str):
            return self.kind.parse_word(value, self.flags[-1] if self.flags else self.name)
        return value


def parse_param(param: Param, raw: object) -> object:
    """The one parser of each kind, for the CLI's words and REST's values alike."""
    return param.parse(raw)
