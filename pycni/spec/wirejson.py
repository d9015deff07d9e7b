"""``json.loads`` and ``json.dumps`` for the plugins' wire formats, without importing ``json`` when all goes well.

Contract:

- ``loads(data, parse_constant=None)`` returns what ``json.loads(data,
  parse_constant=parse_constant)`` returns, and raises what it raises: a
  document the fast path does not take (a BOM, UTF-16/32, an error of any
  kind) goes to ``json.loads`` itself.
- ``dumps_indented(obj)`` is ``json.dumps(obj, indent=4)``; ``dumps_compact
  (obj)`` is ``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)``.
  Same text; what the fast path does not encode (a float, a non-string key,
  an object JSON has no form for) goes to ``json.dumps``, errors included.

Why: ``json`` imports ``re``, and ``re`` imports ``enum``: ~10 ms of a cold
plugin call (no executor), whose whole budget is 50 ms. Both fast paths
use the same C functions ``json`` does (``_json``): the scanner, and the
string escaping.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["dumps_compact", "dumps_indented", "loads"]

_WHITESPACE = " \t\n\r"  # json.decoder.WHITESPACE


class _ScannerContext:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``, with json.loads' defaults."""

    def __init__(self, parse_constant: Callable[[str], Any] | None) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = parse_constant if parse_constant is not None else _CONSTANTS.__getitem__
        self.memo: dict[str, str] = {}


_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


def loads(data: str | bytes, parse_constant: Callable[[str], Any] | None = None) -> Any:
    """``json.loads(data, parse_constant=parse_constant)`` (see the module docstring)."""
    text: str | None
    if isinstance(data, str):
        text = data if not data.startswith("\ufeff") else None
    elif data[:3] == b"\xef\xbb\xbf" or data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\0" in data[:4]:
        text = None  # a BOM, or UTF-16/32: json.detect_encoding's business
    else:
        text = data.decode("utf-8", "surrogatepass")  # what json.loads does with UTF-8 bytes
    if text is not None:
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            scanner = _json.make_scanner(_ScannerContext(parse_constant))  # type: ignore[arg-type]  # duck-typed
            value, end = scanner(text, start)
        except Exception:
            # json.loads raises the error (as JSONDecodeError where it would): the
            # scanner itself cannot build one unless json.decoder is imported, and
            # raises SystemError instead
            pass
        else:
            if not text[end:].strip(_WHITESPACE):
                return value
    import json

    return json.loads(data, parse_constant=parse_constant)


class _Unencodable(Exception):
    pass


def dumps_indented(obj: Any) -> str:
    """``json.dumps(obj, indent=4)`` (see the module docstring)."""
    chunks: list[str] = []
    try:
        _encode(obj, "\n", chunks, set())
    except (_Unencodable, RecursionError):
        import json

        return json.dumps(obj, indent=4)
    return "".join(chunks)


def dumps_compact(obj: Any) -> str:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=False)`` (see the module docstring)."""
    encoder = _json.make_encoder({}, _refuse, _json.encode_basestring, None, ":", ",", False, False, True)
    try:
        return "".join(encoder(obj, 0))
    except (_Unencodable, ValueError, RecursionError):
        import json

        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _refuse(obj: Any) -> Any:
    raise _Unencodable


def _encode(obj: Any, newline: str, out: list[str], active: set[int]) -> None:
    """Append ``obj``'s indented encoding; ``newline`` is "\\n" and the current indentation."""
    if isinstance(obj, str):
        out.append(_json.encode_basestring_ascii(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, dict | list | tuple):
        if not obj:
            out.append("{}" if isinstance(obj, dict) else "[]")
            return
        if id(obj) in active:
            raise _Unencodable  # json raises "Circular reference detected"
        active.add(id(obj))
        inner = newline + "    "
        if isinstance(obj, dict):
            out.append("{")
            for i, (key, value) in enumerate(obj.items()):
                if not isinstance(key, str):
                    raise _Unencodable  # json converts numbers, bools and None; not worth doing here
                out.append(("," if i else "") + inner + _json.encode_basestring_ascii(key) + ": ")
                _encode(value, inner, out, active)
            out.append(newline + "}")
        else:
            out.append("[")
            for i, value in enumerate(obj):
                out.append(("," if i else "") + inner)
                _encode(value, inner, out, active)
            out.append(newline + "]")
        active.discard(id(obj))
    else:
        raise _Unencodable  # floats, and whatever json rejects
