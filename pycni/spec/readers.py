"""JSON readers: the one set every document pycni reads goes through.

Contract: a reader takes the object, the key and the JSON path of the
object (``base``, "" at the top), and returns the field or raises a
CniError whose message starts with the field's path
(``ipam.routes[0].mtu: expected a non-negative integer, got -1``).
Absent (and, by default, null) reads as "not set": "", [], None or the
given default, Go's zero values. Range and choice problems are worded the
same everywhere (``70000 is out of range 1-65535``, ``'x' is not one of
a, b``); a caller may reword the range message per field.

Documents differ in a few rules, so a ``Reader`` holds them:

- ``FIELDS`` (plugin and IPAM configs; the module-level ``read_*``):
  keys matched like Go's encoding/json (exact spelling first, then
  ignoring case), InvalidConfig (code 7), ``expected a string, got a
  number``;
- ``RESULTS`` (pycni.spec.result): exact keys, DecodingFailure (code 6),
  ``must be a string``;
- ``CONFLISTS`` (pycni.spec.config): exact keys, null is a value (as
  libcni's type assertions see it), and the wrong value is shown
  (``expected a boolean, got 'yes'``).

Pure, and depends on nothing in pycni but ``spec.errors``, so every other
spec module can use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from pycni.spec.errors import CniError, DecodingFailure, InvalidConfig
from pycni.spec.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "CONFLISTS",
    "FIELDS",
    "RESULTS",
    "Reader",
    "describe_json",
    "describe_value",
    "join",
    "lookup",
    "read_bool",
    "read_choice",
    "read_int",
    "read_list",
    "read_object",
    "read_optional_bool",
    "read_str",
    "read_strings",
    "read_uint",
]


def join(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def lookup(obj: Mapping[str, Any], key: str) -> Any:
    """``obj[key]``, else the first key equal to it ignoring case (Go's json), else None."""
    if key in obj:
        return obj[key]
    folded = key.casefold()
    for name, value in obj.items():
        if name.casefold() == folded:
            return value
    return None


def describe_json(value: Any) -> str:
    """What kind of JSON value ``value`` is, for error messages ("a string", "an array", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def describe_value(value: Any) -> str:
    """A value as libcni's messages show it: scalars as written, containers named."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return "an object"


_OUT_OF_RANGE = "{value} is out of range {min}-{max}"


@record
class Reader:
    """The readers for one kind of document (see the module doc for the kinds)."""

    #: The CniError raised.
    error: type[CniError] = InvalidConfig
    #: Match keys like Go's encoding/json: the exact spelling first, then ignoring case.
    fold_case: bool = True
    #: null reads as not set; otherwise it is a value of the wrong type.
    null_is_absent: bool = True
    #: How a JSON array is named in messages.
    array: str = "an array"
    #: How a wrong value is shown after "got"; None: the message says only "must be <kind>".
    describe: Callable[[Any], str] | None = describe_json

    # -- errors ----------------------------------------------------------------

    def fail(self, path: str, problem: str) -> CniError:
        return self.error(f"{path}: {problem}")

    def wrong_type(self, path: str, kind: str, value: Any, *, shown: str | None = None) -> CniError:
        """``path: expected <kind>, got <value>`` (or ``must be <kind>``)."""
        if self.describe is None:
            return self.fail(path, f"must be {kind}")
        return self.fail(path, f"expected {kind}, got {self.describe(value) if shown is None else shown}")

    # -- lookup ----------------------------------------------------------------

    def lookup(self, obj: Mapping[str, Any], key: str) -> Any:
        return lookup(obj, key) if self.fold_case else obj.get(key)

    def _has(self, obj: Mapping[str, Any], key: str) -> bool:
        """Whether the field is set: present, and not null where null means absent."""
        if self.null_is_absent:
            return self.lookup(obj, key) is not None
        return key in obj if not self.fold_case else any(k.casefold() == key.casefold() for k in obj)

    # -- readers ---------------------------------------------------------------

    def as_object(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.wrong_type(path, "an object", value)
        return value

    def read_object(self, obj: Mapping[str, Any], key: str, base: str) -> dict[str, Any] | None:
        """A JSON object; None when not set."""
        if not self._has(obj, key):
            return None
        return self.as_object(self.lookup(obj, key), join(base, key))

    def read_list(self, obj: Mapping[str, Any], key: str, base: str) -> list[Any]:
        """A JSON array; not set reads as empty, as in Go."""
        if not self._has(obj, key):
            return []
        value = self.lookup(obj, key)
        if not isinstance(value, list):
            raise self.wrong_type(join(base, key), self.array, value)
        return value

    def read_str(self, obj: Mapping[str, Any], key: str, base: str, *, required: bool = False) -> str:
        """A JSON string; not set reads as "" unless ``required`` (then ``path: missing``)."""
        if not self._has(obj, key):
            if required:
                raise self.fail(join(base, key), "missing")
            return ""
        value = self.lookup(obj, key)
        if not isinstance(value, str):
            raise self.wrong_type(join(base, key), "a string", value)
        return value

    def read_strings(self, obj: Mapping[str, Any], key: str, base: str) -> tuple[str, ...]:
        """An array of strings; not set reads as empty. A bad item is named by its index."""
        path = join(base, key)
        if not self._has(obj, key):
            return ()
        value = self.lookup(obj, key)
        if not isinstance(value, list):
            raise self.wrong_type(path, f"{self.array} of strings", value)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise self.wrong_type(f"{path}[{index}]", "a string", item)
        return tuple(value)

    def read_bool(self, obj: Mapping[str, Any], key: str, base: str, default: bool = False) -> bool:
        """A JSON boolean; not set reads as ``default`` (Go's zero value)."""
        value = self.read_optional_bool(obj, key, base)
        return default if value is None else value

    def read_optional_bool(self, obj: Mapping[str, Any], key: str, base: str) -> bool | None:
        """A JSON boolean, or None when not set (for settings where "unset" differs from false)."""
        if not self._has(obj, key):
            return None
        value = self.lookup(obj, key)
        if not isinstance(value, bool):
            raise self.wrong_type(join(base, key), "a boolean", value)
        return value

    def read_int(
        self,
        obj: Mapping[str, Any],
        key: str,
        base: str,
        *,
        min: int | None = None,
        max: int | None = None,
        out_of_range: str = _OUT_OF_RANGE,
    ) -> int | None:
        """A JSON integer (not a boolean, not 1.0, as in Go), or None when not set.

        A value outside ``min``..``max`` raises ``out_of_range`` formatted
        with ``value``, ``min`` and ``max``.
        """
        return self._int(obj, key, base, min, max, out_of_range, unsigned=False)

    def read_uint(
        self,
        obj: Mapping[str, Any],
        key: str,
        base: str,
        *,
        max: int | None = None,
        out_of_range: str = _OUT_OF_RANGE,
    ) -> int | None:
        """A non-negative integer (Go's unsigned fields: a negative one is the wrong type), or None when not set."""
        return self._int(obj, key, base, 0, max, out_of_range, unsigned=True)

    def _int(
        self,
        obj: Mapping[str, Any],
        key: str,
        base: str,
        low: int | None,
        high: int | None,
        out_of_range: str,
        *,
        unsigned: bool,
    ) -> int | None:
        if not self._has(obj, key):
            return None
        value = self.lookup(obj, key)
        path = join(base, key)
        if isinstance(value, bool) or not isinstance(value, int) or (unsigned and value < 0):
            # The number itself is what is wrong, so it is shown rather than described.
            kind = "a non-negative integer" if unsigned else "an integer"
            raise self.wrong_type(path, kind, value, shown=repr(value))
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(path, out_of_range.format(value=value, min=low, max=high))
        return value

    def read_choice(
        self,
        obj: Mapping[str, Any],
        key: str,
        base: str,
        choices: Sequence[str],
        default: str,
        *,
        ignore_case: bool = False,
    ) -> str:
        """One of ``choices`` (lower-cased first with ``ignore_case``); not set or "" reads as ``default``."""
        value = self.read_str(obj, key, base)
        if not value:
            return default
        chosen = value.lower() if ignore_case else value
        if chosen not in choices:
            raise self.fail(join(base, key), f"{value!r} is not one of {', '.join(choices)}")
        return chosen


#: Plugin and IPAM configs: Go's key matching, InvalidConfig.
FIELDS = Reader()

#: Results: exact keys (Go reads them into typed structs), DecodingFailure, "must be a string".
RESULTS = Reader(error=DecodingFailure, fold_case=False, array="a list", describe=None)

#: Network configuration lists, read as libcni does (type assertions on a map):
#: exact keys, and null is a value of the wrong type rather than an absent key.
CONFLISTS = Reader(fold_case=False, null_is_absent=False, array="a list", describe=describe_value)

read_object = FIELDS.read_object
read_list = FIELDS.read_list
read_str = FIELDS.read_str
read_strings = FIELDS.read_strings
read_bool = FIELDS.read_bool
read_optional_bool = FIELDS.read_optional_bool
read_int = FIELDS.read_int
read_uint = FIELDS.read_uint
read_choice = FIELDS.read_choice
