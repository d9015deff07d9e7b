"""IPv6-only clusters (issue 16 item 3, ``EnableIPv4: false``): config, leases, files and plans. Pure, on MemoryKV."""

from __future__ import annotations

import argparse
import json
import threading
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from pycni.cli.cluster import add_cluster_arguments, config_from_args
from pycni.cluster.agent import AgentOptions, run_agent
from pycni.cluster.backends.base import Peer, RouteSpec, Underlay
from pycni.cluster.backends.hostgw import HostGwBackend
from pycni.cluster.backends.vxlan import VxlanBackend
from pycni.cluster.config import AnyNetwork, ClusterConfig
from pycni.cluster.conflist import NodeNetwork, render_conflist, render_subnet_env
from pycni.cluster.kv import KeyValue
from pycni.cluster.lease import Lease, LeaseLost, V6Attrs, decode_lease
from pycni.cluster.masquerade import masquerade_commands
from pycni.cluster.reconciler import NodeFiles, lease_to_peer
from pycni.cluster.stranded import previous_subnet, stranded
from pycni.cluster.subnets import SubnetManager
from pycni.ipam.host_local.store import Reservation
from pycni.spec.errors import InvalidConfig
from pycni.testing.kv import MemoryKV

V6ONLY = {"EnableIPv4": False, "EnableIPv6": True, "IPv6Network": "fd00:10:244::/56", "IPv6SubnetLen": 64,
          "Backend": {"Type": "vxlan"}}
NET6 = IPv6Network("fd00:10:244::/56")


