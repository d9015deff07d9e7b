"""Dual-stack cluster config and leases (issue 16 item 3): pure, on MemoryKV."""

from __future__ import annotations

import argparse
import json
import threading
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from pathlib import Path

import pytest

from pycni.cli.cluster import add_cluster_arguments, config_from_args
from pycni.cluster.agent import AgentOptions, run_agent
from pycni.cluster.backends.base import Peer, RouteSpec, Underlay
from pycni.cluster.backends.hostgw import HostGwBackend
from pycni.cluster.backends.vxlan import VxlanBackend
from pycni.cluster.config import ClusterConfig
from pycni.cluster.config_v6 import refuse_dual_stack
from pycni.cluster.conflist import NodeNetwork, render_conflist, render_subnet_env
from pycni.cluster.kv import KeyValue
from pycni.cluster.lease import V6Attrs, decode_lease
from pycni.cluster.masquerade import masquerade_commands
from pycni.cluster.reconciler import NodeFiles
from pycni.cluster.stranded import foreign_gateways6
from pycni.cluster.subnets import SubnetManager
from pycni.spec.errors import InvalidConfig
from pycni.testing.kv import MemoryKV

DUAL = {"Network": "10.244.0.0/16", "SubnetLen": 24, "EnableIPv6": True, "IPv6Network": "fd00:10:244::/56",
        "IPv6SubnetLen": 64, "Backend": {"Type": "vxlan"}}


def test_flannel_fields_round_trip() -> None:
    cfg = ClusterConfig.from_wire(DUAL)
    assert cfg.ipv6 is not None and cfg.ipv6.network == IPv6Network("fd00:10:244::/56")
    assert ClusterConfig.from_wire(cfg.to_wire()) == cfg
    assert cfg.to_wire()["EnableIPv6"] is True
    assert "IPv6 fd00:10:244::/56, /64 per node" in cfg.describe()


def test_ipv4_only_config_is_written_as_before() -> None:
    cfg = ClusterConfig.from_wire({"Network": "10.244.0.0/16"})
    assert cfg.ipv6 is None
    assert not any("IPv6" in key for key in cfg.to_wire())
    assert ClusterConfig.from_wire({"Network": "10.244.0.0/16", "EnableIPv6": False}) == cfg


def test_ipv6_subnet_len_defaults_to_64() -> None:
    cfg = ClusterConfig.from_wire({k: v for k, v in DUAL.items() if k != "IPv6SubnetLen"})
    assert cfg.ipv6 is not None and cfg.ipv6.subnet_len == 64


def test_each_ipv4_subnet_is_paired_with_the_ipv6_subnet_of_the_same_index() -> None:
    cfg = ClusterConfig.from_wire(DUAL)
    assert cfg.ipv6_subnet_for(IPv4Network("10.244.0.0/24")) == IPv6Network("fd00:10:244::/64")
    assert cfg.ipv6_subnet_for(IPv4Network("10.244.3.0/24")) == IPv6Network("fd00:10:244:3::/64")
    assert cfg.ipv6_subnet_for(IPv4Network("10.244.255.0/24")) == IPv6Network("fd00:10:244:ff::/64")
    pairs = {cfg.ipv6_subnet_for(s) for s in cfg.subnets()}
    assert len(pairs) == cfg.subnet_count


@pytest.mark.parametrize(("change", "message"), [
    ({"IPv6Network": None}, "IPv6Network: missing"),
    ({"IPv6Network": "10.0.0.0/8"}, "IPv6Network: '10.0.0.0/8' is not an IPv6 CIDR"),
    ({"IPv6Network": "fd00::1/56"}, "IPv6Network: 'fd00::1/56' has host bits set"),
    ({"IPv6Network": "fe80::/56"}, "IPv6Network: fe80::/56 overlaps the link-local range"),
    ({"IPv6Network": "fd00:10:244::/60"}, "IPv6SubnetLen: fd00:10:244::/60 has 16 subnets of /64, fewer than"),
    ({"IPv6SubnetLen": 40}, "IPv6SubnetLen: must be larger than the IPv6 network prefix /56"),
    ({"IPv6SubnetLen": 127}, "IPv6SubnetLen: must be larger"),
    ({"EnableIPv6": "yes"}, "EnableIPv6: 'yes' is not true or false"),
    ({"EnableIPv6": False}, "IPv6Network: set, but EnableIPv6 is not true"),
])
def test_errors_name_the_field(change: dict[str, object], message: str) -> None:
    doc = {**DUAL, **change}
    with pytest.raises(InvalidConfig) as info:
        ClusterConfig.from_wire({k: v for k, v in doc.items() if v is not None})
    assert message in str(info.value.msg)


def test_only_vxlan_and_host_gw_carry_ipv6() -> None:
    assert refuse_dual_stack("vxlan") is None and refuse_dual_stack("host-gw") is None
    assert refuse_dual_stack("wireguard") == ("the wireguard backend is IPv4-only: a dual-stack cluster "
                                              "(EnableIPv6) needs the vxlan or host-gw backend")
    assert refuse_dual_stack("bgp") is not None


