"""Fixture snapshots: a healthy two-node vxlan node as collect() would see it, and helpers to break one part.

Every check's unit tests start from ``healthy()`` and change exactly the part
a fault changes, so "this fault fails this check and nothing else" is
tested without a kernel, including faults this machine cannot make.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from pycni.cluster.status_file import AgentStatus
from pycni.doctor.run import judge
from pycni.doctor.snapshot import (
    AgentView,
    CacheFile,
    ConfFile,
    ExecutorView,
    FirewallView,
    IpamView,
    LeaseView,
    LinkView,
    NetnsView,
    NodeView,
    Options,
    PeerEntries,
    PluginFile,
    ProbeResult,
    Reservation,
    RouteView,
    Snapshot,
    StoreView,
    SyntheticResult,
)

NOW = 1_800_000_000.0
NETWORK = IPv4Network("10.244.0.0/16")
OWN = IPv4Network("10.244.1.0/24")
PEER = IPv4Network("10.244.2.0/24")
OWN_MAC = "0a:58:00:00:00:01"
PEER_MAC = "0a:58:00:00:00:02"
TYPES = ("bridge", "host-local", "portmap", "netpol")
VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
OPTIONS = Options(node_name="n1", conf_dir="/lab/n1/net.d", run_dir="/lab/n1/run", bin_dirs=("/lab/bin",),
                  cache_dir="/lab/n1/cache", ipam_data_dir="/lab/n1/ipam")


def conflist(name: str = "00-pycni-cluster.conflist", subnet: IPv4Network = OWN, **changes: Any) -> ConfFile:
    conf = ConfFile(name=name, network="pycni", cni_version="1.0.0", types=TYPES, ranges=(subnet,),
                    gateway=IPv4Interface(f"{subnet[1]}/24"), mtu=1450, bridge="cni0",
                    ipam_data_dir="/lab/n1/ipam")
    return replace(conf, **changes)


def lease(node: str, subnet: IPv4Network, ip: str, mac: str, mtu: int | None = 1450) -> LeaseView:
    return LeaseView(node, subnet, IPv4Address(ip), "vxlan", mac, mtu)


def healthy() -> Snapshot:
    status = AgentStatus(pid=42, node="n1", subnet=OWN, backend="vxlan", pod_mtu=1450, last_reconcile=NOW - 1,
                         resync_seconds=2.0)
    links = (
        LinkView("lo", "", 65536, "00:00:00:00:00:00", True),
        LinkView("eth0", "veth", 1500, "02:00:00:00:00:11", True, (IPv4Interface("192.168.77.11/24"),)),
        LinkView("pycni.1", "vxlan", 1450, OWN_MAC, True, (IPv4Interface("10.244.1.0/32"),)),
        LinkView("cni0", "bridge", 1450, "02:00:00:00:00:99", True, (IPv4Interface("10.244.1.1/24"),)),
    )
    routes = (
        RouteView(IPv4Network("0.0.0.0/0"), IPv4Address("192.168.77.1"), "eth0", 3),
        RouteView(OWN, None, "cni0", 2),
        RouteView(PEER, IPv4Address("10.244.2.0"), "pycni.1", 124),
    )
    sysctls = {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1",
               "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.pycni.1.rp_filter": "0",
               "net.ipv4.conf.cni0.rp_filter": "0", "net.ipv4.conf.eth0.rp_filter": "0"}
    node = NodeView(links=links, routes=routes,
                    peer_entries=PeerEntries(fdb=frozenset({(PEER_MAC, IPv4Address("192.168.77.12"))}),
                                             neighbours=frozenset({(IPv4Address("10.244.2.0"), PEER_MAC)})),
                    sysctls=sysctls, conntrack=(40, 262144))
    policy_chain = ("inet", "pycni_policy", "egress", "forward", "accept", ("ip saddr 10.244.1.5 drop",))
    return Snapshot(
        options=OPTIONS,
        conf=(conflist(),),
        plugins={t: PluginFile(t, f"/lab/bin/{t}", versions=VERSIONS) for t in TYPES},
        agent=AgentView(status, None, True, True, NOW),
        subnet_env={"PYCNI_NETWORK": "10.244.0.0/16", "PYCNI_SUBNET": "10.244.1.1/24", "PYCNI_MTU": "1450"},
        store=StoreView(error=None, network=NETWORK, backend_type="vxlan", vxlan_port=8472, vni=1,
                        leases=(lease("n1", OWN, "192.168.77.11", OWN_MAC),
                                lease("n2", PEER, "192.168.77.12", PEER_MAC))),
        node=node,
        firewall=FirewallView(nft_chains=(policy_chain,), legacy_tables=(), legacy_rules=()),
        ipam=IpamView("/lab/n1/ipam/pycni", (Reservation("10.244.1.2", "c1", "eth0"),)),
        cache=(CacheFile("pycni-c1-eth0", "pycni", "c1", "eth0", "/run/netns/p1", None),),
        netns=(NetnsView("p1", True),),
        executor=ExecutorView("/run/pycni/executor.sock", True, True),
        policy=(True, "the policy agent answers"),
        synthetic=SyntheticResult(True, "del", None, 0.1),
        probes=(ProbeResult("n2", IPv4Address("10.244.2.0"), True, 1422, True),),
    )


def with_node(snap: Snapshot, **changes: Any) -> Snapshot:
    assert snap.node is not None
    return replace(snap, node=replace(snap.node, **changes))


def with_sysctl(snap: Snapshot, key: str, value: str | None) -> Snapshot:
    assert snap.node is not None
    return with_node(snap, sysctls={**snap.node.sysctls, key: value})


def verdicts(snap: Snapshot) -> dict[str, str]:
    return {r.id: r.status for r in judge(snap)}


def failing(snap: Snapshot) -> list[str]:
    """Ids that fail or warn, in report order."""
    return [r.id for r in judge(snap) if r.status in ("fail", "warn")]
