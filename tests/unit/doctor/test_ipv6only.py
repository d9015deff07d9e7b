"""Doctor on a node of an IPv6-only cluster (EnableIPv4 false): healthy passes, and the IPv6 faults are named."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

from pycni.cluster.status_file import AgentStatus
from pycni.doctor.snapshot import (
    IpamView,
    LeaseView,
    LinkView,
    PeerEntries,
    ProbeResult,
    Reservation,
    RouteView,
    Snapshot,
)
from tests.unit.doctor.snapshots import (
    NOW,
    OWN_MAC,
    PEER_MAC,
    conflist,
    failing,
    healthy,
    verdicts,
    with_node,
    with_sysctl,
)

NETWORK6 = IPv6Network("fd00:10:244::/56")
OWN6 = IPv6Network("fd00:10:244:1::/64")
PEER6 = IPv6Network("fd00:10:244:2::/64")


def _lease(node: str, subnet: IPv6Network, ip: str, mac: str) -> LeaseView:
    return LeaseView(node, subnet, IPv6Address(ip), "vxlan", mac, 1430)


def ipv6_only() -> Snapshot:
    snap = healthy()
    assert snap.store is not None and snap.node is not None and snap.agent is not None
    links = (
        LinkView("lo", "", 65536, "00:00:00:00:00:00", True),
        LinkView("eth0", "veth", 1500, "02:00:00:00:00:11", True, addresses6=(IPv6Interface("fd00:1ab::11/64"),)),
        LinkView("pycni6.1", "vxlan", 1430, OWN_MAC, True, addresses6=(IPv6Interface("fd00:10:244:1::/128"),)),
        LinkView("cni0", "bridge", 1430, "02:00:00:00:00:99", True, addresses6=(IPv6Interface("fd00:10:244:1::1/64"),)),
    )
    routes = (
        RouteView(IPv6Network("::/0"), IPv6Address("fd00:1ab::1"), "eth0", 3),
        RouteView(OWN6, None, "cni0", 2),
        RouteView(PEER6, IPv6Address("fd00:10:244:2::"), "pycni6.1", 124),
    )
    entries = PeerEntries(fdb=frozenset({(PEER_MAC, IPv6Address("fd00:1ab::12"))}),
                          neighbours=frozenset({(IPv6Address("fd00:10:244:2::"), PEER_MAC)}))
    status = AgentStatus(pid=42, node="n1", subnet=OWN6, backend="vxlan", pod_mtu=1430, last_reconcile=NOW - 1,
                         resync_seconds=2.0)
    return replace(
        with_node(snap, links=links, routes=routes, peer_entries=entries,
                  sysctls={**snap.node.sysctls, "net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "1"}),
        conf=(conflist(ranges=(OWN6,), gateway=IPv6Interface("fd00:10:244:1::1/64"), mtu=1430),),
        ipam=IpamView("/lab/n1/ipam/pycni", (Reservation("fd00:10:244:1::2", "c1", "eth0"),)),
        agent=replace(snap.agent, status=status),
        subnet_env={"PYCNI_IPV6_NETWORK": str(NETWORK6), "PYCNI_IPV6_SUBNET": "fd00:10:244:1::1/64",
                    "PYCNI_MTU": "1430"},
        store=replace(snap.store, network=NETWORK6, leases=(_lease("n1", OWN6, "fd00:1ab::11", OWN_MAC),
                                                            _lease("n2", PEER6, "fd00:1ab::12", PEER_MAC))),
        probes=(ProbeResult("n2", IPv6Address("fd00:10:244:2::"), True, 1382, True),),
    )


def test_a_healthy_ipv6_only_node_passes() -> None:
    assert failing(ipv6_only()) == []
    found = verdicts(ipv6_only())
    assert [cid for cid in ("bridge-stale-addr", "ipam-exhausted", "cidr-mismatch") if found[cid] != "pass"] == []


def test_a_stale_ipv6_address_on_the_bridge_fails_bridge_stale_addr() -> None:
    snap = ipv6_only()
    assert snap.node is not None
    stale = IPv6Interface("fd00:10:244:7::1/64")
    links = tuple(replace(link, addresses6=(*link.addresses6, stale)) if link.name == "cni0" else link
                  for link in snap.node.links)
    assert failing(with_node(snap, links=links)) == ["bridge-stale-addr"]


def test_ipv6_forwarding_off_fails_ip_forward() -> None:
    assert failing(with_sysctl(ipv6_only(), "net.ipv6.conf.all.forwarding", "0")) == ["ip-forward"]


def test_a_subnet_env_for_another_ipv6_subnet_fails_cidr_mismatch() -> None:
    snap = replace(ipv6_only(), subnet_env={"PYCNI_IPV6_NETWORK": str(NETWORK6),
                                            "PYCNI_IPV6_SUBNET": "fd00:10:244:7::1/64"})
    assert failing(snap) == ["cidr-mismatch"]


def test_a_missing_ipv6_route_to_a_peer_fails_peer_state() -> None:
    snap = ipv6_only()
    assert snap.node is not None
    assert failing(with_node(snap, routes=snap.node.routes[:2])) == ["peer-state"]


def test_an_address_the_node_lost_fails_node_ip() -> None:
    snap = ipv6_only()
    assert snap.node is not None
    links = tuple(replace(link, addresses6=()) if link.name == "eth0" else link for link in snap.node.links)
    assert "node-ip" in failing(with_node(snap, links=links))
