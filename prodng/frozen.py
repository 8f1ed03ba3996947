"""Frozen value classes for what every CLI start defines, without what dataclasses cost it.

`import dataclasses` costs about 6 ms of CPU (it imports inspect) and each frozen dataclass
about 0.5 ms more to define (it compiles six methods from source text): for the dozen value
classes `prodng ls` loads (the verb table, paths and settings, the container record), more
than the whole interpreter's start-up (issue 11, bench/cli.py). `@frozen` reads the class's
annotated fields once and gives it shared methods instead, with what prodng used of
dataclasses: the same constructor (positional or keyword, defaults in field order,
`field(default_factory=..., compare=False)`), immutability, equality and hash by field, a
repr, and `replace`, `asdict` and `fields`. Type checkers see a frozen dataclass
(dataclass_transform). Modules off the start path (payload, inspect, ...) use dataclasses.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing, which costs CLI start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_options: object) -> Callable[[T], T]:
        return lambda decorated: decorated


_MISSING = object()


class Field:
    """One field: its name, and its default or the factory that makes one."""

    __slots__ = ("name", "default", "default_factory", "compare")

    def __init__(self, default: object, default_factory: Callable[[], object] | None, compare: bool) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None, compare: bool = True) -> Any:
    return Field(default, default_factory, compare)


def _fields_of(cls: type) -> tuple[Field, ...]:
    specs: list[Field] = []
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        value = cls.__dict__.get(name, _MISSING)
        spec = value if isinstance(value, Field) else Field(value, None, True)
        spec.name = name
        if isinstance(value, Field):  # the class attribute is the default, as dataclasses leaves it
            if spec.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, spec.default)
        if specs and _has_default(specs[-1]) and not _has_default(spec):
            raise TypeError(f"{cls.__name__}: non-default field {name!r} follows a default one")
        specs.append(spec)
    return tuple(specs)


def _has_default(spec: Field) -> bool:
    return spec.default is not _MISSING or spec.default_factory is not None


def _init(self: object, *args: object, **kwargs: object) -> None:
    specs: tuple[Field, ...] = type(self).__frozen_fields__  # type: ignore[attr-defined]
    name = type(self).__name__
    if len(args) > len(specs):
        raise TypeError(f"{name}() takes {len(specs)} positional arguments but {len(args)} were given")
    for spec, value in zip(specs, args, strict=False):
        if spec.name in kwargs:
            raise TypeError(f"{name}() got multiple values for argument {spec.name!r}")
        object.__setattr__(self, spec.name, value)
    for spec in specs[len(args) :]:
        if spec.name in kwargs:
            value = kwargs.pop(spec.name)
        elif spec.default_factory is not None:
            value = spec.default_factory()
        elif spec.default is not _MISSING:
            value = spec.default
        else:
            raise TypeError(f"{name}() missing required argument {spec.name!r}")
        object.__setattr__(self, spec.name, value)
    if kwargs:
        raise TypeError(f"{name}() got an unexpected keyword argument {next(iter(kwargs))!r}")


def _compared(self: object) -> tuple[object, ...]:
    return tuple(getattr(self, f.name) for f in type(self).__frozen_fields__ if f.compare)  # type: ignore[attr-defined]


def _eq(self: object, other: object) -> object:  # bool, or NotImplemented
    if type(other) is not type(self):
        return NotImplemented
    return _compared(self) == _compared(other)


def _hash(self: object) -> int:
    return hash(_compared(self))


def _repr(self: object) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in type(self).__frozen_fields__)  # type: ignore[attr-defined]
    return f"{type(self).__qualname__}({shown})"


def _refuse(self: object, name: str, *_value: object) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of frozen {type(self).__name__}")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[T]) -> type[T]:
    """Make cls a frozen value class of its annotated fields (see the module's docstring)."""
    if any(hasattr(base, "__frozen_fields__") for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__name__}: a frozen class does not inherit fields; spell them out")
    cls.__frozen_fields__ = _fields_of(cls)  # type: ignore[attr-defined]
    methods = {"__init__": _init, "__eq__": _eq, "__hash__": _hash, "__repr__": _repr}
    for name, method in methods.items():
        if name not in cls.__dict__ or (name == "__hash__" and cls.__dict__[name] is None):
            setattr(cls, name, method)
    cls.__setattr__ = _refuse  # type: ignore[assignment,method-assign]
    cls.__delattr__ = _refuse  # type: ignore[assignment,method-assign]
    return cls


def fields(value: object) -> tuple[Field, ...]:
    """The fields of a frozen class or instance, in order."""
    return (value if isinstance(value, type) else type(value)).__frozen_fields__  # type: ignore[attr-defined,no-any-return]


def replace(value: T, **changes: object) -> T:
    """A copy of value with some fields changed."""
    current = {f.name: getattr(value, f.name) for f in fields(value)}
    return type(value)(**{**current, **changes})


def asdict(value: object) -> dict[str, Any]:
    """The fields as a dict, nested frozen values (also in lists, tuples and dicts) as dicts too."""
    return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}


def _plain(value: object) -> object:
    if hasattr(type(value), "__frozen_fields__"):
        return asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