def test_flannel_fields_round_trip_without_network() -> None:
    cfg = ClusterConfig.from_wire(V6ONLY)
    assert cfg.network is None and cfg.ipv6_only and cfg.lease_network == NET6 and cfg.lease_len == 64
    assert cfg.to_wire() == {"EnableIPv4": False, "EnableIPv6": True, "IPv6Network": "fd00:10:244::/56",
                             "IPv6SubnetLen": 64, "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}
    assert ClusterConfig.from_wire(cfg.to_wire()) == cfg
    assert cfg.describe().startswith("IPv6-only fd00:10:244::/56, /64 per node (255 subnets), vxlan")


def test_the_leasable_subnets_are_ipv6_ones() -> None:
    cfg = ClusterConfig.from_wire(V6ONLY)
    assert cfg.first == IPv6Network("fd00:10:244:1::/64") and cfg.last == IPv6Network("fd00:10:244:ff::/64")
    assert cfg.subnet_count == 255 and len(list(cfg.subnets())) == 255
    assert cfg.contains(IPv6Network("fd00:10:244:7::/64"))
    assert not cfg.contains(IPv6Network("fd00:10:244::/64"))  # the first one, left out as for IPv4
    assert not cfg.contains(IPv4Network("10.244.7.0/24"))
    assert cfg.ipv6_subnet_for(IPv6Network("fd00:10:244:7::/64")) == IPv6Network("fd00:10:244:7::/64")
    dual = ClusterConfig.from_wire({**V6ONLY, "EnableIPv4": True, "Network": "10.244.0.0/16"})
    assert not dual.contains(IPv6Network("fd00:10:244:7::/64"))  # a dual-stack cluster's leases stay IPv4-keyed


def test_enable_ipv4_true_is_the_default() -> None:
    plain = ClusterConfig.from_wire({"Network": "10.244.0.0/16"})
    assert ClusterConfig.from_wire({"Network": "10.244.0.0/16", "EnableIPv4": True}) == plain
    assert "EnableIPv4" not in plain.to_wire()


@pytest.mark.parametrize(("doc", "message"), [
    ({**V6ONLY, "IPv6Network": None}, "IPv6Network: missing (EnableIPv6 needs one"),
    ({**V6ONLY, "EnableIPv6": None}, "EnableIPv6: an IPv6-only config (EnableIPv4 false) needs \"EnableIPv6\": true"),
    ({**V6ONLY, "EnableIPv6": False, "IPv6Network": None, "IPv6SubnetLen": None}, "EnableIPv6: an IPv6-only config"),
    ({**V6ONLY, "Network": "10.244.0.0/16"}, "Network: set, but EnableIPv4 is false"),
    ({**V6ONLY, "SubnetLen": 24}, "SubnetLen: set, but EnableIPv4 is false"),
    ({**V6ONLY, "EnableIPv4": "no"}, "EnableIPv4: 'no' is not true or false"),
    ({**V6ONLY, "IPv6SubnetLen": 56}, "IPv6SubnetLen: must be larger than the IPv6 network prefix /56"),
    ({"EnableIPv6": True, "IPv6Network": "fd00::/56"}, "Network: missing (the pod network, e.g. \"10.244.0.0/16\"; "
                                                       "an IPv6-only network sets \"EnableIPv4\": false)"),
])
def test_errors_name_the_field(doc: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        ClusterConfig.from_wire({k: v for k, v in doc.items() if v is not None})
    assert message in str(info.value.msg)


def test_cluster_init_no_ipv4_makes_the_config_ipv6_only() -> None:
    parser = argparse.ArgumentParser()
    add_cluster_arguments(parser)
    cfg = config_from_args(parser.parse_args(["init", "--no-ipv4", "--ipv6-network", "fd00:50::/48"]))
    assert cfg.network is None and cfg.ipv6 is not None and cfg.ipv6.subnet_len == 64
    with pytest.raises(InvalidConfig, match="IPv6Network: missing"):
        config_from_args(parser.parse_args(["init", "--no-ipv4"]))
    with pytest.raises(InvalidConfig, match="Network: set, but EnableIPv4 is false"):
        config_from_args(parser.parse_args(["init", "--no-ipv4", "--network", "10.1.0.0/16",
                                            "--ipv6-network", "fd00:50::/48"]))
    plain = config_from_args(parser.parse_args(["init", "--network", "10.50.0.0/16"]))
    assert plain == ClusterConfig(network=IPv4Network("10.50.0.0/16"))


# -- leases --------------------------------------------------------------------------------------------------


def _manager(doc: dict[str, object] = V6ONLY, clock: list[float] | None = None) -> SubnetManager:
    now = clock if clock is not None else [1000.0]
    sm = SubnetManager(MemoryKV(clock=lambda: now[0]) if clock is not None else MemoryKV(), "/t", ttl=10,
                       clock=lambda: now[0])
    sm.init_config(ClusterConfig.from_wire(doc))
    return sm


def _acquire(sm: SubnetManager, node: str, ip: str, prefer: AnyNetwork | None = None) -> Lease:
    v6 = V6Attrs(IPv6Address(ip), {"vtepMAC": f"0a:58:00:00:00:{int(ip.rsplit(':', 1)[1]):02d}"})
    return sm.acquire(node, IPv6Address(ip), {"podMTU": 1430}, v6=v6, prefer=prefer)


def test_a_lease_is_keyed_by_its_ipv6_subnet_and_has_no_ipv4_side() -> None:
    sm = _manager()
    lease = _acquire(sm, "n1", "fd00:1ab::11")
    assert lease.subnet == IPv6Network("fd00:10:244:1::/64") and lease.public_ip == IPv6Address("fd00:1ab::11")
    assert lease.key == "/t/subnets/fd00:10:244:1::-64"
    assert lease.v6 is not None and lease.v6.subnet == lease.subnet and lease.v6.public_ip == lease.public_ip
    stored = sm.kv.get(lease.key)
    assert stored is not None
    assert json.loads(stored.value) == {"Node": "n1", "BackendType": "vxlan", "BackendData": {"podMTU": 1430},
                                        "IPv6Subnet": "fd00:10:244:1::/64", "PublicIPv6": "fd00:1ab::11",
                                        "BackendV6Data": {"vtepMAC": "0a:58:00:00:00:11"}}
    listed, _ = sm.list_leases()
    assert len(listed) == 1 and listed[0].same_endpoint(lease)
    other = _acquire(sm, "n2", "fd00:1ab::12")
    assert other.subnet == IPv6Network("fd00:10:244:2::/64")
    again = _acquire(sm, "n1", "fd00:1ab::11")  # a restarted agent keeps its subnet
    assert again.subnet == lease.subnet


def test_a_node_asks_for_the_subnet_of_its_pods() -> None:
    sm = _manager()
    lease = _acquire(sm, "n1", "fd00:1ab::11", prefer=IPv6Network("fd00:10:244:9::/64"))
    assert lease.subnet == IPv6Network("fd00:10:244:9::/64")
    wrong_family = _acquire(sm, "n2", "fd00:1ab::12", prefer=IPv4Network("10.244.9.0/24"))
    assert wrong_family.subnet == IPv6Network("fd00:10:244:1::/64")


def test_an_ipv4_address_is_refused_in_one_line() -> None:
    sm = _manager()
    with pytest.raises(InvalidConfig, match=r"node n1: its public address 192\.0\.2\.1 is IPv4, but the cluster "
                                            r"network is IPv6-only .*: the node needs an IPv6 underlay address"):
        sm.acquire("n1", IPv4Address("192.0.2.1"), {})
    v4 = _manager({"Network": "10.244.0.0/16"})
    with pytest.raises(InvalidConfig, match="is IPv6, but the cluster network is IPv4"):
        v4.acquire("n1", IPv6Address("fd00::1"), {})


def test_renewal_after_expiry_takes_the_subnet_again_or_reports_it_lost() -> None:
    now = [1000.0]
    sm = _manager(clock=now)
    lease = _acquire(sm, "n1", "fd00:1ab::11")
    now[0] += 5
    renewed = sm.renew(lease)
    assert renewed.subnet == lease.subnet
    now[0] += 60  # expired: etcd dropped the key; no one took the subnet
    back = sm.renew(renewed)
    assert back.subnet == lease.subnet and back.v6 == lease.v6 and back.lease_id != renewed.lease_id
    now[0] += 60
    sm.release("n1")  # another node may take it at once
    taken = _acquire(sm, "n2", "fd00:1ab::12", prefer=lease.subnet)
    assert taken.subnet == lease.subnet
    with pytest.raises(LeaseLost, match="fd00:10:244:1::/64 of node n1 is now held by n2"):
        sm.renew(back)


def test_the_network_cannot_switch_family_under_live_leases() -> None:
    sm = _manager()
    _acquire(sm, "n1", "fd00:1ab::11")
    with pytest.raises(InvalidConfig, match="live leases fall outside the new one"):
        sm.init_config(ClusterConfig.from_wire({"Network": "10.244.0.0/16"}), force=True)
    sm4 = _manager({"Network": "10.244.0.0/16"})
    sm4.acquire("n1", IPv4Address("192.0.2.1"), {})
    with pytest.raises(InvalidConfig, match="live leases fall outside the new one"):
        sm4.init_config(ClusterConfig.from_wire(V6ONLY), force=True)


def test_a_malformed_ipv6_only_lease_is_refused() -> None:
    key = "/t/subnets/fd00:10:244:1::-64"
    with pytest.raises(ValueError, match="IPv6Subnet fd00:10:244:2::/64 is not the key's subnet"):
        decode_lease(KeyValue(key, b'{"Node":"n1","IPv6Subnet":"fd00:10:244:2::/64","PublicIPv6":"fd00::1"}', 1, 1, 0))
    with pytest.raises(ValueError, match="PublicIPv6 missing"):
        decode_lease(KeyValue(key, b'{"Node":"n1","IPv6Subnet":"fd00:10:244:1::/64"}', 1, 1, 0))
    with pytest.raises(ValueError, match="host bits set"):
        decode_lease(KeyValue("/t/subnets/fd00:10:244:1::1-64", b'{}', 1, 1, 0))


def test_an_ipv4_cluster_reads_its_leases_as_before() -> None:
    sm = _manager({"Network": "10.244.0.0/16"})
    lease = sm.acquire("n1", IPv4Address("192.0.2.11"), {"vtepMAC": "x"})
    stored = sm.kv.get(lease.key)
    assert stored is not None and stored.value == (b'{"BackendData":{"vtepMAC":"x"},"BackendType":"vxlan",'
                                                   b'"Node":"n1","PublicIP":"192.0.2.11"}')


# -- files, masquerade, stranded pods ------------------------------------------------------------------------

SUB6 = IPv6Network("fd00:10:244:3::/64")


def test_the_conflist_and_subnet_env_carry_only_ipv6() -> None:
    net = NodeNetwork("pycni", None, None, 1430, ipv6_subnet=SUB6)
    ipam = json.loads(render_conflist(net))["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "fd00:10:244:3::/64", "gateway": "fd00:10:244:3::1"}]]
    assert ipam["routes"] == [{"dst": "::/0"}]
    env = render_subnet_env(None, None, 1430, "vxlan", ipv6=(NET6, SUB6))
    assert env == ("PYCNI_IPV6_NETWORK=fd00:10:244::/56\nPYCNI_IPV6_SUBNET=fd00:10:244:3::1/64\nPYCNI_MTU=1430\n"
                   "PYCNI_IPMASQ=true\nPYCNI_BACKEND=vxlan\n")


def test_the_previous_subnet_is_read_back_from_an_ipv6_only_subnet_env(tmp_path: Path) -> None:
    (tmp_path / "subnet.env").write_text(render_subnet_env(None, None, 1430, "vxlan", ipv6=(NET6, SUB6)))
    assert previous_subnet(str(tmp_path)) == SUB6


def test_masquerade_has_only_the_ipv6_rules() -> None:
    rules = [c["add"]["rule"] for c in masquerade_commands(None, NET6) if "rule" in c.get("add", {})]
    assert [r["comment"] for r in rules] == ["pycni agent: masquerade pods leaving fd00:10:244::/56"] * 3
    assert all(e["match"]["left"]["payload"]["protocol"] == "ip6" for r in rules for e in r["expr"] if "match" in e)


def test_pods_left_on_an_old_ipv6_subnet_are_stranded() -> None:
    pods = [Reservation(IPv6Address("fd00:10:244:3::5"), "a", "eth0"),
            Reservation(IPv6Address("fd00:10:244:4::5"), "b", "eth0")]
    assert [p.container_id for p in stranded(pods, IPv6Network("fd00:10:244:4::/64"))] == ["a"]


# -- the backends' plans -------------------------------------------------------------------------------------

UNDERLAY6 = Underlay("eth0", None, 1500, (), IPv6Address("fd00:1ab::1"), (IPv6Network("fd00:1ab::/64"),))


def _peer(node: str, index: int, kind: str = "vxlan") -> Peer:
    sm = _manager({**V6ONLY, "Backend": {"Type": kind}})
    lease = _acquire(sm, node, f"fd00:1ab::{index}", prefer=IPv6Network(f"fd00:10:244:{index}::/64"))
    return lease_to_peer(lease)


def test_an_ipv6_only_lease_makes_a_peer_without_an_ipv4_side() -> None:
    peer = _peer("n2", 2)
    assert peer.subnet is None and peer.public_ip is None
    assert peer.ipv6_subnet == IPv6Network("fd00:10:244:2::/64") and peer.public_ipv6 == IPv6Address("fd00:1ab::2")


def test_vxlan_plans_only_its_ipv6_device() -> None:
    backend = VxlanBackend(UNDERLAY6, "n1")
    assert backend.pod_mtu() == 1500 - 70
    desired = backend.plan(_peer("n1", 1), [_peer("n2", 2)])
    gw = IPv6Address("fd00:10:244:2::")
    assert desired.routes == {RouteSpec(IPv6Network("fd00:10:244:2::/64"), gw, "pycni6.1", onlink=True)}
    assert desired.neighbours == {(gw, "0a:58:00:00:00:02")}
    assert desired.fdb == {("0a:58:00:00:00:02", IPv6Address("fd00:1ab::2"))}
    assert not desired.refused


def test_host_gw_routes_ipv6_via_the_peers_address_only() -> None:
    desired = HostGwBackend(UNDERLAY6).plan(_peer("n1", 1, "host-gw"), [_peer("n2", 2, "host-gw")])
    assert desired.routes == {RouteSpec(IPv6Network("fd00:10:244:2::/64"), IPv6Address("fd00:1ab::2"), "eth0")}
    assert not desired.refused


@pytest.mark.parametrize("backend", ["wireguard", "bgp"])
def test_the_agent_refuses_ipv6_only_on_an_ipv4_only_backend(backend: str, caplog: pytest.LogCaptureFixture,
                                                              tmp_path: Path) -> None:
    kv = MemoryKV()
    SubnetManager(kv, "/pycni").init_config(ClusterConfig.from_wire({**V6ONLY, "Backend": {"Type": backend}}))
    options = AgentOptions(node_name="n1", files=NodeFiles(conf_dir=str(tmp_path), run_dir=str(tmp_path)))
    assert run_agent(options, threading.Event(), kv=kv) == 2
    assert (f"refusing to start: the {backend} backend is IPv4-only: an IPv6-only cluster (EnableIPv4 false) needs "
            "the vxlan or host-gw backend") in caplog.messages
