"""CNI_ARGS parsing, formatting and Go-compatible strict reading."""

from __future__ import annotations

import pytest

from pycni.spec.args import K8S_KEYS, CniArgs, format_cni_args, parse_cni_args
from pycni.spec.errors import InvalidEnvironment

K8S = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u-1"


def test_parse_pairs_in_order() -> None:
    assert parse_cni_args("IP=10.0.0.5;MAC=aa:bb:cc:dd:ee:ff") == (("IP", "10.0.0.5"), ("MAC", "aa:bb:cc:dd:ee:ff"))


def test_parse_empty() -> None:
    assert parse_cni_args("") == ()


def test_parse_empty_value_allowed() -> None:
    assert parse_cni_args("IP=") == (("IP", ""),)


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("IP", "IP"),
        ("IP=1=2", "IP=1=2"),
        ("A=1;", ""),  # Go rejects a trailing ';' too
        ("A=1;;B=2", ""),
        ("=1", "=1"),
        ("A=1;B", "B"),
    ],
)
def test_parse_invalid_pairs(text: str, part: str) -> None:
    with pytest.raises(InvalidEnvironment) as info:
        parse_cni_args(text)
    assert info.value.msg == f'CNI_ARGS: invalid pair "{part}"'
    assert info.value.code == 4


def test_format_round_trip() -> None:
    pairs = (("IgnoreUnknown", "1"), ("IP", "10.0.0.5/24"), ("EMPTY", ""))
    text = format_cni_args(pairs)
    assert text == "IgnoreUnknown=1;IP=10.0.0.5/24;EMPTY="
    assert parse_cni_args(text) == pairs
    assert format_cni_args([]) == ""
    assert format_cni_args({"A": "1"}.items()) == "A=1"


@pytest.mark.parametrize("pair", [("", "v"), ("A=B", "v"), ("A", "x;y"), ("A", "x=y")])
def test_format_refuses_unreadable_pairs(pair: tuple[str, str]) -> None:
    with pytest.raises(InvalidEnvironment, match="invalid pair"):
        format_cni_args([pair])


def test_get_last_value_wins() -> None:
    args = CniArgs.parse("IP=10.0.0.1;IP=10.0.0.2")
    assert args.get("IP") == "10.0.0.2"
    assert args.get("ip") is None  # keys are case-sensitive
    assert args.get("MAC", "none") == "none"
    assert str(args) == "IP=10.0.0.1;IP=10.0.0.2"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("TRUE", True), ("True", True), ("0", False), ("false", False), ("FALSE", False)],
)
def test_ignore_unknown_values(value: str, expected: bool) -> None:
    assert CniArgs.parse(f"IgnoreUnknown={value}").ignore_unknown is expected


def test_ignore_unknown_absent_is_false() -> None:
    assert CniArgs().ignore_unknown is False


@pytest.mark.parametrize("value", ["yes", "", "2"])
def test_ignore_unknown_invalid(value: str) -> None:
    with pytest.raises(InvalidEnvironment) as info:
        _ = CniArgs.parse(f"IgnoreUnknown={value}").ignore_unknown
    assert f'"{value}"' in info.value.msg


def test_k8s_properties() -> None:
    args = CniArgs.parse(K8S)
    assert args.k8s_pod_namespace == "default"
    assert args.k8s_pod_name == "web-0"
    assert args.k8s_pod_infra_container_id == "abc123"
    assert args.k8s_pod_uid == "u-1"
    assert CniArgs().k8s_pod_name is None
    assert CniArgs.K8S_KEYS == K8S_KEYS
    assert set(K8S_KEYS) == {"K8S_POD_NAMESPACE", "K8S_POD_NAME", "K8S_POD_INFRA_CONTAINER_ID", "K8S_POD_UID"}


def test_take_known_keys() -> None:
    args = CniArgs.parse("IP=10.0.0.5;MAC=aa:bb:cc:dd:ee:ff")
    assert args.take({"IP", "MAC", "GATEWAY"}) == {"IP": "10.0.0.5", "MAC": "aa:bb:cc:dd:ee:ff"}


def test_take_strict_rejects_unknown() -> None:
    args = CniArgs.parse("IP=10.0.0.5;FOO=1;BAR=2")
    with pytest.raises(InvalidEnvironment) as info:
        args.take(["IP"])
    assert info.value.msg == "ARGS: unknown args ['BAR', 'FOO']"


def test_take_strict_with_ignore_unknown() -> None:
    assert CniArgs.parse(K8S).take(["IP"]) == {}
    assert CniArgs.parse(K8S + ";IP=10.0.0.9").take(["IP", *K8S_KEYS])["IP"] == "10.0.0.9"


def test_take_strict_ignore_unknown_false_still_rejects() -> None:
    with pytest.raises(InvalidEnvironment, match="unknown args"):
        CniArgs.parse("IgnoreUnknown=false;FOO=1").take(["IP"])


def test_take_strict_checks_ignore_unknown_value() -> None:
    with pytest.raises(InvalidEnvironment, match="IgnoreUnknown"):
        CniArgs.parse("IgnoreUnknown=maybe;IP=10.0.0.5").take(["IP"])


def test_take_tolerant() -> None:
    args = CniArgs.parse("IgnoreUnknown=maybe;IP=10.0.0.5;FOO=1")
    assert args.take(["IP"], strict=False) == {"IP": "10.0.0.5"}


def test_take_ignore_unknown_itself_is_not_unknown() -> None:
    assert CniArgs.parse("IgnoreUnknown=0;IP=1.2.3.4").take(["IP"]) == {"IP": "1.2.3.4"}
    assert CniArgs.parse("IgnoreUnknown=1").take(["IgnoreUnknown"]) == {"IgnoreUnknown": "1"}