def _manager(doc: dict[str, object]) -> SubnetManager:
    kv = MemoryKV()
    sm = SubnetManager(kv, "/t", ttl=10)
    sm.init_config(ClusterConfig.from_wire(doc))
    return sm


def test_a_dual_stack_lease_carries_its_ipv6_side_in_the_same_value() -> None:
    sm = _manager(DUAL)
    v6 = V6Attrs(IPv6Address("fd00:1::11"), {"vtepMAC": "0a:58:00:00:00:01"})
    lease = sm.acquire("n1", IPv4Address("192.0.2.11"), {"vtepMAC": "0a:58:00:00:00:02"}, v6=v6)
    assert lease.v6 is not None
    assert lease.v6.subnet == sm.load_config().ipv6_subnet_for(lease.subnet)
    stored = sm.kv.get(lease.key)
    assert stored is not None
    value = json.loads(stored.value)
    assert value["IPv6Subnet"] == str(lease.v6.subnet)
    assert value["PublicIPv6"] == "fd00:1::11"
    assert value["BackendV6Data"] == {"vtepMAC": "0a:58:00:00:00:01"}
    listed, _ = sm.list_leases()
    assert listed[0].same_endpoint(lease)
    # a second node gets another pair; the restarted first node keeps its own
    other = sm.acquire("n2", IPv4Address("192.0.2.12"), {}, v6=V6Attrs(None))
    assert other.v6 is not None and other.v6.subnet != lease.v6.subnet and other.v6.public_ip is None
    again = sm.acquire("n1", IPv4Address("192.0.2.11"), {"vtepMAC": "0a:58:00:00:00:02"}, v6=v6)
    assert again.subnet == lease.subnet and again.v6 == lease.v6


def test_ipv4_only_leases_are_written_and_read_as_before() -> None:
    sm = _manager({"Network": "10.244.0.0/16"})
    lease = sm.acquire("n1", IPv4Address("192.0.2.11"), {"vtepMAC": "x"})
    stored = sm.kv.get(lease.key)
    assert stored is not None
    assert json.loads(stored.value) == {"Node": "n1", "PublicIP": "192.0.2.11", "BackendType": "vxlan",
                                        "BackendData": {"vtepMAC": "x"}}
    assert lease.v6 is None


def test_a_malformed_ipv6_side_is_refused() -> None:
    value = b'{"Node":"n1","PublicIP":"192.0.2.1","IPv6Subnet":"nope"}'
    with pytest.raises(ValueError, match="IPv6Subnet"):
        decode_lease(KeyValue("/t/subnets/10.244.1.0-24", value, 1, 1, 0))


# -- conflist, subnet.env and the backends' plans ------------------------------------------------------------

V4 = IPv4Network("10.244.3.0/24")
V6 = IPv6Network("fd00:10:244:3::/64")


def test_the_conflist_carries_both_ranges() -> None:
    net = NodeNetwork("pycni", IPv4Network("10.244.0.0/16"), V4, 1430, ipv6_subnet=V6)
    ipam = json.loads(render_conflist(net))["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.244.3.0/24", "gateway": "10.244.3.1"}],
                              [{"subnet": "fd00:10:244:3::/64", "gateway": "fd00:10:244:3::1"}]]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    env = render_subnet_env(IPv4Network("10.244.0.0/16"), V4, 1430, "vxlan",
                            ipv6=(IPv6Network("fd00:10:244::/56"), V6))
    assert "PYCNI_IPV6_NETWORK=fd00:10:244::/56\nPYCNI_IPV6_SUBNET=fd00:10:244:3::1/64\n" in env
    assert "PYCNI_SUBNET=10.244.3.1/24\n" in env


UNDERLAY = Underlay("eth0", IPv4Address("192.0.2.1"), 1500, (IPv4Network("192.0.2.0/24"),),
                    IPv6Address("fd00:1::1"), (IPv6Network("fd00:1::/64"),))
OWN = Peer("n1", IPv4Network("10.244.1.0/24"), IPv4Address("192.0.2.1"), "vxlan",
           ipv6_subnet=IPv6Network("fd00:10:244:1::/64"), public_ipv6=IPv6Address("fd00:1::1"))


def _peer(v6_mac: str | None, public_ipv6: str | None = "fd00:1::2", kind: str = "vxlan") -> Peer:
    return Peer("n2", V4, IPv4Address("192.0.2.2"), kind, {"vtepMAC": "0a:58:00:00:00:02"}, ipv6_subnet=V6,
                public_ipv6=IPv6Address(public_ipv6) if public_ipv6 else None,
                backend_v6_data={"vtepMAC": v6_mac} if v6_mac else {})


def test_host_gw_routes_both_families_via_the_peers_underlay_addresses() -> None:
    desired = HostGwBackend(UNDERLAY).plan(OWN, [_peer(None, kind="host-gw")])
    assert desired.routes == {RouteSpec(V4, IPv4Address("192.0.2.2"), "eth0"),
                              RouteSpec(V6, IPv6Address("fd00:1::2"), "eth0")}
    off_link = HostGwBackend(UNDERLAY).plan(OWN, [_peer(None, "fd00:99::2", kind="host-gw")])
    assert off_link.routes == {RouteSpec(V4, IPv4Address("192.0.2.2"), "eth0")}
    assert "over IPv6: its address fd00:99::2 is not on the same layer-2 segment" in off_link.refused[0]


