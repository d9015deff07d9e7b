"""The static IPAM plugin: address sources and their precedence, validation, ADD/DEL/CHECK via skel."""

from __future__ import annotations

import json
from ipaddress import ip_address, ip_interface, ip_network
from typing import Any

import pytest

from pycni import skel
from pycni.ipam.static import StaticAddress, parse_config
from pycni.registry import load_plugin
from pycni.spec.args import CniArgs
from pycni.spec.errors import InvalidConfig, InvalidEnvironment
from pycni.spec.result import DNS, Route

PLUGIN = load_plugin("static")

ENV = {"CNI_CONTAINERID": "ctr1", "CNI_NETNS": "/var/run/netns/test", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}


def conf(ipam: dict[str, Any] | None = None, version: str = "1.0.0", **top: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "net1", "type": "macvlan", "ipam": {"type": "static", **(ipam or {})}, **top}


def addresses(config: dict[str, Any], cni_args: str = "") -> list[tuple[str, str | None]]:
    parsed = parse_config(config, CniArgs.parse(cni_args))
    return [(str(a.address), str(a.gateway) if a.gateway else None) for a in parsed.addresses]


def invalid(config: dict[str, Any], cni_args: str = "") -> str:
    with pytest.raises(InvalidConfig) as info:
        parse_config(config, CniArgs.parse(cni_args))
    return info.value.msg


def run(command: str, config: dict[str, Any], **env: str) -> tuple[int, Any]:
    outcome = skel.dispatch(PLUGIN, {**ENV, "CNI_COMMAND": command, **env}, json.dumps(config).encode())
    return outcome.exit_code, json.loads(outcome.stdout) if outcome.stdout else None


EXAMPLE = {
    "addresses": [
        {"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
        {"address": "3ffe:ffff:0:01ff::1/64", "gateway": "3ffe:ffff:0::1"},
    ],
    "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"}, {"dst": "3ffe:ffff:0:01ff::1/64"}],
    "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["example.com"]},
}


# -- config ----------------------------------------------------------------------------


def test_the_readme_example() -> None:
    parsed = parse_config(conf(EXAMPLE))
    assert parsed.addresses == (
        StaticAddress(ip_interface("10.10.0.1/24"), ip_address("10.10.0.254")),
        StaticAddress(ip_interface("3ffe:ffff:0:1ff::1/64"), ip_address("3ffe:ffff::1")),
    )
    assert parsed.routes == (
        Route(ip_network("0.0.0.0/0")),
        Route(ip_network("192.168.0.0/16"), ip_address("10.10.5.1")),
        Route(ip_network("3ffe:ffff:0:1ff::/64")),
    )
    assert parsed.dns == DNS(nameservers=("8.8.8.8",), domain="example.com", search=("example.com",))


def test_cni_args_ip_list_is_appended_and_gateway_matched_by_subnet() -> None:
    config = conf({"addresses": [{"address": "10.10.0.1/24"}]})
    assert addresses(config, "IP=10.20.0.5/16, fd00::5/64;GATEWAY=10.20.0.1,fd00::1") == [
        ("10.10.0.1/24", None),
        ("10.20.0.5/16", "10.20.0.1"),
        ("fd00::5/64", "fd00::1"),
    ]
    assert addresses(config, "GATEWAY=10.10.0.254") == [("10.10.0.1/24", "10.10.0.254")]


def test_args_replace_cni_args_and_runtime_config_replaces_args() -> None:
    with_args = conf({"addresses": [{"address": "10.10.0.1/24"}]}, args={"cni": {"ips": ["10.30.0.5/24"]}})
    assert addresses(with_args, "IP=10.20.0.5/16") == [("10.30.0.5/24", None)]
    both = {**with_args, "runtimeConfig": {"ips": ["10.40.0.5/24", "fd00::40/64"]}}
    assert addresses(both, "IP=10.20.0.5/16") == [("10.40.0.5/24", None), ("fd00::40/64", None)]
    assert addresses({**with_args, "runtimeConfig": {"ips": []}}) == [("10.30.0.5/24", None)]  # empty: no opinion


