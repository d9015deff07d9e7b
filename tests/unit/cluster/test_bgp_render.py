"""A node's bird.conf and sessions, planned from leases without root: golden files under tests/data/bgp/.

``PYCNI_UPDATE_GOLDEN=1`` rewrites the golden files (review the diff). When
bird is installed, every golden file must also pass ``bird -p`` (its parser).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from pycni.cluster.backends.base import Peer, Underlay
from pycni.cluster.backends.bgp import BgpBackend, BgpDesired
from pycni.cluster.backends.bgp_config import BgpPeer, BgpSettings
from pycni.cluster.backends.bgp_render import BirdSpec, Session, render_bird_config
from pycni.cluster.backends.bgp_sessions import plan_sessions

DATA = Path(__file__).resolve().parents[2] / "data" / "bgp"
NETWORK = IPv4Network("10.244.0.0/16")
UNDERLAY = Underlay(iface="eth0", ip=IPv4Address("192.168.77.12"), mtu=1500,
                    networks=(IPv4Network("192.168.77.0/24"),))
TOR = BgpPeer(IPv4Address("192.168.77.1"), 65000)


def node(name: str, index: int, backend: str = "bgp", ip: str | None = None) -> Peer:
    return Peer(node=name, subnet=IPv4Network(f"10.244.{index}.0/24"),
                public_ip=IPv4Address(ip or f"192.168.77.{10 + index}"), backend_type=backend)


N1, N2, N3, N4 = node("n1", 1), node("n2", 2), node("n3", 3), node("n4", 4)


def golden(name: str, text: str) -> None:
    path = DATA / name
    if os.environ.get("PYCNI_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text()


def plan(own: Peer, settings: BgpSettings, peers: list[Peer]) -> BgpDesired:
    backend = BgpBackend(UNDERLAY, own.node, settings=settings, network=NETWORK, run_dir="/run/pycni")
    return backend.plan(own, peers)


def test_mesh_node_with_a_top_of_rack_peer() -> None:
    desired = plan(N2, BgpSettings(peers=(TOR,)), [N1, N2, N3])
    assert desired.routes == frozenset() and desired.refused == ()
    golden("mesh_n2.conf", desired.bird_config)


def test_route_reflector_reflects_for_the_other_nodes() -> None:
    golden("rr_reflector_n2.conf", plan(N2, BgpSettings(mesh=False, route_reflectors=("n2", "n4")),
                                        [N1, N3, N4]).bird_config)


def test_route_reflector_client_peers_only_with_the_reflectors() -> None:
    sessions, refused = plan_sessions(N1, [N2, N3, N4], BgpSettings(mesh=False, route_reflectors=("n2", "n4")),
                                      UNDERLAY)
    assert [(s.name, s.kind, s.passive) for s in sessions] == [
        ("Reflector_192_168_77_12", "reflector", False), ("Reflector_192_168_77_14", "reflector", False)]
    assert refused == ()


def test_leaving_node_originates_nothing() -> None:
    spec = BirdSpec(node="n2", router_id=UNDERLAY.ip, iface="eth0", asn=64512, subnet=N2.subnet, network=NETWORK,
                    sessions=(Session(N1.public_ip, "mesh", 64512, "n1"),), log_file="/run/pycni/bird/bird.log",
                    announce=False)
    golden("leaving_n2.conf", render_bird_config(spec))


def test_mesh_the_lower_address_connects() -> None:
    sessions, _ = plan_sessions(N2, [N1, N3], BgpSettings(), UNDERLAY)
    assert [(s.node, s.passive) for s in sessions] == [("n1", False), ("n3", True)]


def test_mesh_off_without_reflectors_leaves_only_global_peers() -> None:
    sessions, _ = plan_sessions(N2, [N1, N3], BgpSettings(mesh=False, peers=(TOR,)), UNDERLAY)
    assert [(s.name, s.asn) for s in sessions] == [("Global_192_168_77_1", 65000)]


def test_a_peer_off_the_segment_is_refused_and_says_why() -> None:
    far = node("far", 9, ip="10.9.0.9")
    sessions, refused = plan_sessions(N2, [N1, far], BgpSettings(peers=(BgpPeer(IPv4Address("10.9.0.1"), 65000),)),
                                      UNDERLAY)
    assert [s.node for s in sessions] == ["n1"]
    assert refused == (
        "bgp cannot peer with node 'far' (10.244.9.0/24): its address 10.9.0.9 is not on the same layer-2 segment "
        "as eth0 (connected: 192.168.77.0/24); its routes' next hop would be unreachable. Peer both segments with "
        "a router that reflects pod routes (Backend.Peers), or use the vxlan backend",
        "bgp cannot peer with global peer 10.9.0.1 (AS 65000): its address 10.9.0.1 is not on the same layer-2 "
        "segment as eth0 (connected: 192.168.77.0/24); its routes' next hop would be unreachable. Peer both "
        "segments with a router that reflects pod routes (Backend.Peers), or use the vxlan backend",
    )


def test_a_peer_on_another_backend_is_refused() -> None:
    _, refused = plan_sessions(N2, [node("v", 5, backend="vxlan")], BgpSettings(), UNDERLAY)
    assert refused == ("peer 'v' uses backend 'vxlan'; this node runs bgp",)


def test_a_global_peer_that_is_a_node_gets_only_its_node_session() -> None:
    sessions, _ = plan_sessions(N2, [N1], BgpSettings(peers=(BgpPeer(N1.public_ip, 64512),)), UNDERLAY)
    assert [s.name for s in sessions] == ["Mesh_192_168_77_11"]


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 is not installed (Debian: bird2)")
@pytest.mark.parametrize("name", ["mesh_n2.conf", "rr_reflector_n2.conf", "leaving_n2.conf"])
def test_bird_parses_the_golden_files(name: str) -> None:
    check = subprocess.run(["bird", "-p", "-c", str(DATA / name)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
