"""The exact text ``pycni policy explain`` prints for a verdict."""

from __future__ import annotations

from pycni.policy.evaluate import Node, Snapshot, evaluate
from pycni.policy.explain import explain, peer_text, port_text
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
    Protocol,
    Requirement,
    labels_of,
)


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(labels_of(labels))


NAMESPACES = (Namespace("x", labels_of({"ns": "x"})), Namespace("y", labels_of({"ns": "y"})))
NODES = (Node("n1", ("192.168.50.11", "10.244.1.0")), Node("n2", ("192.168.50.12", "10.244.2.0")))
XA = Pod("x", "a", labels_of({"pod": "a"}), (ContainerPort(80, "TCP", "http"),), ("10.244.1.10",), "n1")
XB = Pod("x", "b", labels_of({"pod": "b"}), (), ("10.244.2.10",), "n2")
YA = Pod("y", "a", labels_of({"pod": "a"}), (), ("10.244.1.20",), "n1")
ALLOW = NetworkPolicy(
    "x",
    "allow",
    sel(pod="a"),
    frozenset({"Ingress"}),
    ingress=(
        PolicyRule((PolicyPort("TCP", 80),), (PolicyPeer(sel(pod="a"), sel(ns="x")),)),
        PolicyRule((PolicyPort("TCP", "http"), PolicyPort("UDP", 53)), (PolicyPeer(sel(pod="b")),)),
        PolicyRule((PolicyPort("TCP", 8000, 9000),), (PolicyPeer(ip_block=IPBlock("10.0.0.0/8", ("10.244.0.0/16",))),)),
    ),
)
DENY_ALL = NetworkPolicy("x", "deny-all", LabelSelector(), frozenset({"Ingress", "Egress"}))


def text(*policies: NetworkPolicy, src: Pod | str, dst: Pod | str, port: int, protocol: Protocol = "TCP") -> str:
    snapshot = Snapshot(NAMESPACES, (XA, XB, YA), policies, NODES)
    return explain(evaluate(snapshot, src, dst, port, protocol))


def test_not_isolated() -> None:
    assert text(ALLOW, src=XA, dst=XB, port=80) == (
        "x/a (10.244.1.10) -> x/b (10.244.2.10) TCP/80: allowed\n"
        "egress from x/a (node n1): allowed\n"
        "  not isolated: no policy selects x/a for egress\n"
        "ingress to x/b (node n2): allowed\n"
        "  not isolated: no policy selects x/b for ingress"
    )


def test_allowed_names_the_rule_peer_and_port() -> None:
    assert text(ALLOW, src=XB, dst=XA, port=80) == (
        "x/b (10.244.2.10) -> x/a (10.244.1.10) TCP/80: allowed\n"
        "egress from x/b (node n2): allowed\n"
        "  not isolated: no policy selects x/b for egress\n"
        "ingress to x/a (node n1): allowed\n"
        "  isolated by x/allow\n"
        "  allowed by x/allow ingress[1] from[0] ports[0]: TCP/http, UDP/53 from pods with pod=b in namespace x"
    )


def test_allowed_by_a_rule_with_empty_lists() -> None:
    anything = NetworkPolicy("x", "open", sel(pod="a"), frozenset({"Ingress"}), ingress=(PolicyRule(),))
    assert text(anything, src=YA, dst=XA, port=81).splitlines()[-1] == (
        "  allowed by x/open ingress[0] all peers all ports: every port from anywhere"
    )


def test_denied_names_the_nearest_misses_peer_and_port() -> None:
    assert text(ALLOW, src=YA, dst=XA, port=80) == (
        "y/a (10.244.1.20) -> x/a (10.244.1.10) TCP/80: denied\n"
        "egress from y/a (node n1): allowed\n"
        "  not isolated: no policy selects y/a for egress\n"
        "ingress to x/a (node n1): denied\n"
        "  isolated by x/allow\n"
        "  nearest misses:\n"
        "    x/allow ingress[0] allows TCP/80 from pods with pod=a in namespaces with ns=x;"
        " the source y/a has pod=a in namespace y with ns=y\n"
        "    x/allow ingress[1] allows TCP/http, UDP/53 from pods with pod=b in namespace x; the source y/a has pod=a"
    )
    assert text(ALLOW, src=XB, dst=XA, port=81).splitlines()[-1] == (
        "    x/allow ingress[1] allows TCP/http, UDP/53 from pods with pod=b in namespace x;"
        " the connection is TCP/81 (http is TCP/80 on x/a)"
    )