def test_addresses_need_a_prefix() -> None:
    assert invalid(conf({"addresses": [{"address": "10.0.0.1"}]})) == (
        "ipam.addresses[0].address: '10.0.0.1' is not an IP address with a prefix (CIDR notation)"
    )
    assert (
        invalid(conf(), "IP=10.0.0.1") == "CNI_ARGS IP: '10.0.0.1' is not an IP address with a prefix (CIDR notation)"
    )
    assert invalid(conf(runtimeConfig={"ips": ["10.0.0.1"]})) == (
        "runtimeConfig.ips[0]: '10.0.0.1' is not an IP address with a prefix (CIDR notation)"
    )
    assert invalid(conf(args={"cni": {"ips": ["x/24"]}})) == (
        "args.cni.ips[0]: 'x/24' is not an IP address with a prefix (CIDR notation)"
    )


def test_other_errors() -> None:
    assert invalid(conf({"addresses": [{"gateway": "10.0.0.1"}]})) == "ipam.addresses[0].address: missing"
    assert invalid(conf({"addresses": [{"address": "10.0.0.2/24", "gateway": "fd00::1"}]})) == (
        "ipam.addresses[0].gateway: 'fd00::1' is IPv6 but address 10.0.0.2/24 is not"
    )
    assert invalid(conf(), "IP=10.0.0.2/24;GATEWAY=nope") == "CNI_ARGS GATEWAY: 'nope' is not an IP address"
    assert invalid({"cniVersion": "1.0.0", "name": "n"}) == "IPAM config missing 'ipam' key"
    with pytest.raises(InvalidEnvironment, match="unknown args"):
        parse_config(conf(), CniArgs.parse("MAC=aa:bb:cc:dd:ee:ff"))
    assert addresses(conf(), "IgnoreUnknown=true;MAC=aa:bb:cc:dd:ee:ff") == []


def test_one_address_per_family_before_030() -> None:
    two = {"addresses": [{"address": "10.0.0.2/24"}, {"address": "10.0.1.2/24"}]}
    assert invalid(conf(two, "0.2.0")) == "CNI version 0.2.0 does not support more than 1 address per family"
    assert len(parse_config(conf(two, "0.3.0")).addresses) == 2


# -- the plugin ------------------------------------------------------------------------------


def test_add() -> None:
    code, out = run("ADD", conf(EXAMPLE))
    assert (code, out) == (
        0,
        {
            "cniVersion": "1.0.0",
            "ips": [
                {"address": "10.10.0.1/24", "gateway": "10.10.0.254"},
                {"address": "3ffe:ffff:0:1ff::1/64", "gateway": "3ffe:ffff::1"},
            ],
            "routes": [
                {"dst": "0.0.0.0/0"},
                {"dst": "192.168.0.0/16", "gw": "10.10.5.1"},
                {"dst": "3ffe:ffff:0:1ff::/64"},
            ],
            "dns": {"nameservers": ["8.8.8.8"], "domain": "example.com", "search": ["example.com"]},
        },
    )


def test_add_020_shape() -> None:
    _, out = run("ADD", conf(EXAMPLE, "0.2.0"))
    assert out["ip4"] == {
        "ip": "10.10.0.1/24",
        "gateway": "10.10.0.254",
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.5.1"}],
    }
    assert out["ip6"]["ip"] == "3ffe:ffff:0:1ff::1/64"


def test_del_is_a_no_op_even_with_a_bad_config() -> None:
    assert run("DEL", conf({"addresses": [{"address": "bogus"}]})) == (0, None)


def test_check_against_prev_result() -> None:
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/test"}],
        "ips": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254", "interface": 0}],
    }
    ipam = {"addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.254"}]}
    assert run("CHECK", conf(ipam, prevResult=prev)) == (0, None)
    assert run("CHECK", conf({"addresses": [{"address": "10.10.0.1/24"}]}, prevResult=prev)) == (0, None)

    code, out = run(
        "CHECK", conf({"addresses": [{"address": "10.10.0.1/24", "gateway": "10.10.0.1"}]}, prevResult=prev)
    )
    assert (code, out["msg"]) == (1, "static: Failed to match addr 10.10.0.1 on interface eth0")
    code, out = run("CHECK", conf({"addresses": [{"address": "10.10.0.2/24"}]}, prevResult=prev))
    assert (code, out["msg"]) == (1, "static: failed to find address 10.10.0.2 in prevResult")
    code, out = run("CHECK", conf(ipam))
    assert (code, out["code"], out["msg"]) == (1, 7, "static: Required prevResult missing")


def test_status_and_gc_succeed() -> None:
    assert run("STATUS", conf(EXAMPLE, "1.1.0")) == (0, None)
    assert run("GC", conf(EXAMPLE, "1.1.0")) == (0, None)
