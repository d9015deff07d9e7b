"""The compiled table in a real kernel: packets agree with the evaluator, case after case.

One node with three local pods on a bridge and a routed remote (a pod on
another node, and that node's address). Each case changes the policies;
the enforcer applies only the difference, and every probe (TCP and UDP,
IPv4 and IPv6) must pass exactly when the evaluator says this node lets
it: both directions between local pods, egress towards the remote pod,
ingress from the remote. The node itself always reaches its pods.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pycni.net.firewall.nft import apply as nft_apply
from pycni.net.netns import run_in_netns
from pycni.policy.admin_model import (
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    BaselineAdminNetworkPolicy,
)
from pycni.policy.compile import NodeView, compile_node
from pycni.policy.enforcer import Enforcer
from pycni.policy.evaluate import Node, Snapshot, evaluate
from pycni.policy.model import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    labels_of,
)
from tests.policy.world import NODE_IP, REMOTE_NODE_IP, REMOTE_POD_IP, Endpoint, World

pytestmark = pytest.mark.root

LOCAL = ("x/a", "x/b", "y/a")
PORTS = (ContainerPort(80, "TCP", "serve-80-tcp"), ContainerPort(81, "TCP", "serve-81-tcp"),
         ContainerPort(80, "UDP", "serve-80-udp"), ContainerPort(81, "UDP", "serve-81-udp"))


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World()
    try:
        yield w.build(LOCAL)
    finally:
        w.close()


def model_pods(world: World) -> list[Pod]:
    pods = [
        Pod(key.split("/")[0], key.split("/")[1], labels_of({"pod": key.split("/")[1]}), PORTS, ep.ips, "n1")
        for key, ep in world.pods.items()
    ]
    pods.append(Pod("z", "r", labels_of({"pod": "r"}), PORTS, (REMOTE_POD_IP,), "n2"))
    return pods


NAMESPACES = {n: Namespace(n, labels_of({"ns": n, "kubernetes.io/metadata.name": n})) for n in "xyz"}
ALL = LabelSelector()
DENY_X = NetworkPolicy("x", "deny", ALL, frozenset({"Ingress"}))
ALLOW_B_TO_XA = NetworkPolicy("x", "allow-b", LabelSelector(labels_of({"pod": "a"})), frozenset({"Ingress"}), ingress=(
    PolicyRule(ports=(PolicyPort("TCP", 80),),
               peers=(PolicyPeer(pod_selector=LabelSelector(labels_of({"pod": "b"})), namespace_selector=ALL),)),))
EGRESS_Y = NetworkPolicy("y", "egress", ALL, frozenset({"Egress"}), egress=(
    PolicyRule(ports=(PolicyPort("UDP", 80, 81),), peers=(PolicyPeer(ip_block=IPBlock("10.244.2.0/24")),)),))
NAMED_FROM_NODES = NetworkPolicy("x", "from-nodes", ALL, frozenset({"Ingress"}), ingress=(
    PolicyRule(ports=(PolicyPort("TCP", "serve-81-tcp"),),
               peers=(PolicyPeer(ip_block=IPBlock("192.168.77.0/24", ("192.168.77.128/25",))),)),))
FROM_REMOTE_POD = NetworkPolicy("y", "from-r", ALL, frozenset({"Ingress"}), ingress=(
    PolicyRule(peers=(PolicyPeer(pod_selector=LabelSelector(labels_of({"pod": "r"})),
                                 namespace_selector=LabelSelector(labels_of({"ns": "z"}))),)),))

# The admin tiers (AdminNetworkPolicy, BaselineAdminNetworkPolicy) around the NetworkPolicies above.
def _anp(name: str, priority: int, subject: AdminSubject, *, ingress: tuple[AdminRule, ...] = (),
         egress: tuple[AdminRule, ...] = ()) -> AdminNetworkPolicy:
    return AdminNetworkPolicy(name, priority, subject, ingress, egress)


NS_X = AdminSubject(LabelSelector(labels_of({"ns": "x"})))
FROM_Y = AdminPeer(namespace_selector=LabelSelector(labels_of({"ns": "y"})))
PASS_Y_THEN_DENY = [
    _anp("pass-y", 1, NS_X, ingress=(AdminRule("Pass", (FROM_Y,)),)),
    _anp("deny-rest", 2, NS_X, ingress=(AdminRule("Deny", (AdminPeer(namespace_selector=ALL),),
                                                  (AdminPort("TCP", 80), AdminPort(None, name="serve-80-udp"))),)),
]
DENY_REMOTE_EGRESS = _anp("no-remote", 5, AdminSubject(ALL), egress=(
    AdminRule("Allow", (AdminPeer(networks=("10.244.2.10/32",)),), (AdminPort("UDP", 80, 81),)),
    AdminRule("Deny", (AdminPeer(networks=("10.244.2.0/24",)),)),
))
BASELINE_Y = BaselineAdminNetworkPolicy(AdminSubject(LabelSelector(labels_of({"ns": "y"}))), ingress=(
    AdminRule("Allow", (AdminPeer(namespace_selector=ALL, pod_selector=LabelSelector(labels_of({"pod": "b"}))),)),
    AdminRule("Deny", (AdminPeer(namespace_selector=ALL),)),
))

CASES: dict[str, list[Any]] = {
    "no policy": [],
    "default deny in x": [DENY_X],
    "x/a also from pod=b anywhere on tcp/80": [DENY_X, ALLOW_B_TO_XA],
    "y egress only udp 80-81 to 10.244.2.0/24": [DENY_X, ALLOW_B_TO_XA, EGRESS_Y],
    "named port from the node block": [NAMED_FROM_NODES, EGRESS_Y],
    "y ingress from z/r only": [FROM_REMOTE_POD],
    "ANP pass from y to x's NetworkPolicy, deny the rest on tcp/80 and the udp port named serve-80-udp":
        [DENY_X, ALLOW_B_TO_XA, *PASS_Y_THEN_DENY],
    "ANP egress to the remote node's block: allow udp 80-81 to its pod, deny the rest": [DENY_REMOTE_EGRESS],
    "baseline in y: pod=b in, everyone else out; a NetworkPolicy in x keeps x out of it": [BASELINE_Y, DENY_X],
    "baseline and ANPs together": [BASELINE_Y, *PASS_Y_THEN_DENY, DENY_REMOTE_EGRESS, EGRESS_Y],
    "back to none": [],
}


def _split(models: list[Any]) -> dict[str, Any]:
    baselines = [m for m in models if isinstance(m, BaselineAdminNetworkPolicy)]
    return {"policies": [m for m in models if isinstance(m, NetworkPolicy)],
            "admin_policies": [m for m in models if isinstance(m, AdminNetworkPolicy)],
            "baseline": baselines[0] if baselines else None}


def expected(snapshot: Snapshot, src: str, dst: str, port: int, protocol: str, src_local: bool,
             dst_local: bool) -> bool:
    verdict = evaluate(snapshot, src, dst, port, protocol)  # type: ignore[arg-type]
    # This node enforces the egress of its own pods and the ingress of its own pods.
    return (verdict.egress.allowed or not src_local) and (verdict.ingress.allowed or not dst_local)


def test_packets_agree_with_the_evaluator_case_after_case(world: World) -> None:
    enforcer = Enforcer(lambda script: run_in_netns(f"/run/netns/{world.node}", nft_apply, script))
    pods = model_pods(world)
    remote = world.remote
    assert remote is not None
    sources: list[tuple[Endpoint, str, str | None, bool]] = [
        (ep, ip, None, True) for ep in world.pods.values() for ip in ep.ips
    ]
    sources += [(remote, REMOTE_POD_IP, REMOTE_POD_IP, False), (remote, REMOTE_NODE_IP, REMOTE_NODE_IP, False)]
    destinations = [(ip, True) for ep in world.pods.values() for ip in ep.ips] + [(REMOTE_POD_IP, False)]
    kinds = [(80, "TCP"), (81, "TCP"), (80, "UDP")]
    failures = []
    for name, models in CASES.items():
        split = _split(models)
        enforcer.enforce(compile_node(NodeView("n1", NAMESPACES, pods, **split)))
        snapshot = Snapshot(tuple(NAMESPACES.values()), tuple(pods), tuple(split["policies"]),
                            (Node("n1", (NODE_IP, "10.244.1.1")), Node("n2", (REMOTE_NODE_IP,))),
                            tuple(split["admin_policies"]), split["baseline"])
        probes = [
            (src_ep, src_ip, bind, src_local, dst_ip, dst_local, port, proto)
            for src_ep, src_ip, bind, src_local in sources
            for dst_ip, dst_local in destinations
            for port, proto in kinds
            if (":" in src_ip) == (":" in dst_ip) and src_ip != dst_ip and (src_local or dst_local)
        ]
        from tests.policy.world import parallel
        got = parallel([
            lambda p=p: world.probe(p[0], p[4], p[6], p[7], src_ip=p[2]) for p in probes  # type: ignore[misc]
        ])
        for p, passed in zip(probes, got, strict=True):
            want = expected(snapshot, p[1], p[4], p[6], p[7], p[3], p[5])
            if passed != want:
                failures.append(f"{name}: {p[1]} -> {p[4]} {p[7]}/{p[6]}: got {passed}, evaluator says {want}")
    assert failures == []


def test_the_node_always_reaches_its_pods(world: World) -> None:
    enforcer = Enforcer(lambda script: run_in_netns(f"/run/netns/{world.node}", nft_apply, script))
    enforcer.enforce(compile_node(NodeView("n1", NAMESPACES, model_pods(world), [DENY_X])))
    node = Endpoint("node", world.node, ("10.244.1.1",))
    try:
        assert world.probe(node, world.pods["x/a"].ips[0], 80, "TCP")
        remote = world.remote
        assert remote is not None
        assert not world.probe(remote, world.pods["x/a"].ips[0], 80, "TCP", src_ip=REMOTE_NODE_IP)
    finally:
        enforcer.enforce(compile_node(NodeView("n1", NAMESPACES, model_pods(world), [])))
