"""The cluster config document: Flannel's field names, defaults, and errors that name the field."""

from __future__ import annotations

import argparse
from ipaddress import IPv4Network
from typing import Any

import pytest

from pycni.cli.cluster import add_cluster_arguments, config_from_args, host_overlaps
from pycni.cluster.config import BackendConfig, ClusterConfig, subnet_key_name
from pycni.spec.errors import InvalidConfig


def invalid(data: Any) -> str:
    with pytest.raises(InvalidConfig) as info:
        ClusterConfig.from_wire(data)
    return info.value.msg


def test_flannel_document_round_trips() -> None:
    wire = {"Network": "10.244.0.0/16", "SubnetLen": 24, "SubnetMin": "10.244.10.0", "SubnetMax": "10.244.20.0",
            "Backend": {"Type": "vxlan", "VNI": 4, "Port": 4789, "MTU": 1400}, "Quarantine": 60}
    cfg = ClusterConfig.from_wire(wire)
    assert cfg.network == IPv4Network("10.244.0.0/16")
    assert cfg.subnet_min == IPv4Network("10.244.10.0/24") and cfg.subnet_max == IPv4Network("10.244.20.0/24")
    assert cfg.backend == BackendConfig(type="vxlan", vni=4, port=4789, mtu=1400)
    assert cfg.quarantine == 60
    assert cfg.to_wire() == wire
    assert ClusterConfig.from_wire(cfg.to_wire()) == cfg


def test_defaults_are_flannels() -> None:
    cfg = ClusterConfig.from_wire({"Network": "10.244.0.0/16"})
    assert cfg.subnet_len == 24
    assert cfg.backend == BackendConfig(type="vxlan", vni=1, port=8472, mtu=None)
    assert cfg.to_wire() == {"Network": "10.244.0.0/16", "SubnetLen": 24,
                             "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}
    # the first subnet (it holds the network address) is left out, the last is in
    assert cfg.first == IPv4Network("10.244.1.0/24") and cfg.last == IPv4Network("10.244.255.0/24")
    assert cfg.subnet_count == 255
    subnets = list(cfg.subnets())
    assert len(subnets) == 255 and subnets[0] == cfg.first and subnets[-1] == cfg.last


def test_host_gw_carries_no_vxlan_fields() -> None:
    cfg = ClusterConfig.from_wire({"Network": "10.1.0.0/16", "Backend": {"Type": "host-gw"}})
    assert cfg.to_wire()["Backend"] == {"Type": "host-gw"}
    assert invalid({"Network": "10.1.0.0/16", "Backend": {"Type": "host-gw", "VNI": 2}}) == (
        "Backend.VNI: only applies to the vxlan backend")


def test_subnets_between_min_and_max() -> None:
    cfg = ClusterConfig.from_wire({"Network": "10.0.0.0/24", "SubnetLen": 28, "SubnetMin": "10.0.0.32",
                                   "SubnetMax": "10.0.0.64/28"})
    assert [str(s) for s in cfg.subnets()] == ["10.0.0.32/28", "10.0.0.48/28", "10.0.0.64/28"]
    assert cfg.contains(IPv4Network("10.0.0.48/28"))
    assert not cfg.contains(IPv4Network("10.0.0.16/28"))
    assert not cfg.contains(IPv4Network("10.0.0.32/27"))
    # a network of two subnets keeps both
    two = ClusterConfig.from_wire({"Network": "10.0.0.0/28", "SubnetLen": 29})
    assert [str(s) for s in two.subnets()] == ["10.0.0.0/29", "10.0.0.8/29"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"Network": "10.0.0.0/33"}, "Network: '10.0.0.0/33' is not a CIDR"),
        ({"Network": "10.0.0.0"}, "Network: '10.0.0.0' is not a CIDR"),
        ({"Network": 10}, "Network: int is not a CIDR"),
        ({"Network": "fd00::/64"}, "Network: 'fd00::/64' is not an IPv4 CIDR (IPv6 pod networks are not supported)"),
        ({"Network": "10.244.1.0/16"}, "Network: '10.244.1.0/16' has host bits set (did you mean 10.244.0.0/16?)"),
        ({"Network": "127.0.0.0/16"}, "Network: 127.0.0.0/16 overlaps the loopback range 127.0.0.0/8"),
        ({"Network": "169.254.0.0/16"}, "Network: 169.254.0.0/16 overlaps the link-local range 169.254.0.0/16"),
        ({"Network": "224.0.0.0/8"}, "Network: 224.0.0.0/8 overlaps the multicast range 224.0.0.0/4"),
        ({"Network": "0.0.0.0/0"}, "Network: 0.0.0.0/0 overlaps the 'this network' range 0.0.0.0/8"),
        ({"Network": "10.0.0.0/29", "SubnetLen": 29}, "Network: 10.0.0.0/29 is too small for two nodes; "
                                                      "use a /28 or larger"),
        ({"Network": "10.244.0.0/16", "SubnetLen": 30},
         "SubnetLen: 30 leaves fewer than 4 addresses per node for pods; use at most 29"),
        ({"Network": "10.244.0.0/16", "SubnetLen": 16},
         "SubnetLen: must be larger than the network prefix /16 (every node gets a /SubnetLen out of "
         "10.244.0.0/16), got 16"),
        ({"Network": "10.244.0.0/16", "SubnetLen": "24"}, "SubnetLen: '24' is not an integer"),
        ({"Network": "10.244.0.0/16", "SubnetLen": 40}, "SubnetLen: 40 is out of range (0-32)"),
        ({"Network": "10.244.0.0/16", "SubnetMin": "10.244.0.5"},
         "SubnetMin: '10.244.0.5' is not the start of a /24 subnet"),
        ({"Network": "10.244.0.0/16", "SubnetMax": "10.245.0.0"}, "SubnetMax: 10.245.0.0 is outside Network "
                                                                  "10.244.0.0/16"),
        ({"Network": "10.244.0.0/16", "SubnetMin": "10.244.9.0", "SubnetMax": "10.244.3.0"},
         "SubnetMin: 10.244.9.0 is after SubnetMax 10.244.3.0"),
        ({"Network": "10.244.0.0/16", "Backend": {"Type": "udp"}},
         "Backend.Type: 'udp' is not supported (use vxlan, host-gw, bgp, wireguard)"),
        ({"Network": "10.244.0.0/16", "Backend": {}}, "Backend.Type: missing (use vxlan, host-gw, bgp, wireguard)"),
        ({"Network": "10.244.0.0/16", "Backend": "vxlan"},
         "Backend: must be an object like {\"Type\": \"vxlan\"}, not 'vxlan'"),
        ({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 1 << 24}},
         "Backend.VNI: 16777216 is out of range (0-16777215)"),
        ({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "Port": 0}}, "Backend.Port: 0 is out of range "
                                                                                "(1-65535)"),
        ({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "MTU": 100}},
         "Backend.MTU: 100 is out of range (576-65535)"),
        ({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "DirectRouting": True}},
         "Backend.DirectRouting: unknown field (known: Type, VNI, Port, MTU)"),
        ({"Network": "10.244.0.0/16", "SubnetLength": 24},
         "SubnetLength: unknown field (known: Network, SubnetLen, SubnetMin, SubnetMax, Backend, Quarantine)"),
        ({"Network": "10.244.0.0/16", "Quarantine": -1}, "Quarantine: -1 is out of range (0-2592000)"),
        ({}, "Network: missing (the pod network, e.g. \"10.244.0.0/16\")"),
        ([], "cluster config must be a JSON object, not list"),
    ],
)
def test_errors_name_the_field(data: Any, message: str) -> None:
    assert invalid(data) == message


