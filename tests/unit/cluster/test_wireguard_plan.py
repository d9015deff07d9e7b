"""The wireguard backend's pure parts: the plan, the UAPI and ``wg`` parsing, the device diff, the lease
writes (no root; the UAPI and ``wg show dump`` texts were recorded from wireguard-go 0.0.20220316 here)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from pycni.cluster.backends.base import Peer, RouteSpec
from pycni.cluster.backends.wireguard_control import parse_dump, wg_set_args
from pycni.cluster.backends.wireguard_keys import public_key, to_base64, to_hex
from pycni.cluster.backends.wireguard_lease import LeaseAccess, publish, read_own, request_rotation
from pycni.cluster.backends.wireguard_peers import device_changes
from pycni.cluster.backends.wireguard_plan import WgPeer, WireguardDesired, plan_wireguard
from pycni.net.wireguard_uapi import DeviceState, PeerState, parse_get, render_set
from pycni.testing.kv import MemoryKV

DATA = Path(__file__).parent / "data"
NET = IPv4Network("10.244.0.0/16")


def key(n: int) -> bytes:
    return public_key(bytes([n]) * 32)


def peer(node: str, third: int, k: bytes | None, *, backend: str = "wireguard", port: int | None = None) -> Peer:
    data: dict[str, object] = {} if k is None else {"PublicKey": to_base64(k)}
    if port is not None:
        data["Port"] = port
    return Peer(node=node, subnet=IPv4Network(f"10.244.{third}.0/24"),
                public_ip=IPv4Address(f"192.168.77.{10 + third}"), backend_type=backend, backend_data=data)


OWN = peer("n1", 1, key(1))


def plan(*peers: Peer, keepalive: int = 0) -> WireguardDesired:
    return plan_wireguard(OWN, [OWN, *peers], device="pycni-wg", own_key=to_hex(key(1)), network=NET,
                          default_port=51820, keepalive=keepalive)


def test_each_peer_gets_its_subnet_and_node_address_and_a_route_through_the_device() -> None:
    desired = plan(peer("n2", 2, key(2), port=51000), peer("n3", 3, key(3)), keepalive=25)
    assert desired.peers == {
        WgPeer(to_hex(key(2)), "n2", "192.168.77.12:51000", ("10.244.2.0/24", "192.168.77.12/32"), 25, None,
               "10.244.2.0"),
        WgPeer(to_hex(key(3)), "n3", "192.168.77.13:51820", ("10.244.3.0/24", "192.168.77.13/32"), 25, None,
               "10.244.3.0"),
    }
    assert desired.routes == {
        RouteSpec(IPv4Network("10.244.2.0/24"), IPv4Address("10.244.2.0"), "pycni-wg", onlink=True),
        RouteSpec(IPv4Network("10.244.3.0/24"), IPv4Address("10.244.3.0"), "pycni-wg", onlink=True),
    }
    assert desired.blackhole == NET and desired.refused == ()


def test_a_peer_without_a_key_gets_no_route_and_is_reported() -> None:
    desired = plan(peer("n2", 2, None), peer("n3", 3, key(3), backend="vxlan"), peer("n4", 4, key(4)))
    assert [p.node for p in desired.peers] == ["n4"]
    assert {r.dst for r in desired.routes} == {IPv4Network("10.244.4.0/24")}
    assert len(desired.refused) == 2
    assert "peer 'n2' (10.244.2.0/24) publishes no WireGuard key" in desired.refused[0]
    assert "traffic is dropped" in desired.refused[0]


def test_a_key_claimed_twice_is_refused_for_every_holder() -> None:
    desired = plan(peer("n2", 2, key(2)), peer("n3", 3, key(2)), peer("n4", 4, key(1)), peer("n5", 5, key(5)))
    assert [p.node for p in desired.peers] == ["n5"]
    assert any("'n2'" in r and "n3" in r for r in desired.refused)
    assert any("'n4'" in r and "n1" in r for r in desired.refused)


def test_the_recorded_uapi_get_parses() -> None:
    state = parse_get((DATA / "wireguard_uapi_get.txt").read_text())
    assert state.private_key == "a8" + "11" * 30 + "51"
    assert state.listen_port == 51820
    assert len(state.peers) == 2
    a = state.peers[next(k for k in state.peers if k.startswith("a336"))]
    assert a.endpoint == "192.168.77.12:51820" and a.preshared_key is None and a.keepalive == 0
    assert a.allowed_ips == {"10.244.3.0/24", "192.168.77.12/32"}
    b = state.peers[next(k for k in state.peers if k.startswith("5ec2"))]
    assert b.preshared_key == bytes(range(32)).hex() and b.keepalive == 25 and b.endpoint == "192.168.77.13:51821"


def test_wg_show_dump_parses_to_the_same_state_as_the_uapi() -> None:
    uapi = parse_get((DATA / "wireguard_uapi_get.txt").read_text())
    dump = parse_dump((DATA / "wg_show_dump.txt").read_text())
    assert dump == uapi


def test_render_set_and_wg_set_args() -> None:
    lines = [("private_key", "aa" * 32), ("public_key", "bb" * 32), ("remove", "true"),
             ("public_key", "cc" * 32), ("preshared_key", "0" * 64), ("endpoint", "1.2.3.4:51820"),
             ("persistent_keepalive_interval", "0"), ("replace_allowed_ips", "true"),
             ("allowed_ip", "10.0.0.0/24"), ("allowed_ip", "1.2.3.4/32")]
    assert render_set(lines[:1]) == "set=1\nprivate_key=" + "aa" * 32 + "\n\n"
    args = wg_set_args(lines, lambda hex_key: f"/secret/{hex_key[:2]}")
    b64 = {h: to_base64(bytes.fromhex(h * 32)) for h in ("bb", "cc")}
    assert args == ["private-key", "/secret/aa", "peer", b64["bb"], "remove", "peer", b64["cc"],
                    "preshared-key", "/dev/null", "endpoint", "1.2.3.4:51820", "persistent-keepalive", "off",
                    "allowed-ips", "10.0.0.0/24,1.2.3.4/32"]


def test_device_changes_send_only_what_differs() -> None:
    want = WgPeer("bb" * 32, "n2", "192.168.77.12:51820", ("10.244.2.0/24", "192.168.77.12/32"), address="10.244.2.0")
    same = PeerState("bb" * 32, "192.168.77.12:51820", frozenset(want.allowed_ips))
    state = DeviceState("aa" * 32, 51820, 0, {"bb" * 32: same, "dd" * 32: PeerState("dd" * 32)})
    lines, touched = device_changes(state, "aa" * 32, 51820, [want])
    assert lines == [("public_key", "dd" * 32), ("remove", "true")] and touched == []
    state = DeviceState("aa" * 32, 51820, 0, {"bb" * 32: same})
    assert device_changes(state, "aa" * 32, 51820, [want]) == ([], [])
    moved = WgPeer("bb" * 32, "n2", "192.168.77.99:51820", want.allowed_ips, address="10.244.2.0")
    lines, touched = device_changes(state, "ee" * 32, 51820, [moved])
    assert lines[0] == ("private_key", "ee" * 32) and touched == [moved]
    assert ("endpoint", "192.168.77.99:51820") in lines and ("replace_allowed_ips", "true") in lines


def test_rotation_request_and_publish_keep_the_etcd_lease_and_other_fields() -> None:
    kv = MemoryKV()
    lease_id = kv.grant_lease(30)
    lease_key = "/pycni/subnets/10.244.1.0-24"
    value = {"Node": "n1", "PublicIP": "192.168.77.11", "BackendType": "wireguard",
             "BackendData": {"PublicKey": "old", "Port": 51820, "podMTU": 1440}}
    kv.create(lease_key, json.dumps(value).encode(), lease=lease_id)
    access = LeaseAccess(kv, lambda subnet: f"/pycni/subnets/{subnet.network_address}-{subnet.prefixlen}")
    own = read_own(access, IPv4Network("10.244.1.0/24"))
    assert own is not None and own.rotation is None and own.publishes({"PublicKey": "old", "Port": 51820})
    nonce = request_rotation(kv, lease_key)
    own = read_own(access, IPv4Network("10.244.1.0/24"))
    assert own is not None and own.rotation == nonce and not own.publishes({"PublicKey": "old", "Port": 51820})
    assert publish(access, own, {"PublicKey": "new", "Port": 51820})
    entry = kv.get(lease_key)
    assert entry is not None and entry.lease == lease_id
    assert json.loads(entry.value)["BackendData"] == {"PublicKey": "new", "Port": 51820, "podMTU": 1440}
    assert not publish(access, own, {"PublicKey": "newer"})  # compare-and-swap: it moved since
