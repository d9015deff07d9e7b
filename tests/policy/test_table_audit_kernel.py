"""The policy table audit (what pycni doctor's policy check runs) against a real kernel table."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pycni.net.firewall import nft
from pycni.net.netns import run_in_netns
from pycni.policy.admin_model import AdminNetworkPolicy, AdminPeer, AdminRule, AdminSubject
from pycni.policy.compile import NodeView, compile_node
from pycni.policy.enforcer import Enforcer
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
from pycni.policy.table_audit import differences, kernel_summary, ruleset_summary
from tests.support.netns import Netns, netns_factory

pytestmark = pytest.mark.root


@pytest.fixture
def make_netns() -> Iterator[Callable[[], Netns]]:
    yield from netns_factory("pycni-audit-")


def view() -> NodeView:
    ports = (ContainerPort(80, "TCP", "http"),)
    pods = [Pod("x", "a", labels_of({"app": "web"}), ports, ("10.244.1.10", "fd00::10"), "n1"),
            Pod("x", "b", labels_of({"app": "db"}), ports, ("10.244.1.11",), "n1"),
            Pod("y", "c", labels_of({"app": "web"}), ports, ("10.244.2.10",), "n2")]
    policy = NetworkPolicy("x", "web", LabelSelector(labels_of({"app": "web"})), frozenset({"Ingress", "Egress"}),
                           ingress=(PolicyRule(ports=(PolicyPort("TCP", "http"),),
                                               peers=(PolicyPeer(pod_selector=LabelSelector(labels_of({"app": "db"}))),
                                                      PolicyPeer(ip_block=IPBlock("10.0.0.0/8", ("10.1.0.0/16",))))),),
                           egress=(PolicyRule(ports=(PolicyPort("UDP", 53),)),))
    anp = AdminNetworkPolicy("ops", 1, AdminSubject(LabelSelector()), ingress=(
        AdminRule("Deny", (AdminPeer(LabelSelector(labels_of({"kubernetes.io/metadata.name": "y"}))),)),))
    namespaces = {n: Namespace(n, labels_of({"kubernetes.io/metadata.name": n})) for n in "xy"}
    return NodeView("n1", namespaces, pods, [policy], [anp])


def kernel(ns: Netns) -> dict[str, dict[str, int]]:
    return kernel_summary(run_in_netns(ns.path, nft.list_json, "table inet pycni_policy"))


def test_the_committed_table_matches_then_hand_edits_are_named(make_netns: Callable[[], Netns]) -> None:
    ns = make_netns()
    ruleset = compile_node(view())
    Enforcer(lambda script: run_in_netns(ns.path, nft.apply, script)).enforce(ruleset)
    expected = ruleset_summary(ruleset)
    assert differences(expected, kernel(ns)) == []

    pod_chain = next(name for name in ruleset.chains if name.startswith("pod_"))
    peer_set = next(name for name, s in ruleset.sets.items() if name.startswith("peer_") and s.elements)
    run_in_netns(ns.path, nft.apply, f"flush chain inet pycni_policy {pod_chain}\n"
                                     f"flush set inet pycni_policy {peer_set}\n"
                                     "add chain inet pycni_policy stray\n")
    found = differences(expected, kernel(ns))
    assert f"chain {pod_chain} holds 0 rules, the agent committed {expected['chains'][pod_chain]}" in found
    assert f"set {peer_set} holds 0 elements, the agent committed {expected['sets'][peer_set]}" in found
    assert "chain stray is not the agent's" in found
    assert len(found) == 3
