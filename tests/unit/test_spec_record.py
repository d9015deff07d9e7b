"""pycni.spec.record: a ``@record`` class behaves as the same ``@dataclass(frozen=True)`` would."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from pycni.spec.record import field, record, replace


@record
class Point:
    """A point."""

    x: int
    y: int = 0
    tags: list[str] = field(default_factory=list)
    seen: ClassVar[int] = 0


@dataclasses.dataclass(frozen=True)
class PointDC:
    x: int
    y: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)
    seen: ClassVar[int] = 0


@record
class Normalised:
    items: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))


@record
class Labelled(Point):
    label: str = ""


def test_init_eq_hash_repr_as_a_frozen_dataclass() -> None:
    for cls in (Point, PointDC):
        a, b = cls(1, y=2), cls(x=1, y=2)
        assert a == b and a != cls(1, 3)
        assert a.tags == [] and a.tags is not cls(1).tags
        assert cls.__match_args__ == ("x", "y", "tags")
    assert repr(Point(1, 2, ["a"])) == repr(PointDC(1, 2, ["a"])).replace("PointDC", "Point")
    assert Point(1) != PointDC(1) and Point(1) != (1, 0, [])
    assert Point.y == 0 and "tags" not in Point.__dict__  # defaults stay class attributes, factories do not


def test_wrong_arguments_raise_type_error() -> None:
    for call in (lambda: Point(), lambda: Point(1, 2, [], 4), lambda: Point(1, x=1), lambda: Point(1, z=1)):
        with pytest.raises(TypeError):
            call()  # type: ignore[no-untyped-call]


def test_frozen() -> None:
    p = Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.x  # type: ignore[misc]


def test_post_init_and_inheritance() -> None:
    assert Normalised([1, 2]).items == (1, 2)  # type: ignore[arg-type]
    assert hash(Normalised((1,))) == hash(((1,),))  # as a frozen dataclass hashes
    labelled = Labelled(1, 2, label="l")
    assert (labelled.x, labelled.y, labelled.label) == (1, 2, "l")
    assert repr(labelled) == "Labelled(x=1, y=2, tags=[], label='l')"


def test_the_standard_library_sees_a_dataclass() -> None:
    p = Point(1, 2, ["a"])
    assert dataclasses.is_dataclass(p)
    assert [f.name for f in dataclasses.fields(p)] == ["x", "y", "tags"]
    assert dataclasses.asdict(p) == {"x": 1, "y": 2, "tags": ["a"]}
    assert dataclasses.replace(p, y=5) == Point(1, 5, ["a"]) == replace(p, y=5)
    assert dataclasses.replace(Labelled(1), label="m").label == "m"
    assert pickle.loads(pickle.dumps(p)) == p


def test_defining_records_imports_no_dataclasses() -> None:
    root = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {root!r})\n"
        "from pycni.spec.record import record, field, replace\n"
        "@record\n"
        "class A:\n"
        "    a: int\n"
        "    b: dict = field(default_factory=dict)\n"
        "assert replace(A(1), a=2) == A(2)\n"
        "assert 'dataclasses' not in sys.modules and 'inspect' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_a_class_keeps_its_own_methods_as_a_dataclass_does() -> None:
    @record
    class Shown:
        name: str

        def __repr__(self) -> str:
            return f"<{self.name}>"

    assert repr(Shown("x")) == "<x>" and Shown("x") == Shown("x")
    with pytest.raises(TypeError, match="Cannot overwrite"):

        @record
        class Mutable:
            name: str

            def __setattr__(self, name: str, value: object) -> None:
                object.__setattr__(self, name, value)