def test_ip_block_miss_shows_the_address() -> None:
    assert text(ALLOW, src=YA, dst=XA, port=8080).splitlines()[-1] == (
        "    x/allow ingress[2] allows TCP/8000-9000 from 10.0.0.0/8 except 10.244.0.0/16;"
        " the source y/a has pod=a and address 10.244.1.20"
    )


def test_default_deny_names_the_isolating_policies() -> None:
    assert text(ALLOW, DENY_ALL, src=XB, dst=XA, port=12, protocol="SCTP") == (
        "x/b (10.244.2.10) -> x/a (10.244.1.10) SCTP/12: denied\n"
        "egress from x/b (node n2): denied\n"
        "  isolated by x/deny-all\n"
        "  x/deny-all allows no egress\n"
        "ingress to x/a (node n1): denied\n"
        "  isolated by x/allow, x/deny-all\n"
        "  x/deny-all allows no ingress\n"
        "  nearest misses:\n"
        "    x/allow ingress[1] allows TCP/http, UDP/53 from pods with pod=b in namespace x;"
        " the connection is SCTP/12"
    )


def test_denied_without_a_near_miss() -> None:
    assert text(ALLOW, src=YA, dst=XA, port=54, protocol="UDP").splitlines()[-1] == (
        "  no ingress rule matches the peer or the port"
    )


def test_own_node_and_other_nodes() -> None:
    assert text(DENY_ALL, src="192.168.50.11", dst=XA, port=80) == (
        "192.168.50.11 (node n1) -> x/a (10.244.1.10) TCP/80: allowed\n"
        "egress from 192.168.50.11 (node n1): allowed\n"
        "  not checked: 192.168.50.11 is node n1's address; nodes are never pods\n"
        "ingress to x/a (node n1): allowed\n"
        "  not checked: from its own node n1 (a pod's node always reaches it)"
    )
    assert text(ALLOW, src="10.244.2.0", dst=XA, port=80).splitlines()[-1] == (
        "    x/allow ingress[1] allows TCP/http, UDP/53 from pods with pod=b in namespace x;"
        " the source 10.244.2.0 is node n2's address, not a pod"
    )


def test_outside_destination() -> None:
    assert text(DENY_ALL, src=XA, dst="203.0.113.7", port=443) == (
        "x/a (10.244.1.10) -> 203.0.113.7 TCP/443: denied\n"
        "egress from x/a (node n1): denied\n"
        "  isolated by x/deny-all\n"
        "  x/deny-all allows no egress\n"
        "ingress to 203.0.113.7: allowed\n"
        "  not checked: 203.0.113.7 is not a pod (outside the cluster)"
    )


def test_peer_and_port_phrases() -> None:
    assert peer_text(PolicyPeer(pod_selector=LabelSelector()), "x") == "all pods in namespace x"
    assert peer_text(PolicyPeer(namespace_selector=LabelSelector()), "x") == "all pods in all namespaces"
    assert peer_text(PolicyPeer(sel(pod="b"), LabelSelector()), "x") == "pods with pod=b in all namespaces"
    not_y = LabelSelector((), (Requirement("ns", "NotIn", ("y",)),))
    assert peer_text(PolicyPeer(namespace_selector=not_y), "x") == "all pods in namespaces with ns notin (y)"
    assert peer_text(PolicyPeer(ip_block=IPBlock("10.0.0.0/8")), "x") == "10.0.0.0/8"
    assert port_text(PolicyPort("UDP")) == "every UDP port"
    assert port_text(PolicyPort("SCTP", 80, 81)) == "SCTP/80-81"


def test_host_network_pods_are_named_as_nodes() -> None:
    probe = Pod("kube-system", "probe", (), (), ("192.168.50.12",), "n2", host_network=True)
    snapshot = Snapshot(NAMESPACES, (XA, XB, YA, probe), (ALLOW,), NODES)
    assert explain(evaluate(snapshot, probe, XA, 80, "TCP")).splitlines()[:3] == [
        "kube-system/probe (node n2) -> x/a (10.244.1.10) TCP/80: denied",
        "egress from kube-system/probe (node n2): allowed",
        "  not checked: kube-system/probe uses node n2's host network; host-network pods are nodes",
    ]
    assert explain(evaluate(snapshot, probe, XA, 80, "TCP")).splitlines()[-1] == (
        "    x/allow ingress[1] allows TCP/http, UDP/53 from pods with pod=b in namespace x;"
        " the source kube-system/probe is on node n2's host network, not a pod"
    )
