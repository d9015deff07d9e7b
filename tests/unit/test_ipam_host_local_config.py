"""host-local config: defaults, range-set order, validation messages, requested IPs."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from typing import Any

import pytest

from pycni.ipam.host_local.config import DEFAULT_DATA_DIR, Range, parse_config
from pycni.spec.args import CniArgs
from pycni.spec.errors import InvalidConfig, InvalidEnvironment
from pycni.spec.fields import parse_resolv_conf
from pycni.spec.result import DNS, Route


def conf(ipam: dict[str, Any], version: str = "1.0.0", **top: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "net1", "type": "bridge", "ipam": {"type": "host-local", **ipam}, **top}


def ranges(*sets: list[dict[str, str]]) -> dict[str, Any]:
    return {"ranges": list(sets)}


def invalid(config: dict[str, Any], cni_args: str = "") -> str:
    with pytest.raises(InvalidConfig) as info:
        parse_config(config, CniArgs.parse(cni_args))
    assert info.value.code == 7
    return info.value.msg


# -- defaults and canonical form ---------------------------------------------------


def test_ipv4_defaults_follow_the_reference() -> None:
    parsed = parse_config(conf(ranges([{"subnet": "10.1.0.0/24"}])))
    (r,) = parsed.range_sets[0].ranges
    assert r == Range(
        subnet=ip_network("10.1.0.0/24"),
        start=ip_address("10.1.0.1"),  # network+1; the gateway is skipped when allocating
        end=ip_address("10.1.0.254"),  # broadcast-1
        gateway=ip_address("10.1.0.1"),
    )
    assert str(parsed.range_sets[0]) == "10.1.0.1-10.1.0.254"
    assert r.capacity() == 253
    assert parsed.network == "net1"
    assert parsed.cni_version == "1.0.0"
    assert parsed.data_dir == DEFAULT_DATA_DIR == "/var/lib/cni/networks"
    assert parsed.resolv_conf == ""
    assert parsed.routes == ()
    assert parsed.requested_ips == ()


def test_ipv6_range_ends_at_the_last_address() -> None:
    (r,) = parse_config(conf(ranges([{"subnet": "fd00::/120"}]))).range_sets[0].ranges
    assert (r.start, r.end, r.gateway) == (ip_address("fd00::1"), ip_address("fd00::ff"), ip_address("fd00::1"))
    assert r.family == 6


def test_explicit_fields() -> None:
    raw = {"subnet": "10.10.0.0/16", "rangeStart": "10.10.1.20", "rangeEnd": "10.10.3.50", "gateway": "10.10.0.254"}
    (r,) = parse_config(conf(ranges([raw]))).range_sets[0].ranges
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.10.1.20", "10.10.3.50", "10.10.0.254")
    assert r.capacity() == int(r.end) - int(r.start) + 1  # gateway outside start..end


def test_keys_match_case_insensitively_like_go() -> None:
    raw = {"Subnet": "10.1.0.0/24", "rangestart": "10.1.0.10", "RANGEEND": "10.1.0.20"}
    (r,) = parse_config(conf({"Ranges": [[raw]], "datadir": "/tmp/x"})).range_sets[0].ranges
    assert (str(r.start), str(r.end)) == ("10.1.0.10", "10.1.0.20")


def test_set_order_runtime_then_legacy_then_ranges() -> None:
    # The order numbers last_reserved_ip.N, so it must be the reference's.
    config = conf(
        {"subnet": "10.2.0.0/24", "ranges": [[{"subnet": "10.3.0.0/24"}]]},
        runtimeConfig={"ipRanges": [[{"subnet": "10.1.0.0/24"}]]},
    )
    subnets = [str(s.ranges[0].subnet) for s in parse_config(config).range_sets]
    assert subnets == ["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]


def test_legacy_single_range() -> None:
    parsed = parse_config(conf({"subnet": "fd00::/64", "rangeStart": "fd00::10", "rangeEnd": "fd00::20"}))
    assert str(parsed.range_sets[0]) == "fd00::10-fd00::20"


def test_routes_data_dir_resolv_conf() -> None:
    ipam = {
        **ranges([{"subnet": "10.1.0.0/24"}]),
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.0.254", "priority": 5}],
        "dataDir": "/run/x",
        "resolvConf": "/etc/resolv.conf",
    }
    parsed = parse_config(conf(ipam))
    assert parsed.routes == (
        Route(dst=ip_network("0.0.0.0/0")),
        Route(dst=ip_network("192.168.0.0/16"), gw=ip_address("10.1.0.254"), priority=5),
    )
    assert (parsed.data_dir, parsed.resolv_conf) == ("/run/x", "/etc/resolv.conf")


def test_several_sets_per_family_need_version_030() -> None:
    two_v4 = ranges([{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}])
    assert invalid(conf(two_v4, "0.2.0")) == "CNI version 0.2.0 does not support more than 1 address per family"
    assert len(parse_config(conf(two_v4, "0.3.0")).range_sets) == 2
    v4_v6 = ranges([{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00::/64"}])
    assert len(parse_config(conf(v4_v6, "0.2.0")).range_sets) == 2


# -- validation messages -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"subnet": "10.0.0.0/33"}, "ipam.ranges[0][0].subnet: '10.0.0.0/33' is not a CIDR"),
        ({"subnet": "10.0.0.0"}, "ipam.ranges[0][0].subnet: '10.0.0.0' is not a CIDR"),
        ({"subnet": "10.0.0.0/255.255.255.0"}, "ipam.ranges[0][0].subnet: '10.0.0.0/255.255.255.0' is not a CIDR"),
        ({"subnet": 42}, "ipam.ranges[0][0].subnet: 42 is not a CIDR"),
        ({"rangeStart": "10.0.0.2"}, "ipam.ranges[0][0].subnet: missing"),
        (
            {"subnet": "10.0.0.5/24"},
            "ipam.ranges[0][0].subnet: '10.0.0.5/24' has host bits set (the network is 10.0.0.0/24)",
        ),
        ({"subnet": "10.0.0.0/31"}, "ipam.ranges[0][0].subnet: '10.0.0.0/31' is too small to allocate from"),
        ({"subnet": "10.0.0.0/32"}, "ipam.ranges[0][0].subnet: '10.0.0.0/32' is too small to allocate from"),
        ({"subnet": "fd00::/127"}, "ipam.ranges[0][0].subnet: 'fd00::/127' is too small to allocate from"),
        (
            {"subnet": "10.0.0.0/24", "gateway": "10.1.0.1"},
            "ipam.ranges[0][0].gateway: '10.1.0.1' is not in subnet 10.0.0.0/24",
        ),
        (
            {"subnet": "10.0.0.0/24", "gateway": "fd00::1"},
            "ipam.ranges[0][0].gateway: 'fd00::1' is not in subnet 10.0.0.0/24",
        ),
        ({"subnet": "10.0.0.0/24", "gateway": "nope"}, "ipam.ranges[0][0].gateway: 'nope' is not an IP address"),
        (
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.1"},
            "ipam.ranges[0][0].rangeStart: '10.0.1.1' is not in subnet 10.0.0.0/24",
        ),
        (
            {"subnet": "10.0.0.0/24", "rangeEnd": "10.0.1.1"},
            "ipam.ranges[0][0].rangeEnd: '10.0.1.1' is not in subnet 10.0.0.0/24",
        ),
        (
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100", "rangeEnd": "10.0.0.50"},
            "ipam.ranges[0][0].rangeEnd: '10.0.0.50' is before rangeStart 10.0.0.100",
        ),
        (
            {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.0"},
            "ipam.ranges[0][0].rangeStart: '10.0.0.0' is the network address of 10.0.0.0/24",
        ),
        (
            {"subnet": "10.0.0.0/24", "rangeEnd": "10.0.0.255"},
            "ipam.ranges[0][0].rangeEnd: '10.0.0.255' is the broadcast address of 10.0.0.0/24",
        ),
        ("10.0.0.0/24", "ipam.ranges[0][0]: expected a range object"),
    ],
)
def test_range_errors_name_the_field(raw: Any, message: str) -> None:
    assert invalid(conf(ranges([raw]))) == message


def test_set_errors() -> None:
    assert invalid(conf({"ranges": [[]]})) == "ipam.ranges[0]: empty range set"
    assert invalid(conf({"ranges": [{"subnet": "10.0.0.0/24"}]})) == "ipam.ranges[0]: expected an array of ranges"
    assert invalid(conf({"ranges": "10.0.0.0/24"})) == "ipam.ranges: expected an array, got a string"
    assert invalid(conf({})) == "ipam: no IP ranges specified"
    assert invalid({"cniVersion": "1.0.0", "name": "n"}) == "IPAM config missing 'ipam' key"


def test_mixed_families_in_one_set() -> None:
    assert invalid(conf(ranges([{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]))) == (
        "ipam.ranges[0][1].subnet: 'fd00::/64' is IPv6 but ipam.ranges[0][0] is IPv4"
        " (a range set holds one address family)"
    )


def test_overlap_within_a_set() -> None:
    assert invalid(conf(ranges([{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]))) == (
        "ipam.ranges[0][1]: overlaps ipam.ranges[0][0] (10.0.0.0/24)"
    )


def test_disjoint_pools_in_one_subnet_are_fine() -> None:
    low = {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.19"}
    high = {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.20", "rangeEnd": "10.0.0.29"}
    assert len(parse_config(conf(ranges([low, high]))).range_sets[0].ranges) == 2


def test_overlap_across_sets() -> None:
    config = conf(ranges([{"subnet": "10.1.0.0/24"}], [{"subnet": "10.2.0.0/24"}, {"subnet": "10.1.0.0/16"}]))
    assert invalid(config) == "ipam.ranges[1][1]: overlaps ipam.ranges[0][0] (10.1.0.0/24)"
    config = conf(ranges([{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/24"}]))
    assert invalid(config) == "ipam.ranges[1][0]: overlaps ipam.ranges[0][0] (10.1.0.0/24)"


def test_overlap_between_runtime_and_config_ranges() -> None:
    config = conf(ranges([{"subnet": "10.1.0.0/24"}]), runtimeConfig={"ipRanges": [[{"subnet": "10.1.0.0/24"}]]})
    assert invalid(config) == "ipam.ranges[0][0]: overlaps runtimeConfig.ipRanges[0][0] (10.1.0.0/24)"
    config = conf({"subnet": "10.1.0.0/24", "ranges": [[{"subnet": "10.1.0.0/25"}]]})
    assert invalid(config) == "ipam.ranges[0][0]: overlaps ipam (10.1.0.0/24)"


def test_route_errors() -> None:
    base = ranges([{"subnet": "10.1.0.0/24"}])
    assert invalid(conf({**base, "routes": [{"gw": "10.1.0.1"}]})) == "ipam.routes[0].dst: missing"
    assert invalid(conf({**base, "routes": [{"dst": "0.0.0.0/0", "gw": "fd00::1"}]})) == (
        "ipam.routes[0].gw: 'fd00::1' is IPv6 but dst 0.0.0.0/0 is IPv4"
    )
    assert invalid(conf({**base, "routes": [{"dst": "0.0.0.0/0", "mtu": -1}]})) == (
        "ipam.routes[0].mtu: expected a non-negative integer, got -1"
    )


def test_without_ranges_when_not_required() -> None:
    parsed = parse_config(conf({"dataDir": "/tmp/d"}), None, require_ranges=False)
    assert (parsed.range_sets, parsed.data_dir) == ((), "/tmp/d")


# -- requested IPs --------------------------------------------------------------------


def test_requested_ips_union_in_reference_order() -> None:
    config = conf(
        ranges([{"subnet": "10.1.0.0/24"}], [{"subnet": "fd00::/64"}]),
        args={"cni": {"ips": ["10.1.0.7", "fd00::7/64"]}},
        runtimeConfig={"ips": ["10.1.0.8/24", "10.1.0.7"]},
    )
    parsed = parse_config(config, CniArgs.parse("IP=10.1.0.6/24"))
    assert parsed.requested_ips == tuple(ip_address(a) for a in ("10.1.0.6", "10.1.0.7", "fd00::7", "10.1.0.8"))


def test_ipv4_mapped_request_is_ipv4() -> None:
    parsed = parse_config(conf(ranges([{"subnet": "10.1.0.0/24"}])), CniArgs.parse("IP=::ffff:10.1.0.9"))
    assert parsed.requested_ips == (ip_address("10.1.0.9"),)


def test_requested_ip_errors() -> None:
    base = conf(ranges([{"subnet": "10.1.0.0/24"}]))
    assert invalid(base, "IP=10.1.0.6,10.1.0.7") == "CNI_ARGS IP: '10.1.0.6,10.1.0.7' is not an IP address"
    assert invalid({**base, "runtimeConfig": {"ips": ["x/24"]}}) == (
        "runtimeConfig.ips[0]: 'x/24' is not an IP address with a prefix (CIDR notation)"
    )
    assert invalid({**base, "args": {"cni": {"ips": "10.1.0.5"}}}) == "args.cni.ips: expected an array, got a string"


def test_cni_args_are_strict_unless_ignore_unknown() -> None:
    base = conf(ranges([{"subnet": "10.1.0.0/24"}]))
    with pytest.raises(InvalidEnvironment, match=r"ARGS: unknown args \['K8S_POD_NAME'\]"):
        parse_config(base, CniArgs.parse("K8S_POD_NAME=web"))
    parsed = parse_config(base, CniArgs.parse("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.1.0.9"))
    assert parsed.requested_ips == (ip_address("10.1.0.9"),)


# -- resolv.conf --------------------------------------------------------------------------


def test_parse_resolv_conf_like_the_reference() -> None:
    text = (
        "# generated\n"
        "; also a comment\n"
        "nameserver 10.0.0.53\n"
        "nameserver   fd00::53  # trailing words ignored\n"
        "domain example.com\n"
        "domain example.org\n"
        "search a.example b.example\n"
        "search c.example\n"
        "options ndots:5 timeout:1\n"
        "sortlist 10.0.0.0\n"
        "nameserver\n"
    )
    assert parse_resolv_conf(text) == DNS(
        nameservers=("10.0.0.53", "fd00::53"),
        domain="example.org",
        search=("a.example", "b.example", "c.example"),
        options=("ndots:5", "timeout:1"),
    )
