"""pycni.spec.wirejson: the same values, text and errors as the json module, without importing it on success."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pycni.spec.wirejson import dumps_compact, dumps_indented, loads

DOCUMENTS = [
    '{"a":1}',
    ' [1,2,{"x":"é\\u00e9\\ud83d\\ude00"}] ',
    '{"a":1.5e3,"b":-0,"c":null,"d":true}',
    "{}",
    "[]",
    '"x"',
    "12",
    '{"n":123456789012345678901234567890}',
    '{"a":1,"a":2}',
    "1e400",
    '{"a":1} x',
    "",
    " ",
    '{"a":NaN}',
    '{"a":',
    "\ufeff{}",
    '{"a":"\\x"}',
    "[1,]",
]
OBJECTS: list[Any] = [
    {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "aa"}], "ips": [{"address": "10.0.0.2/24"}]},
    [],
    {},
    {"a": [[], {}]},
    {"é": "ünï\u2028😀"},
    {"a": 1.5},
    {1: 2},
    {"a": True, "b": None, "c": False, "d": -3},
    ("t",),
    {"x": object()},
    {"n": float("nan")},
]


def _reject(name: str) -> Any:
    raise ValueError(f"invalid JSON value {name}")


def _outcome(call: Any, *args: Any, **kwargs: Any) -> tuple[str, ...]:
    try:
        return ("ok", repr(call(*args, **kwargs)))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


@pytest.mark.parametrize("text", DOCUMENTS)
def test_loads_as_json_does(text: str) -> None:
    for data in (text, text.encode(), text.encode("utf-16"), text.encode("utf-8-sig")):
        for constant in (None, _reject):
            assert _outcome(loads, data, parse_constant=constant) == _outcome(json.loads, data, parse_constant=constant)


@pytest.mark.parametrize("obj", OBJECTS, ids=range(len(OBJECTS)))
def test_dumps_as_json_does(obj: Any) -> None:
    assert _outcome(dumps_indented, obj) == _outcome(json.dumps, obj, indent=4)
    assert _outcome(dumps_compact, obj) == _outcome(json.dumps, obj, separators=(",", ":"), ensure_ascii=False)


def test_a_circular_structure_fails_as_in_json() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps_indented(loop)


def test_success_imports_neither_json_nor_re() -> None:
    root = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {root!r})\n"
        "from pycni.spec.wirejson import loads, dumps_indented, dumps_compact\n"
        "doc = loads(b'{\"a\": [1, \"x\", null, true, {}]}')\n"
        "assert dumps_indented(doc) and dumps_compact(doc)\n"
        "assert 'json' not in sys.modules and 're' not in sys.modules, sorted(sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_an_error_in_a_fresh_process_is_jsons() -> None:
    root = str(Path(__file__).resolve().parents[2])
    code = (
        f"import sys; sys.path.insert(0, {root!r})\n"
        "from pycni.spec.wirejson import loads\n"
        "for text in (b'{not json', b'[1,', b'{\"a\":1} x', b''):\n"
        "    try:\n"
        "        loads(text)\n"
        "    except ValueError as exc:\n"
        "        assert type(exc).__name__ == 'JSONDecodeError', repr(exc)\n"
        "    else:\n"
        "        raise AssertionError(text)\n"
    )
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
