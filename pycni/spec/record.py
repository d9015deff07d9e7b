"""Frozen value classes for the plugins' cold path: what ``@dataclass(frozen=True)`` gives, without its cost.

Contract:

- ``@record`` on a class with annotated fields gives it what
  ``@dataclass(frozen=True)`` would: an ``__init__`` taking the fields in
  order, positionally or by name, defaults from the class body, a
  ``field(default_factory=...)`` called per instance, then
  ``__post_init__`` if the class has one; ``==`` (same class, same field
  values), ``hash``, ``repr`` (``Name(a=1, b='x')``), ``__match_args__``,
  and assignment or deletion of an attribute raising
  ``dataclasses.FrozenInstanceError``. Fields of a base ``@record`` come
  first; ``ClassVar`` annotations are not fields. A class's own
  ``__init__``, ``__repr__``, ``__eq__`` or ``__hash__`` is kept, as a
  dataclass keeps it.
- ``replace(obj, **changes)`` is ``dataclasses.replace`` for a record.
- The standard library sees a dataclass: ``dataclasses.replace``,
  ``fields``, ``asdict`` and ``is_dataclass`` work on records, through a
  ``__dataclass_fields__`` built on first use (from a dataclass made with
  the same fields, so with ``dataclasses``' own Field objects).
- Type checkers see a frozen dataclass (``typing.dataclass_transform``).

Why: a dataclass costs its module's import (``dataclasses`` imports
``inspect``, ``ast``, ``dis``, ``tokenize``: ~14 ms) and an ``exec`` per
generated method (~1 ms per class in Python 3.11); a cold plugin call
defines two dozen of them, a third of its budget. Here methods are shared
functions that read the class's field list, and nothing is compiled.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    from typing_extensions import dataclass_transform

    _T = TypeVar("_T")
    _C = TypeVar("_C", bound=type)
else:

    def dataclass_transform(**_kwargs: object) -> object:
        return lambda decorated: decorated


__all__ = ["field", "record", "replace"]

_MISSING = object()


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], _T]) -> _T:
    """A field whose default is ``default_factory()``, called for each instance that does not pass it."""
    return _Factory(default_factory)  # type: ignore[return-value]  # what dataclasses.field does too


def replace(obj: _T, /, **changes: Any) -> _T:
    """A copy of the record ``obj`` with ``changes`` (field names) applied."""
    values = {name: getattr(obj, name) for name in type(obj).__record_fields__}  # type: ignore[attr-defined]
    values.update(changes)
    return type(obj)(**values)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: _C) -> _C:
    """Make ``cls`` a frozen value class (see the module docstring)."""
    klass: Any = cls  # gains attributes a type checker does not know
    defaults: dict[str, Any] = {}
    names: list[str] = []
    for base in reversed(klass.__mro__[1:]):
        if "__record_fields__" in base.__dict__:
            names.extend(name for name in base.__record_fields__ if name not in names)
            defaults.update(base.__record_defaults__)
    # the class's own annotations: inspect.get_annotations would import inspect, what this module avoids
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        if name not in names:
            names.append(name)
        default = cls.__dict__.get(name, _MISSING)
        if isinstance(default, _Factory):
            delattr(cls, name)
        if default is not _MISSING:
            defaults[name] = default
        else:
            defaults.pop(name, None)
    seen_default = ""
    for name in names:
        if name in defaults:
            seen_default = name
        elif seen_default:
            raise TypeError(f"non-default argument {name!r} follows default argument")
    klass.__record_fields__ = tuple(names)
    klass.__record_defaults__ = defaults
    setattr(klass, "__match_args__", tuple(names))  # noqa: B010  # mypy forbids assigning it
    for method in (_init, _repr, _eq, _hash, _setattr, _delattr):
        name = method.__name__.replace("_", "__", 1) + "__"
        if name not in cls.__dict__:
            setattr(klass, name, method)
        elif method in (_setattr, _delattr):
            raise TypeError(f"Cannot overwrite attribute {name} in class {cls.__name__}")  # as dataclasses says
        # else the class's own, as a dataclass keeps it
    klass.__dataclass_fields__ = _DataclassFields()
    return cls


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    names = cls.__record_fields__
    if len(args) > len(names):
        given, takes = len(args) + 1, len(names) + 1
        raise TypeError(f"{cls.__qualname__}.__init__() takes {takes} positional arguments but {given} were given")
    values = dict(zip(names, args, strict=False))
    for name, value in kwargs.items():
        if name in values:
            raise TypeError(f"{cls.__qualname__}.__init__() got multiple values for argument '{name}'")
        if name not in names:
            raise TypeError(f"{cls.__qualname__}.__init__() got an unexpected keyword argument '{name}'")
        values[name] = value
    defaults = cls.__record_defaults__
    for name in names:
        if name in values:
            value = values[name]
        else:
            value = defaults.get(name, _MISSING)
            if value is _MISSING:
                raise TypeError(f"{cls.__qualname__}.__init__() missing 1 required positional argument: '{name}'")
            if isinstance(value, _Factory):
                value = value.make()
        object.__setattr__(self, name, value)
    post_init = getattr(self, "__post_init__", None)
    if post_init is not None:
        post_init()


def _values(obj: Any) -> tuple[Any, ...]:
    return tuple(getattr(obj, name) for name in type(obj).__record_fields__)


def _repr(self: Any) -> str:
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).__record_fields__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> Any:  # bool, or NotImplemented
    if other.__class__ is self.__class__:
        return bool(_values(self) == _values(other))
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(_values(self))


def _setattr(self: Any, name: str, value: Any) -> None:
    if type(self).__dict__.get("__record_fields__") is not None or name in type(self).__record_fields__:
        _frozen(name)
    object.__setattr__(self, name, value)


def _delattr(self: Any, name: str) -> None:
    if type(self).__dict__.get("__record_fields__") is not None or name in type(self).__record_fields__:
        _frozen(name)
    object.__delattr__(self, name)


def _frozen(name: str) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot assign to field {name!r}")


class _DataclassFields:
    """``__dataclass_fields__`` of a record: dataclasses' Field objects, made when first asked for."""

    def __get__(self, obj: object, owner: type) -> dict[str, Any]:
        import dataclasses

        namespace: dict[str, Any] = {"__annotations__": {}}
        for name in owner.__record_fields__:  # type: ignore[attr-defined]
            namespace["__annotations__"][name] = _annotation(owner, name)
            default = owner.__record_defaults__.get(name, _MISSING)  # type: ignore[attr-defined]
            if isinstance(default, _Factory):
                namespace[name] = dataclasses.field(default_factory=default.make)
            elif default is not _MISSING:
                namespace[name] = dataclasses.field(default=default)
        shadow: Any = dataclasses.dataclass(frozen=True)(type(owner.__name__, (), namespace))
        fields: dict[str, Any] = shadow.__dataclass_fields__
        type.__setattr__(owner, "__dataclass_fields__", fields)
        return fields


def _annotation(owner: type, name: str) -> Any:
    for klass in owner.__mro__:
        annotations = klass.__dict__.get("__annotations__", {})  # noqa: RUF063  # see record()
        if name in annotations:
            return annotations[name]
    return "Any"
