"""prodng.frozen gives the start path's value classes what prodng used of frozen dataclasses (issue 11)."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from prodng.container.state import Bind, ContainerRecord, Limits
from prodng.frozen import asdict, field, fields, frozen, replace


@frozen
class Point:
    """A value with a default, and fields made by a factory and ignored by equality (and hash)."""

    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list, compare=False)
    note: str = field(default="", compare=False)


@dataclasses.dataclass(frozen=True)
class DataPoint:
    x: int
    y: int = 0
    tags: list[str] = dataclasses.field(default_factory=list, compare=False)
    note: str = dataclasses.field(default="", compare=False)


@pytest.mark.parametrize("kind", [Point, DataPoint])
def test_it_behaves_as_a_frozen_dataclass(kind: type[Point] | type[DataPoint]) -> None:
    """The same checks pass for a dataclass: what prodng relied on is what it gets."""
    a, b = kind(1), kind(x=1, y=0, note="other")
    assert a == b and hash(a) == hash(b) and a != kind(2) and a.tags == [] and a.tags is not kind(1).tags
    assert kind(1, 2).y == 2 and kind.y == 0  # the default stays a class attribute
    with pytest.raises(AttributeError):
        a.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.x  # type: ignore[misc]
    bad: tuple[object, ...]
    for bad in ((), (1, 2, [], "", 5)):
        with pytest.raises(TypeError):
            kind(*bad)
    with pytest.raises(TypeError):
        kind(1, x=1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        kind(1, z=1)  # type: ignore[call-arg]
    assert repr(a).endswith("(x=1, y=0, tags=[], note='')")
    assert copy.deepcopy(a) == a and copy.copy(a) == a


def test_replace_asdict_and_fields() -> None:
    point = Point(1, tags=["a"])
    assert replace(point, y=5) == Point(1, 5) and replace(point, y=5).tags == ["a"] and point.y == 0
    with pytest.raises(TypeError):
        replace(point, z=1)
    assert [f.name for f in fields(Point)] == [f.name for f in fields(point)] == ["x", "y", "tags", "note"]
    record = ContainerRecord("web", "bookworm", ("sleep", "1"), binds=(Bind("/a", "/b"),), limits=Limits(pids=5))
    data = asdict(record)
    assert data["binds"] == (
        {"source": "/a", "target": "/b", "read_only": True, "dev": False, "suid": False, "owner": ""},
    )
    assert data["limits"]["pids"] == 5 and data["argv"] == ("sleep", "1")
    assert ContainerRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_mistakes_are_refused_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match="follows a default"):

        @frozen
        class Backwards:
            x: int = 0
            y: int  # type: ignore[misc]

    with pytest.raises(TypeError, match="inherit"):

        @frozen
        class Point3(Point):
            z: int = 0