def test_vxlan_gives_ipv6_its_own_device_and_entries() -> None:
    backend = VxlanBackend(UNDERLAY, "n1")
    assert backend.pod_mtu() == 1500 - 70
    assert backend.backend_v6_data()["vtepMAC"] != backend.backend_data()["vtepMAC"]
    desired = backend.plan(OWN, [_peer("0a:58:00:00:00:06")])
    assert RouteSpec(V6, IPv6Address("fd00:10:244:3::"), "pycni6.1", onlink=True) in desired.routes
    assert (IPv6Address("fd00:10:244:3::"), "0a:58:00:00:00:06") in desired.neighbours
    assert ("0a:58:00:00:00:06", IPv6Address("fd00:1::2")) in desired.fdb
    assert len(desired.routes) == 2 and not desired.refused
    without = backend.plan(OWN, [_peer(None, None)])
    assert len(without.routes) == 1
    assert without.refused == ("no IPv6 overlay to peer 'n2' (fd00:10:244:3::/64): peer 'n2' has no IPv6 underlay "
                               "address",)


def test_ipv4_only_vxlan_is_unchanged_by_an_ipv6_underlay_it_is_not_given() -> None:
    v4_only = Underlay("eth0", IPv4Address("192.0.2.1"), 1500, (IPv4Network("192.0.2.0/24"),))
    backend = VxlanBackend(v4_only, "n1")
    assert backend.pod_mtu() == 1450 and backend.backend_v6_data() == {}
    own = Peer("n1", IPv4Network("10.244.1.0/24"), IPv4Address("192.0.2.1"), "vxlan")
    desired = backend.plan(own, [_peer("0a:58:00:00:00:06")])
    assert {r.dev for r in desired.routes} == {"pycni.1"} and not desired.refused


def test_the_agent_refuses_a_dual_stack_config_on_an_ipv4_only_backend(caplog: pytest.LogCaptureFixture,
                                                                        tmp_path: Path) -> None:
    kv = MemoryKV()
    SubnetManager(kv, "/pycni").init_config(ClusterConfig.from_wire({**DUAL, "Backend": {"Type": "wireguard"}}))
    options = AgentOptions(node_name="n1", files=NodeFiles(conf_dir=str(tmp_path), run_dir=str(tmp_path)))
    assert run_agent(options, threading.Event(), kv=kv) == 2
    assert ("refusing to start: the wireguard backend is IPv4-only: a dual-stack cluster (EnableIPv6) needs the "
            "vxlan or host-gw backend") in caplog.messages
    assert not list(tmp_path.iterdir())


def test_cluster_init_flags_make_the_config_dual_stack() -> None:
    parser = argparse.ArgumentParser()
    add_cluster_arguments(parser)
    args = parser.parse_args(["init", "--network", "10.50.0.0/16", "--ipv6-network", "fd00:50::/48",
                              "--ipv6-subnet-len", "64"])
    cfg = config_from_args(args)
    assert cfg.ipv6 is not None and str(cfg.ipv6.network) == "fd00:50::/48" and cfg.ipv6.subnet_len == 64
    plain = config_from_args(parser.parse_args(["init", "--network", "10.50.0.0/16"]))
    assert plain.ipv6 is None


def test_a_dual_stack_node_that_moved_drops_its_old_ipv6_gateway_too() -> None:
    on_bridge: list[IPv4Interface | IPv6Interface] = [
        IPv6Interface("fd00:10:244:3::1/64"), IPv6Interface("fd00:10:244:7::1/64"),
        IPv6Interface("fd00:10:244:8::5/64"), IPv6Interface("fd00:99::1/64"), IPv4Interface("10.244.3.1/24")]
    assert foreign_gateways6(on_bridge, IPv6Network("fd00:10:244::/56"), IPv6Network("fd00:10:244:7::/64")) == [
        IPv6Interface("fd00:10:244:3::1/64")]


def test_masquerade_adds_the_same_three_rules_for_the_ipv6_network() -> None:
    v4 = masquerade_commands(IPv4Network("10.244.0.0/16"))
    dual = masquerade_commands(IPv4Network("10.244.0.0/16"), IPv6Network("fd00:10:244::/56"))
    assert dual[:len(v4)] == v4  # the IPv4 rules as before, first
    added = [c["add"]["rule"] for c in dual[len(v4):]]
    assert [r["comment"] for r in added] == ["pycni agent: masquerade pods leaving fd00:10:244::/56"] * 3
    assert all(e["match"]["left"]["payload"]["protocol"] == "ip6" for r in added for e in r["expr"] if "match" in e)
    assert added[1]["expr"][1]["match"]["right"] == {"prefix": {"addr": "ff00::", "len": 8}}
    assert added[2]["expr"][-1] == {"masquerade": None}
