"""Backends' planning (pure): which routes, FDB entries and neighbours a set of peers asks for."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from pycni.cluster.backends import make_backend
from pycni.cluster.backends.base import Desired, Peer, RouteSpec, Underlay, diff
from pycni.cluster.backends.hostgw import HostGwBackend
from pycni.cluster.backends.vxlan import VxlanBackend, vtep_mac
from pycni.spec.errors import InvalidConfig

UNDERLAY = Underlay(iface="eth0", ip=IPv4Address("192.168.77.11"), mtu=1500,
                    networks=(IPv4Network("192.168.77.0/24"),))


def peer(node: str, third: int, ip: str, backend: str = "vxlan", mac: str | None = None) -> Peer:
    data = {"vtepMAC": mac or vtep_mac(node)} if backend == "vxlan" else {}
    return Peer(node=node, subnet=IPv4Network(f"10.244.{third}.0/24"), public_ip=IPv4Address(ip),
                backend_type=backend, backend_data=data)


ME = peer("n1", 1, "192.168.77.11")


def test_vtep_mac_is_stable_unicast_and_locally_administered() -> None:
    mac = vtep_mac("node-a")
    assert mac == vtep_mac("node-a") != vtep_mac("node-b")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01
    assert mac.startswith("0a:58:") and len(mac.split(":")) == 6


def test_vxlan_plan_has_route_neighbour_and_fdb_per_peer_and_skips_itself() -> None:
    backend = VxlanBackend(UNDERLAY, "n1")
    peers = [ME, peer("n2", 2, "192.168.77.12"), peer("n3", 3, "192.168.77.13")]
    plan = backend.plan(ME, peers)
    assert plan.routes == {
        RouteSpec(IPv4Network("10.244.2.0/24"), IPv4Address("10.244.2.0"), "pycni.1", onlink=True),
        RouteSpec(IPv4Network("10.244.3.0/24"), IPv4Address("10.244.3.0"), "pycni.1", onlink=True),
    }
    assert plan.neighbours == {(IPv4Address("10.244.2.0"), vtep_mac("n2")), (IPv4Address("10.244.3.0"), vtep_mac("n3"))}
    assert plan.fdb == {(vtep_mac("n2"), IPv4Address("192.168.77.12")), (vtep_mac("n3"), IPv4Address("192.168.77.13"))}
    assert plan.refused == ()


def test_vxlan_mtu_is_underlay_minus_overhead_unless_configured() -> None:
    assert VxlanBackend(UNDERLAY, "n1").pod_mtu() == 1450
    assert VxlanBackend(UNDERLAY, "n1", mtu=1400).pod_mtu() == 1400
    assert VxlanBackend(UNDERLAY, "n1", vni=7).device == "pycni.7"
    assert VxlanBackend(UNDERLAY, "n1").backend_data()["vtepMAC"] == vtep_mac("n1")


def test_vxlan_refuses_a_peer_without_a_vtep() -> None:
    plan = VxlanBackend(UNDERLAY, "n1").plan(ME, [peer("n2", 2, "192.168.77.12", backend="host-gw")])
    assert plan.routes == frozenset() and len(plan.refused) == 1 and "n2" in plan.refused[0]


def test_a_peer_that_changed_address_moves_its_fdb_entry() -> None:
    backend = VxlanBackend(UNDERLAY, "n1")
    before = backend.plan(ME, [peer("n2", 2, "192.168.77.12")])
    after = backend.plan(ME, [peer("n2", 2, "192.168.77.22")])
    add, remove = diff(after.fdb, before.fdb)
    assert add == [(vtep_mac("n2"), IPv4Address("192.168.77.22"))]
    assert remove == [(vtep_mac("n2"), IPv4Address("192.168.77.12"))]
    assert after.routes == before.routes


def test_hostgw_routes_via_the_peers_underlay_address() -> None:
    plan = HostGwBackend(UNDERLAY).plan(ME, [ME, peer("n2", 2, "192.168.77.12", backend="host-gw")])
    assert plan.routes == {RouteSpec(IPv4Network("10.244.2.0/24"), IPv4Address("192.168.77.12"), "eth0")}
    assert plan.fdb == frozenset() and plan.neighbours == frozenset()
    assert HostGwBackend(UNDERLAY).pod_mtu() == 1500


def test_hostgw_refuses_a_peer_off_the_segment_with_a_clear_message_and_serves_the_rest() -> None:
    far = peer("far", 9, "10.9.0.5", backend="host-gw")
    near = peer("n2", 2, "192.168.77.12", backend="host-gw")
    plan = HostGwBackend(UNDERLAY).plan(ME, [far, near])
    assert [r.dst for r in plan.routes] == [IPv4Network("10.244.2.0/24")]
    (message,) = plan.refused
    assert "'far'" in message and "10.9.0.5" in message and "same layer-2 segment" in message
    assert "192.168.77.0/24" in message and "vxlan" in message


def test_diff_is_set_difference_both_ways() -> None:
    assert diff({1, 2, 3}, {2, 3, 4}) == ([1], [4])
    assert diff(Desired().routes, set()) == ([], [])


def test_make_backend_by_type_name() -> None:
    assert make_backend("vxlan", UNDERLAY, "n1").type == "vxlan"
    assert make_backend("host-gw", UNDERLAY, "n1").type == "host-gw"
    with pytest.raises(InvalidConfig, match=r"backend\.type"):
        make_backend("udp", UNDERLAY, "n1")