def test_subnet_key_names_are_flannels() -> None:
    assert subnet_key_name(IPv4Network("10.244.3.0/24")) == "10.244.3.0-24"


def test_describe_is_one_line() -> None:
    cfg = ClusterConfig.from_wire({"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "MTU": 1450},
                                   "Quarantine": 30})
    assert cfg.describe() == ("10.244.0.0/16, /24 per node (255 subnets), vxlan VNI 1 port 8472 MTU 1450, "
                              "quarantine 30s")


def parse_init(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_cluster_arguments(parser)
    return parser.parse_args(["init", *argv])


def test_init_flags_become_the_document() -> None:
    cfg = config_from_args(parse_init("--network", "10.50.0.0/16", "--subnet-len", "26", "--backend", "vxlan",
                                      "--vni", "7", "--port", "4789", "--mtu", "1400", "--quarantine", "90"))
    assert cfg.to_wire() == {"Network": "10.50.0.0/16", "SubnetLen": 26,
                             "Backend": {"Type": "vxlan", "VNI": 7, "Port": 4789, "MTU": 1400}, "Quarantine": 90}
    with pytest.raises(InvalidConfig, match=r"^Backend.Port: only applies to the vxlan backend$"):
        config_from_args(parse_init("--network", "10.50.0.0/16", "--backend", "host-gw", "--port", "1"))


def test_host_overlaps_lists_connected_networks_the_pod_network_would_shadow() -> None:
    routes = [(IPv4Network("0.0.0.0/0"), "eth0"), (IPv4Network("10.0.2.0/24"), "eth0"),
              (IPv4Network("10.244.3.0/24"), "cni0"), (IPv4Network("192.168.1.0/24"), "wlan0")]
    assert host_overlaps(IPv4Network("10.0.0.0/8"), routes) == ["10.0.2.0/24 on eth0", "10.244.3.0/24 on cni0"]
    # the pod subnet of an existing cluster on this node is not a conflict
    assert host_overlaps(IPv4Network("10.0.0.0/8"), routes, IPv4Network("10.244.0.0/16")) == ["10.0.2.0/24 on eth0"]
    assert host_overlaps(IPv4Network("10.244.0.0/16"), routes, IPv4Network("10.244.0.0/16")) == []
    assert host_overlaps(IPv4Network("172.16.0.0/12"), routes) == []
