"""The bgp fields of the cluster config: defaults, round trip, and errors that name the field."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from pycni.cluster.backends.bgp_config import BgpPeer, BgpSettings
from pycni.cluster.config import BackendConfig, ClusterConfig
from pycni.spec.errors import InvalidConfig


def test_defaults_are_calicos_a_mesh_in_as_64512() -> None:
    backend = BackendConfig.from_wire({"Type": "bgp"})
    assert backend.bgp == BgpSettings(asn=64512, mesh=True, peers=(), route_reflectors=())
    assert backend.to_wire() == {"Type": "bgp", "ASN": 64512, "Mesh": True}


def test_round_trip_through_the_cluster_config() -> None:
    wire = {"Network": "10.244.0.0/16", "SubnetLen": 24,
            "Backend": {"Type": "bgp", "ASN": 65001, "Mesh": False, "Peers": [{"IP": "10.0.0.1", "ASN": 65000}],
                        "RouteReflectors": ["n1", "n2"]}}
    config = ClusterConfig.from_wire(wire)
    assert config.backend.bgp == BgpSettings(asn=65001, mesh=False, peers=(BgpPeer(IPv4Address("10.0.0.1"), 65000),),
                                             route_reflectors=("n1", "n2"))
    assert config.to_wire() == wire
    assert ClusterConfig.from_wire(config.to_wire()) == config
    assert config.describe().endswith("bgp (AS 65001, reflectors n1,n2, peers 10.0.0.1:65000)")


def test_route_reflectors_turn_the_mesh_off_by_default() -> None:
    settings = BgpSettings.from_wire({"RouteReflectors": ["n1"]})
    assert settings.mesh is False


@pytest.mark.parametrize(("backend", "message"), [
    ({"Type": "bgp", "ASN": 0}, "Backend.ASN: 0 is not an AS number (1-4294967295)"),
    ({"Type": "bgp", "ASN": "64512"}, "Backend.ASN: '64512' is not an AS number (1-4294967295)"),
    ({"Type": "bgp", "Mesh": "yes"}, "Backend.Mesh: 'yes' is not true or false"),
    ({"Type": "bgp", "Mesh": True, "RouteReflectors": ["n1"]},
     "Backend.Mesh: a full mesh and RouteReflectors exclude each other (with reflectors, the other nodes peer "
     "only with them)"),
    ({"Type": "bgp", "RouteReflectors": "n1"}, "Backend.RouteReflectors: must be a list of node names, not 'n1'"),
    ({"Type": "bgp", "RouteReflectors": ["n1", "n1"]}, "Backend.RouteReflectors: a node is listed twice"),
    ({"Type": "bgp", "Peers": [{"IP": "10.0.0.300", "ASN": 1}]}, "Backend.Peers[0].IP: '10.0.0.300' is not an IPv4 "
     "address"),
    ({"Type": "bgp", "Peers": [{"IP": "10.0.0.1"}]}, "Backend.Peers[0]: needs IP and ASN"),
    ({"Type": "bgp", "Peers": [{"IP": "10.0.0.1", "ASN": 1, "Port": 179}]},
     "Backend.Peers[0].Port: unknown field (known: IP, ASN)"),
    ({"Type": "bgp", "Peers": [{"IP": "10.0.0.1", "ASN": 1}, {"IP": "10.0.0.1", "ASN": 2}]},
     "Backend.Peers: the same IP is listed twice"),
    ({"Type": "bgp", "VNI": 1}, "Backend.VNI: only applies to the vxlan backend"),
    ({"Type": "vxlan", "ASN": 64512}, "Backend.ASN: unknown field (known: Type, VNI, Port, MTU)"),
])
def test_errors_name_the_field(backend: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        BackendConfig.from_wire(backend)
    assert str(info.value) == message


def test_bgp_peer_flag() -> None:
    assert BgpPeer.parse("192.168.77.1:65000") == BgpPeer(IPv4Address("192.168.77.1"), 65000)
    with pytest.raises(InvalidConfig, match=r"--bgp-peer: '192.168.77.1' is not IP:ASN"):
        BgpPeer.parse("192.168.77.1")
