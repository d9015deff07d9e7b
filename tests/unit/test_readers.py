"""pycni.spec.readers: the one set of JSON readers, in each document's dialect."""

from __future__ import annotations

from typing import Any

import pytest

from pycni.spec.config import ipam_type_of
from pycni.spec.errors import CniError, DecodingFailure, InvalidConfig
from pycni.spec.readers import (
    CONFLISTS,
    FIELDS,
    RESULTS,
    describe_json,
    describe_value,
    read_bool,
    read_choice,
    read_int,
    read_list,
    read_object,
    read_optional_bool,
    read_str,
    read_strings,
    read_uint,
)

WIRE, LIBCNI = RESULTS, CONFLISTS


def message(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(CniError) as err:
        call(*args, **kwargs)
    return err.value.msg


def test_absent_and_null_read_as_go_zero_values() -> None:
    obj: dict[str, Any] = {"n": None}
    assert read_str(obj, "n", "") == "" and read_str({}, "x", "") == ""
    assert read_list(obj, "n", "") == [] and read_strings(obj, "n", "") == ()
    assert read_object(obj, "n", "") is None
    assert read_bool(obj, "n", "") is False and read_bool({}, "x", "", default=True) is True
    assert read_optional_bool(obj, "n", "") is None
    assert read_int(obj, "n", "") is None and read_uint({}, "x", "") is None


def test_keys_match_like_go_json_exact_spelling_first() -> None:
    assert read_str({"Mode": "a"}, "mode", "") == "a"
    assert read_str({"MODE": "b", "mode": "c"}, "mode", "") == "c"
    assert WIRE.read_str({"Mode": "a"}, "mode", "") == ""  # results: exact keys


def test_config_dialect_messages_name_the_path() -> None:
    assert message(read_str, {"k": 5}, "k", "a.b") == "a.b.k: expected a string, got a number"
    assert message(read_list, {"k": "x"}, "k", "") == "k: expected an array, got a string"
    assert message(read_object, {"k": []}, "k", "ipam") == "ipam.k: expected an object, got an array"
    assert message(read_bool, {"k": "true"}, "k", "") == "k: expected a boolean, got a string"
    assert message(read_strings, {"k": "x"}, "k", "") == "k: expected an array of strings, got a string"
    assert message(read_strings, {"k": ["x", 1]}, "k", "dns") == "dns.k[1]: expected a string, got a number"
    assert message(read_str, {}, "k", "", required=True) == "k: missing"


def test_integers_show_the_wrong_value() -> None:
    assert message(read_uint, {"k": -1}, "k", "") == "k: expected a non-negative integer, got -1"
    assert message(read_uint, {"k": True}, "k", "") == "k: expected a non-negative integer, got True"
    assert message(read_uint, {"k": 1.0}, "k", "") == "k: expected a non-negative integer, got 1.0"
    assert message(read_int, {"k": "80"}, "k", "p") == "p.k: expected an integer, got '80'"
    assert read_int({"k": -3}, "k", "") == -3


def test_integer_ranges_and_their_wording() -> None:
    assert read_int({"k": 31}, "k", "", min=0, max=31) == 31
    assert message(read_int, {"k": 32}, "k", "", min=0, max=31) == "k: 32 is out of range 0-31"
    assert message(read_int, {"k": -1}, "k", "", min=0, max=31) == "k: -1 is out of range 0-31"
    worded = message(read_uint, {"mtu": 70000}, "mtu", "", max=65535, out_of_range="{value} is out of range (0-{max})")
    assert worded == "mtu: 70000 is out of range (0-65535)"


def test_choice() -> None:
    assert read_choice({}, "mode", "", ("a", "b"), "a") == "a"
    assert read_choice({"mode": ""}, "mode", "", ("a", "b"), "") == ""
    assert read_choice({"p": "UDP"}, "p", "", ("tcp", "udp"), "tcp", ignore_case=True) == "udp"
    assert message(read_choice, {"p": "ICMP"}, "p", "m[0]", ("tcp", "udp"), "tcp", ignore_case=True) == (
        "m[0].p: 'ICMP' is not one of tcp, udp"
    )


def test_result_dialect() -> None:
    with pytest.raises(DecodingFailure, match=r"^ips: must be a list$"):
        WIRE.read_list({"ips": {}}, "ips", "")
    assert message(WIRE.read_uint, {"mtu": -1}, "mtu", "routes[0]") == "routes[0].mtu: must be a non-negative integer"
    assert message(WIRE.as_object, [], "result") == "result: must be an object"


def test_libcni_dialect_treats_null_as_a_value() -> None:
    assert message(LIBCNI.read_str, {"name": None}, "name", "") == "name: expected a string, got null"
    assert message(LIBCNI.read_list, {"v": "1.0.0"}, "v", "") == "v: expected a list, got '1.0.0'"
    assert LIBCNI.read_str({"Name": "x"}, "name", "") == ""
    assert message(LIBCNI.read_str, {}, "name", "", required=True) == "name: missing"


def test_error_classes() -> None:
    with pytest.raises(InvalidConfig):
        FIELDS.read_str({"k": 1}, "k", "")
    with pytest.raises(DecodingFailure):
        WIRE.read_str({"k": 1}, "k", "")


def test_describers() -> None:
    values: list[Any] = [None, True, 1, 1.5, "", [], {}]
    assert [describe_json(v) for v in values] == [
        "null",
        "a boolean",
        "a number",
        "a number",
        "a string",
        "an array",
        "an object",
    ]
    values = [None, False, 3, "x", [], [1], {}]
    assert [describe_value(v) for v in values] == [
        "null",
        "false",
        "3",
        "'x'",
        "an empty list",
        "a list",
        "an object",
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, ""),
        ({"ipam": {}}, ""),
        ({"ipam": None}, ""),
        ({"ipam": {"type": "host-local"}}, "host-local"),
        ({"IPAM": {"Type": "static"}}, "static"),  # as every Go plugin reads it
    ],
)
def test_ipam_type_is_read_one_way(config: dict[str, Any], expected: str) -> None:
    assert ipam_type_of(config) == expected


def test_ipam_type_errors() -> None:
    assert message(ipam_type_of, {"ipam": "host-local"}) == "ipam: expected an object, got a string"
    assert message(ipam_type_of, {"ipam": {"type": 5}}) == "ipam.type: expected a string, got a number"
