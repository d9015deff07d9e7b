"""Results: parsing, rendering and converting between every spec version."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import FrozenInstanceError, replace
from ipaddress import IPv4Network, ip_address, ip_interface, ip_network
from itertools import product
from typing import Any

import pytest

from pycni.spec.errors import DecodingFailure, IncompatibleVersion
from pycni.spec.result import DNS, Interface, IPConfig, Result, Route, convert_result, dumps
from pycni.spec.version import SUPPORTED_VERSIONS, parse_version, result_family

LEGACY = ("0.1.0", "0.2.0")

# A dual-stack result using every field of the 1.1.0 model.
IFACES = (
    Interface("cni0", mac="46:2f:8a:11:22:33", mtu=1500),
    Interface(
        "eth0",
        mac="9a:1b:2c:3d:4e:5f",
        mtu=9000,
        sandbox="/var/run/netns/c1",
        socket_path="/run/vhost.sock",
        pci_id="0000:00:1f.6",
    ),
)
IPS = (
    IPConfig(ip_interface("10.1.0.5/16"), ip_address("10.1.0.1"), interface=1),
    IPConfig(ip_interface("fd00::5/64"), ip_address("fd00::1"), interface=0),
)
ROUTES = (
    Route(ip_network("0.0.0.0/0"), ip_address("10.1.0.1"), mtu=1400, advmss=1360, priority=10, table=0, scope=0),
    Route(ip_network("192.168.0.0/24")),
    Route(ip_network("::/0"), ip_address("fd00::1"), table=100),
)  # v4 routes first: 0.2.0 files routes per family, so that order is what survives it
DNS_FULL = DNS(nameservers=("10.1.0.1",), domain="cluster.local", search=("svc.cluster.local",), options=("ndots:5",))
FULL = Result("1.1.0", interfaces=IFACES, ips=IPS, routes=ROUTES, dns=DNS_FULL)


def content_through(version: str) -> Result:
    """What survives FULL being rendered in ``version`` (written out by hand, not via the code under test)."""
    if version == "1.1.0":
        return FULL
    plain_routes = tuple(Route(r.dst, r.gw) for r in ROUTES)
    if result_family(version) == "0.2":
        ips = tuple(IPConfig(ip.address, ip.gateway) for ip in IPS)
        return Result(version, ips=ips, routes=plain_routes, dns=DNS_FULL)
    plain_ifaces = tuple(Interface(i.name, mac=i.mac, sandbox=i.sandbox) for i in IFACES)
    return Result(version, interfaces=plain_ifaces, ips=IPS, routes=plain_routes, dns=DNS_FULL)


def older(a: str, b: str) -> str:
    return min(a, b, key=parse_version)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_round_trip(version: str) -> None:
    wire = FULL.to_wire(version)
    assert wire["cniVersion"] == version
    assert json.loads(dumps(wire)) == wire
    parsed = Result.from_wire(wire)
    assert parsed == content_through(version).with_version(version)
    assert parsed.to_wire() == wire


@pytest.mark.parametrize(("src", "dst"), list(product(SUPPORTED_VERSIONS, SUPPORTED_VERSIONS)))
def test_convert_every_pair(src: str, dst: str) -> None:
    out = convert_result(FULL.to_wire(src), dst)
    assert out["cniVersion"] == dst
    # Each version can express a superset of what the older ones can, so
    # a conversion keeps exactly what the older of the two keeps.
    assert Result.from_wire(out) == content_through(older(src, dst)).with_version(dst)


@pytest.mark.parametrize("version", SUPPORTED_VERSIONS)
def test_key_order(version: str) -> None:
    wire = FULL.to_wire(version)
    if version in LEGACY:
        assert list(wire) == ["cniVersion", "ip4", "ip6", "dns"]
        assert list(wire["ip4"]) == ["ip", "gateway", "routes"]
    else:
        assert list(wire) == ["cniVersion", "interfaces", "ips", "routes", "dns"]


def test_with_version_keeps_content() -> None:
    moved = FULL.with_version("0.4.0")
    assert moved.cni_version == "0.4.0"
    assert replace(moved, cni_version="1.1.0") == FULL
    with pytest.raises(IncompatibleVersion):
        FULL.with_version("2.0.0")


def test_to_wire_defaults_to_own_version() -> None:
    assert FULL.with_version("0.3.1").to_wire()["cniVersion"] == "0.3.1"


# ---------------------------------------------------------------- per-version shapes


def test_render_1_1_0() -> None:
    wire = FULL.to_wire()
    assert wire["interfaces"][1] == {
        "name": "eth0",
        "mac": "9a:1b:2c:3d:4e:5f",
        "mtu": 9000,
        "sandbox": "/var/run/netns/c1",
        "socketPath": "/run/vhost.sock",
        "pciID": "0000:00:1f.6",
    }
    assert wire["ips"][0] == {"interface": 1, "address": "10.1.0.5/16", "gateway": "10.1.0.1"}
    assert wire["dns"] == {
        "nameservers": ["10.1.0.1"],
        "domain": "cluster.local",
        "search": ["svc.cluster.local"],
        "options": ["ndots:5"],
    }


def test_table_and_scope_zero_kept_in_1_1_0() -> None:
    routes = FULL.to_wire("1.1.0")["routes"]
    assert routes[0] == {
        "dst": "0.0.0.0/0",
        "gw": "10.1.0.1",
        "mtu": 1400,
        "advmss": 1360,
        "priority": 10,
        "table": 0,
        "scope": 0,
    }
    assert routes[1] == {"dst": "192.168.0.0/24"}
    assert routes[2] == {"dst": "::/0", "gw": "fd00::1", "table": 100}


def test_zero_mtu_omitted() -> None:
    result = Result("1.1.0", interfaces=(Interface("eth0", mtu=0),), routes=(Route(ip_network("::/0"), mtu=0),))
    assert result.to_wire() == {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}], "routes": [{"dst": "::/0"}]}


@pytest.mark.parametrize("version", ["1.0.0", "0.4.0", "0.3.1", "0.3.0"])
def test_1_1_0_fields_dropped(version: str) -> None:
    wire = FULL.to_wire(version)
    for iface in wire["interfaces"]:
        assert set(iface) <= {"name", "mac", "sandbox"}
    for route in wire["routes"]:
        assert set(route) <= {"dst", "gw"}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_0_4_ips_carry_version(version: str) -> None:
    ips = FULL.to_wire(version)["ips"]
    assert ips[0] == {"version": "4", "interface": 1, "address": "10.1.0.5/16", "gateway": "10.1.0.1"}
    assert ips[1]["version"] == "6"


def test_1_0_ips_have_no_version_and_ignore_it_on_parse() -> None:
    assert "version" not in FULL.to_wire("1.0.0")["ips"][0]
    parsed = Result.from_wire({"cniVersion": "1.0.0", "ips": [{"version": "6", "address": "10.0.0.2/24"}]})
    assert parsed.ips == (IPConfig(ip_interface("10.0.0.2/24")),)


def test_interface_index_zero_emitted_and_none_omitted() -> None:
    ips = (IPConfig(ip_interface("10.0.0.2/24"), interface=0), IPConfig(ip_interface("10.0.0.3/24")))
    wire = Result("1.0.0", interfaces=(Interface("eth0"),), ips=ips).to_wire()
    assert wire["ips"] == [{"interface": 0, "address": "10.0.0.2/24"}, {"address": "10.0.0.3/24"}]


def test_empty_result_renders_minimal() -> None:
    assert Result("1.0.0").to_wire() == {"cniVersion": "1.0.0"}
    assert Result.from_wire({"cniVersion": "1.1.0"}) == Result("1.1.0")


def test_ipv6_printed_compressed() -> None:
    parsed = Result.from_wire({"cniVersion": "1.0.0", "ips": [{"address": "FD00:0:0:0::0002/64"}]})
    assert parsed.to_wire()["ips"] == [{"address": "fd00::2/64"}]


def test_route_dst_host_bits_masked() -> None:
    parsed = Result.from_wire({"cniVersion": "1.0.0", "routes": [{"dst": "10.0.0.5/24"}]})
    assert parsed.routes[0].dst == IPv4Network("10.0.0.0/24")


def test_iface_1_1_fields_ignored_below_1_0() -> None:
    data = {"cniVersion": "0.4.0", "interfaces": [{"name": "eth0", "mtu": 1500, "pciID": "x"}]}
    assert Result.from_wire(data).interfaces == (Interface("eth0"),)


def test_unknown_keys_and_nulls_ignored() -> None:
    data = {
        "cniVersion": "1.1.0",
        "future": {"x": 1},
        "interfaces": None,
        "ips": [{"address": "10.0.0.2/24", "gateway": "", "extra": True}],
        "routes": [{"dst": "0.0.0.0/0", "gw": None}],
        "dns": None,
    }
    result = Result.from_wire(data)
    assert result == Result(
        "1.1.0", ips=(IPConfig(ip_interface("10.0.0.2/24")),), routes=(Route(ip_network("0.0.0.0/0")),)
    )


def test_ipam_abbreviated_result() -> None:
    data = {
        "cniVersion": "0.4.0",
        "ips": [{"version": "4", "address": "10.98.0.2/30", "gateway": "10.98.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    }
    result = Result.from_wire(data)
    assert result.interfaces == ()
    assert result.ips[0].interface is None
    assert result.ips[0].family == 4
    assert result.to_wire() == {k: v for k, v in data.items() if k != "dns"}


def test_lists_become_tuples() -> None:
    result = Result("1.0.0", ips=list(IPS), dns=DNS(nameservers=["1.1.1.1"]))  # type: ignore[arg-type]
    assert result.ips == IPS
    assert result.dns.nameservers == ("1.1.1.1",)
    hash(result)
    with pytest.raises(FrozenInstanceError):
        result.cni_version = "0.4.0"  # type: ignore[misc]


def test_dumps_is_go_marshal_indent() -> None:
    assert dumps({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}) == (
        b'{\n    "cniVersion": "1.0.0",\n    "ips": [\n        {\n            "address": "10.0.0.2/24"\n'
        b"        }\n    ]\n}"
    )


# ---------------------------------------------------------------- 0.1.0 / 0.2.0


def test_two_v4_addresses_to_0_2_keep_the_first() -> None:
    result = Result(
        "1.0.0",
        ips=(IPConfig(ip_interface("10.0.0.2/24")), IPConfig(ip_interface("10.0.1.2/24"))),
        routes=(Route(ip_network("0.0.0.0/0")), Route(ip_network("::/0"))),
    )
    # The v6 route has no v6 address to live under, so it goes too.
    assert result.to_wire("0.2.0") == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.0.0.2/24", "routes": [{"dst": "0.0.0.0/0"}]},
    }


def test_v6_only_to_0_2() -> None:
    result = Result("1.0.0", ips=(IPConfig(ip_interface("fd00::2/64"), ip_address("fd00::1")),))
    assert result.to_wire("0.1.0") == {"cniVersion": "0.1.0", "ip6": {"ip": "fd00::2/64", "gateway": "fd00::1"}}


@pytest.mark.parametrize("target", LEGACY)
def test_no_ips_cannot_become_0_2(target: str) -> None:
    result = Result("1.0.0", interfaces=(Interface("eth0"),), routes=(Route(ip_network("0.0.0.0/0")),))
    with pytest.raises(IncompatibleVersion) as info:
        result.to_wire(target)
    assert info.value.msg == "cannot convert: no valid IP addresses"
    assert info.value.code == 1
    with pytest.raises(IncompatibleVersion):
        convert_result(result.to_wire(), target)


def test_legacy_routes_concatenated_v4_first() -> None:
    data = {
        "cniVersion": "0.2.0",
        "ip6": {"ip": "fd00::2/64", "routes": [{"dst": "::/0", "gw": "fd00::1"}]},
        "ip4": {"ip": "10.0.0.2/24", "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.9.0.0/16", "gw": "10.0.0.1"}]},
    }
    result = Result.from_wire(data)
    assert [str(r.dst) for r in result.routes] == ["0.0.0.0/0", "10.9.0.0/16", "::/0"]
    assert [ip.family for ip in result.ips] == [4, 6]
    assert all(ip.interface is None for ip in result.ips)


# ---------------------------------------------------------------- golden (Go output, cni-spec.md 3.8)

BRIDGE_1_0_0 = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "cnitestbr0", "mac": "46:8e:3b:1f:4a:90"},
        {"name": "vethf64f756e", "mac": "5a:0c:71:d2:aa:13"},
        {"name": "eth0", "mac": "9a:4d:e1:20:b7:5c", "sandbox": "/var/run/netns/cnitest1"},
    ],
    "ips": [{"interface": 2, "address": "10.99.0.2/24", "gateway": "10.99.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {},
}
HOST_LOCAL_0_2_0 = {
    "cniVersion": "0.2.0",
    "ip4": {"ip": "10.98.0.2/30", "gateway": "10.98.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
    "ip6": {"ip": "fd00::2/126", "gateway": "fd00::1", "routes": [{"dst": "::/0"}]},
    "dns": {},
}


def without_empty_dns(wire: dict[str, Any]) -> dict[str, Any]:
    """Go plugins up to v1.1.x print ``"dns": {}``; HEAD and we omit it."""
    return {k: v for k, v in wire.items() if not (k == "dns" and v == {})}


@pytest.mark.parametrize("golden", [BRIDGE_1_0_0, HOST_LOCAL_0_2_0], ids=["bridge-1.0.0", "host-local-0.2.0"])
def test_golden_round_trip(golden: dict[str, Any]) -> None:
    rendered = json.loads(dumps(Result.from_wire(golden).to_wire()))
    assert rendered == without_empty_dns(golden)


def test_golden_bridge_down_converted() -> None:
    assert convert_result(BRIDGE_1_0_0, "0.4.0")["ips"] == [
        {"version": "4", "interface": 2, "address": "10.99.0.2/24", "gateway": "10.99.0.1"}
    ]
    assert convert_result(BRIDGE_1_0_0, "0.2.0") == {
        "cniVersion": "0.2.0",
        "ip4": {"ip": "10.99.0.2/24", "gateway": "10.99.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
    }


def test_golden_host_local_up_converted() -> None:
    assert convert_result(HOST_LOCAL_0_2_0, "1.1.0") == {
        "cniVersion": "1.1.0",
        "ips": [
            {"address": "10.98.0.2/30", "gateway": "10.98.0.1"},
            {"address": "fd00::2/126", "gateway": "fd00::1"},
        ],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
    }


# ---------------------------------------------------------------- versions


def test_unsupported_version() -> None:
    with pytest.raises(IncompatibleVersion) as info:
        Result.from_wire({"cniVersion": "9.9.9"})
    assert info.value.msg == "unsupported CNI result version"
    assert "9.9.9" in info.value.details
    with pytest.raises(IncompatibleVersion, match=r"0\.5\.0"):
        FULL.to_wire("0.5.0")
    with pytest.raises(IncompatibleVersion, match=r"2\.0"):
        convert_result(BRIDGE_1_0_0, "2.0")


@pytest.mark.parametrize("missing", [{}, {"cniVersion": ""}, {"cniVersion": None}])
def test_missing_version_uses_default(missing: dict[str, Any]) -> None:
    data = {**missing, "ips": [{"address": "10.0.0.2/24"}]}
    assert Result.from_wire(data, default_version="1.0.0").cni_version == "1.0.0"
    # 0.4.0 needs ips[].version, so the same data is invalid there.
    with pytest.raises(DecodingFailure, match=r"ips\[0\]\.version: missing"):
        Result.from_wire(data, default_version="0.4.0")


def test_missing_version_without_default_is_0_1_0() -> None:
    result = Result.from_wire({"ip4": {"ip": "10.0.0.2/24"}})
    assert result.cni_version == "0.1.0"
    assert result.ips == (IPConfig(ip_interface("10.0.0.2/24")),)
    assert convert_result({"ip4": {"ip": "10.0.0.2/24"}}, "1.0.0") == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.0.0.2/24"}],
    }


def test_unsupported_default_version() -> None:
    with pytest.raises(IncompatibleVersion):
        Result.from_wire({}, default_version="0.9.0")


# ---------------------------------------------------------------- errors name the field

Mutation = Callable[[dict[str, Any]], None]


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Mutation:
    def mutate(data: dict[str, Any]) -> None:
        target: Any = data
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


BAD_CURRENT: list[tuple[str, Mutation, str]] = [
    (
        "1.1.0",
        _set(("ips", 0, "address"), "10.0.0.300/24"),
        "ips[0].address: '10.0.0.300/24' is not an IP address with prefix",
    ),
    ("1.1.0", _set(("ips", 0, "address"), "10.0.0.3"), "ips[0].address: '10.0.0.3' is not an IP address with prefix"),
    ("1.1.0", _set(("ips", 0, "address"), "10.0.0.3/255.255.0.0"), "ips[0].address: "),
    ("1.1.0", _set(("ips", 0, "address"), "10.0.0.3/33"), "ips[0].address: "),
    ("1.1.0", _set(("ips", 1, "address"), "fe80::1%eth0/64"), "ips[1].address: "),
    ("1.1.0", _set(("ips", 0, "address"), 10), "ips[0].address: must be a string"),
    ("1.1.0", _delete(("ips", 1, "address")), "ips[1].address: missing"),
    ("1.1.0", _set(("ips", 0, "gateway"), "10.1.0"), "ips[0].gateway: '10.1.0' is not an IP address"),
    ("1.1.0", _set(("ips", 0, "gateway"), "fd00::1"), "ips[0].gateway: 'fd00::1' is IPv6 but address"),
    ("1.1.0", _set(("ips", 0, "interface"), 3), "ips[0].interface: index 3 out of range (2 interfaces)"),
    ("1.1.0", _set(("ips", 0, "interface"), -1), "ips[0].interface: must be a non-negative integer"),
    ("1.1.0", _set(("ips", 0, "interface"), "1"), "ips[0].interface: must be a non-negative integer"),
    ("1.1.0", _set(("ips", 0), "10.0.0.2/24"), "ips[0]: must be an object"),
    ("1.1.0", _set(("ips",), {"address": "10.0.0.2/24"}), "ips: must be a list"),
    ("1.1.0", _delete(("routes", 1, "dst")), "routes[1].dst: missing"),
    ("1.1.0", _set(("routes", 0, "dst"), "default"), "routes[0].dst: 'default' is not a CIDR"),
    ("1.1.0", _set(("routes", 0, "gw"), "nope"), "routes[0].gw: 'nope' is not an IP address"),
    ("1.1.0", _set(("routes", 2, "gw"), "10.0.0.1"), "routes[2].gw: '10.0.0.1' is IPv4 but dst ::/0 is IPv6"),
    ("1.1.0", _set(("routes", 0, "mtu"), "1500"), "routes[0].mtu: must be a non-negative integer"),
    ("1.1.0", _set(("routes", 0, "table"), True), "routes[0].table: must be a non-negative integer"),
    ("1.1.0", _set(("routes", 0, "scope"), 1.0), "routes[0].scope: must be a non-negative integer"),
    ("1.1.0", _set(("interfaces", 0, "name"), 5), "interfaces[0].name: must be a string"),
    ("1.1.0", _set(("interfaces", 0, "name"), ""), "interfaces[0].name: must not be empty"),
    ("1.1.0", _delete(("interfaces", 1, "name")), "interfaces[1].name: missing"),
    ("1.1.0", _set(("interfaces", 1, "mtu"), -5), "interfaces[1].mtu: must be a non-negative integer"),
    ("1.1.0", _set(("interfaces", 1, "socketPath"), 1), "interfaces[1].socketPath: must be a string"),
    ("1.1.0", _set(("interfaces", 0, "mac"), None), ""),  # null is just "absent": no error
    ("1.1.0", _set(("dns", "nameservers"), "8.8.8.8"), "dns.nameservers: must be a list"),
    ("1.1.0", _set(("dns", "search"), ["a", 1]), "dns.search[1]: must be a string"),
    ("1.1.0", _set(("dns",), []), "dns: must be an object"),
    ("1.1.0", _set(("cniVersion",), 1.0), "cniVersion: must be a string"),
    ("0.4.0", _delete(("ips", 0, "version")), "ips[0].version: missing"),
    ("0.4.0", _set(("ips", 0, "version"), "6"), 'ips[0].version: "6" does not match IPv4 address 10.1.0.5/16'),
    ("0.4.0", _set(("ips", 1, "version"), 6), "ips[1].version: must be a string"),
    ("0.3.0", _set(("ips", 1, "version"), "v6"), 'ips[1].version: \'v6\' is not "4" or "6"'),
    ("0.2.0", _set(("ip4", "ip"), "fd00::2/64"), "ip4.ip: 'fd00::2/64' is not an IPv4 address"),
    ("0.2.0", _delete(("ip6", "ip")), "ip6.ip: missing"),
    ("0.2.0", _set(("ip6", "gateway"), "10.0.0.1"), "ip6.gateway: '10.0.0.1' is IPv4"),
    ("0.1.0", _set(("ip4", "routes", 0, "dst"), "10.0.0.0"), "ip4.routes[0].dst: '10.0.0.0' is not a CIDR"),
    ("0.1.0", _set(("ip6", "routes"), {}), "ip6.routes: must be a list"),
    ("0.1.0", _set(("ip4",), "10.0.0.2/24"), "ip4: must be an object"),
]


@pytest.mark.parametrize(("version", "mutate", "expected"), BAD_CURRENT)
def test_errors_name_the_field(version: str, mutate: Mutation, expected: str) -> None:
    data = copy.deepcopy(FULL.to_wire(version))
    mutate(data)
    if not expected:
        Result.from_wire(data)
        return
    with pytest.raises(DecodingFailure) as info:
        Result.from_wire(data)
    assert expected in info.value.msg
    assert info.value.code == 6


def test_error_when_result_is_not_an_object() -> None:
    with pytest.raises(DecodingFailure, match="result: must be an object"):
        Result.from_wire([1, 2])


def test_interface_index_without_interfaces() -> None:
    data = {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "interface": 0}]}
    with pytest.raises(DecodingFailure, match=r"ips\[0\]\.interface: index 0 out of range \(0 interfaces\)"):
        Result.from_wire(data)
