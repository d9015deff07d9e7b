"""AdminNetworkPolicy and BaselineAdminNetworkPolicy: validation, the evaluator's tiers, the compiled chains,
the store, explain and the deny log."""

from __future__ import annotations

from typing import Any

import pytest

from pycni.net.firewall.nflog import LoggedPacket
from pycni.policy.admin_model import (
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    BaselineAdminNetworkPolicy,
)
from pycni.policy.admin_rules import baseline_chain_name, tier_chain_name
from pycni.policy.compile import NodeView, compile_node, pod_chain_name
from pycni.policy.denylog import context_of, denied_record
from pycni.policy.evaluate import Node, Snapshot, evaluate
from pycni.policy.explain import explain
from pycni.policy.model import ContainerPort, LabelSelector, Namespace, NetworkPolicy, Pod, PolicyRule, labels_of
from pycni.policy.store import ADMIN_NETWORK_POLICY, BASELINE_ADMIN_NETWORK_POLICY, ObjectStore
from pycni.policy.validate import ValidationError, to_manifest, to_model
from pycni.testing.kv import MemoryKV

API = "policy.networking.k8s.io/v1alpha1"
ALL = LabelSelector()


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(labels_of(labels))


def anp(spec: dict[str, Any], name: str = "a") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "AdminNetworkPolicy", "metadata": {"name": name}, "spec": spec}


def error_of(obj: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        to_model(obj)
    return str(caught.value)


# -- validation ----------------------------------------------------------------------------------

SUBJECT = {"namespaces": {}}
FROM_ALL = [{"namespaces": {}}]

INVALID = [
    ("priority above 1000", anp({"priority": 1001, "subject": SUBJECT}),
     'AdminNetworkPolicy "a" is invalid: spec.priority: Invalid value: 1001: '
     "spec.priority in body should be less than or equal to 1000"),
    ("priority missing", anp({"subject": SUBJECT}), 'AdminNetworkPolicy "a" is invalid: spec.priority: Required value'),
    ("two subjects", anp({"priority": 1, "subject": {"namespaces": {}, "pods": {}}}),
     'AdminNetworkPolicy "a" is invalid: spec.subject: Too many: 2: must have at most 1 items'),
    ("pods subject without podSelector", anp({"priority": 1, "subject": {"pods": {"namespaceSelector": {}}}}),
     'AdminNetworkPolicy "a" is invalid: spec.subject.pods.podSelector: Required value'),
    ("unknown action", anp({"priority": 1, "subject": SUBJECT, "ingress": [{"action": "Reject", "from": FROM_ALL}]}),
     'AdminNetworkPolicy "a" is invalid: spec.ingress[0].action: Unsupported value: "Reject": '
     'supported values: "Allow", "Deny", "Pass"'),
    ("empty from", anp({"priority": 1, "subject": SUBJECT, "ingress": [{"action": "Deny", "from": []}]}),
     'AdminNetworkPolicy "a" is invalid: spec.ingress[0].from: Invalid value: 0: '
     "spec.ingress[0].from in body should have at least 1 items"),
    ("networks in ingress", anp({"priority": 1, "subject": SUBJECT,
                                 "ingress": [{"action": "Deny", "from": [{"networks": ["10.0.0.0/8"]}]}]}),
     'AdminNetworkPolicy "a" is invalid: spec.ingress[0].from[0].networks: Unsupported value: "networks": '
     'supported values: "namespaces", "pods"'),
    ("bad cidr", anp({"priority": 1, "subject": SUBJECT,
                      "egress": [{"action": "Deny", "to": [{"networks": ["10.0.0.300/8"]}]}]}),
     'AdminNetworkPolicy "a" is invalid: spec.egress[0].to[0].networks[0]: Invalid value: "10.0.0.300/8": '
     "Invalid CIDR format provided"),
    ("nodes peer", anp({"priority": 1, "subject": SUBJECT, "egress": [{"action": "Deny", "to": [{"nodes": {}}]}]}),
     'AdminNetworkPolicy "a" is invalid: spec.egress[0].to[0].nodes: Forbidden: pycni does not implement the '
     "experimental nodes peer; select node addresses with networks"),
    ("named port with networks", anp({"priority": 1, "subject": SUBJECT, "egress": [
        {"action": "Allow", "to": [{"networks": ["10.0.0.0/8"]}], "ports": [{"namedPort": "http"}]}]}),
     'AdminNetworkPolicy "a" is invalid: spec.egress[0]: Invalid value: "object": networks/nodes/domainNames peer '
     "cannot be set with namedPorts since there are no namedPorts for networks/nodes/domainNames"),
    ("port range backwards", anp({"priority": 1, "subject": SUBJECT, "ingress": [
        {"action": "Deny", "from": FROM_ALL, "ports": [{"portRange": {"start": 90, "end": 80}}]}]}),
     'AdminNetworkPolicy "a" is invalid: spec.ingress[0].ports[0].portRange: Invalid value: "object": '
     "Start port must be less than End port"),
    ("port two forms", anp({"priority": 1, "subject": SUBJECT, "ingress": [
        {"action": "Deny", "from": FROM_ALL, "ports": [{"namedPort": "http", "portNumber": {"port": 80}}]}]}),
     'AdminNetworkPolicy "a" is invalid: spec.ingress[0].ports[0]: Too many: 2: must have at most 1 items'),
    ("port number range", anp({"priority": 1, "subject": SUBJECT, "ingress": [
        {"action": "Deny", "from": FROM_ALL, "ports": [{"portNumber": {"port": 70000}}]}]}),
     'AdminNetworkPolicy "a" is invalid: spec.ingress[0].ports[0].portNumber.port: Invalid value: 70000: '
     "spec.ingress[0].ports[0].portNumber.port in body should be less than or equal to 65535"),
    ("baseline Pass", {"apiVersion": API, "kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "default"},
                       "spec": {"subject": SUBJECT, "egress": [{"action": "Pass", "to": FROM_ALL}]}},
     'BaselineAdminNetworkPolicy "default" is invalid: spec.egress[0].action: Unsupported value: "Pass": '
     'supported values: "Allow", "Deny"'),
    ("baseline name", {"apiVersion": API, "kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "mine"},
                       "spec": {"subject": SUBJECT}},
     'BaselineAdminNetworkPolicy "mine" is invalid: metadata.name: Invalid value: "mine": Only one baseline admin '
     'network policy with metadata.name="default" can be created in the cluster'),
]


@pytest.mark.parametrize(("case", "obj", "message"), INVALID, ids=[case for case, _, _ in INVALID])
def test_invalid_admin_objects_are_refused_naming_the_field(case: str, obj: dict[str, Any], message: str) -> None:
    assert error_of(obj) == message


def test_valid_objects_round_trip_with_defaults_written_out() -> None:
    pods_subject = {"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"a": "b"}}}}
    obj = anp({"priority": 3, "subject": pods_subject,
               "ingress": [{"name": "r", "action": "Pass", "from": [{"namespaces": {}}],
                            "ports": [{"portNumber": {"port": 80}}, {"namedPort": "http"},
                                      {"portRange": {"protocol": "UDP", "start": 1, "end": 9}}]}],
               "egress": [{"action": "Deny", "to": [{"networks": ["10.0.0.0/8", "fd00::/8"]}]}]})
    model = to_model(obj)
    assert isinstance(model, AdminNetworkPolicy)
    assert model.ingress[0].ports == (AdminPort("TCP", 80), AdminPort(None, name="http"), AdminPort("UDP", 1, 9))
    manifest = to_manifest(model)
    assert manifest["spec"]["ingress"][0]["ports"][0] == {"portNumber": {"protocol": "TCP", "port": 80}}
    assert to_model(manifest) == model


def test_the_store_keeps_them_cluster_scoped() -> None:
    store = ObjectStore(MemoryKV(), "/t")
    models = [to_model(anp({"priority": 1, "subject": SUBJECT}, "ops")),
              to_model({"apiVersion": API, "kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "default"},
                        "spec": {"subject": SUBJECT}})]
    assert [a.outcome for a in store.apply(models)] == ["created", "created"]
    assert store.key(store.get(ADMIN_NETWORK_POLICY, "ignored", "ops").ref) == "/t/k8s/adminnetworkpolicies/ops"
    assert [o.ref.name for o in store.list(BASELINE_ADMIN_NETWORK_POLICY)] == ["default"]
    assert store.list("namespaces") == [], "cluster-scoped objects need no namespace"


# -- the evaluator's tiers -------------------------------------------------------------------------

NAMESPACES = (Namespace("x", labels_of({"ns": "x"})), Namespace("y", labels_of({"ns": "y"})))
XA = Pod("x", "a", labels_of({"pod": "a"}), (ContainerPort(8080, "TCP", "http"),), ("10.244.1.10",), "n1")
XB = Pod("x", "b", labels_of({"pod": "b"}), (), ("10.244.1.11",), "n1")
YA = Pod("y", "a", labels_of({"pod": "a"}), (ContainerPort(9090, "UDP", "http"),), ("10.244.2.10",), "n2")
NODES = (Node("n1", ("192.168.50.11",)), Node("n2", ("192.168.50.12",)))
NS_X = AdminSubject(sel(ns="x"))
FROM_Y = AdminPeer(sel(ns="y"))
DENY_NP = NetworkPolicy("x", "deny", ALL, frozenset({"Ingress"}))
ALLOW_NP = NetworkPolicy("x", "allow", ALL, frozenset({"Ingress"}), ingress=(PolicyRule(),))


def world(*admin: AdminNetworkPolicy, baseline: BaselineAdminNetworkPolicy | None = None,
          policies: tuple[NetworkPolicy, ...] = ()) -> Snapshot:
    return Snapshot(NAMESPACES, (XA, XB, YA), policies, NODES, admin, baseline)


def test_lower_priority_number_wins_and_ties_go_by_name() -> None:
    deny = AdminNetworkPolicy("b-deny", 5, NS_X, ingress=(AdminRule("Deny", (FROM_Y,)),))
    allow = AdminNetworkPolicy("a-allow", 5, NS_X, ingress=(AdminRule("Allow", (FROM_Y,)),))
    verdict = evaluate(world(deny, allow), "y/a", "x/a", 80, "TCP")
    assert verdict.allowed and verdict.ingress.tier is not None and verdict.ingress.tier.policy == "anp:a-allow"
    first = AdminNetworkPolicy("b-deny", 4, NS_X, ingress=(AdminRule("Deny", (FROM_Y,)),))
    assert not evaluate(world(first, allow), "y/a", "x/a", 80, "TCP").allowed


def test_pass_goes_to_networkpolicy_and_then_to_the_baseline_only_without_one() -> None:
    passing = AdminNetworkPolicy("pass", 1, NS_X, ingress=(AdminRule("Pass", (FROM_Y,)),))
    deny_after = AdminNetworkPolicy("deny", 2, NS_X, ingress=(AdminRule("Deny", (FROM_Y,)),))
    baseline = BaselineAdminNetworkPolicy(NS_X, ingress=(AdminRule("Deny", (FROM_Y,)),))
    only_pass = evaluate(world(passing, deny_after), "y/a", "x/a", 80, "TCP")
    assert only_pass.allowed and only_pass.ingress.passed is not None and only_pass.ingress.status == "not-isolated"
    assert not evaluate(world(passing, deny_after, policies=(DENY_NP,)), "y/a", "x/a", 80, "TCP").allowed
    to_baseline = evaluate(world(passing, baseline=baseline), "y/a", "x/a", 80, "TCP")
    assert not to_baseline.allowed and to_baseline.ingress.tier is not None
    assert evaluate(world(passing, baseline=baseline, policies=(ALLOW_NP,)), "y/a", "x/a", 80, "TCP").allowed


def test_named_ports_resolve_on_the_destination_with_its_protocol() -> None:
    deny_http = AdminNetworkPolicy("http", 1, AdminSubject(ALL), ingress=(
        AdminRule("Deny", (AdminPeer(ALL),), (AdminPort(None, name="http"),)),))
    snapshot = world(deny_http)
    assert not evaluate(snapshot, "x/b", "x/a", 8080, "TCP").allowed
    assert evaluate(snapshot, "x/b", "x/a", 8080, "UDP").allowed
    assert not evaluate(snapshot, "x/b", "y/a", 9090, "UDP").allowed
    assert evaluate(snapshot, "x/b", "y/a", 8080, "TCP").allowed


def test_networks_match_any_address_selectors_only_pods() -> None:
    deny = AdminNetworkPolicy("net", 1, NS_X, egress=(AdminRule("Deny", (AdminPeer(networks=("192.168.50.0/24",)),)),
                                                      AdminRule("Deny", (AdminPeer(ALL),))))
    snapshot = world(deny)
    assert not evaluate(snapshot, "x/a", "192.168.50.12", 80, "TCP").allowed  # another node's address
    assert evaluate(snapshot, "x/a", "192.168.50.11", 80, "TCP").allowed  # its own node is never checked
    assert evaluate(snapshot, "x/a", "203.0.113.9", 80, "TCP").allowed  # outside: not a pod, not in the network
    assert not evaluate(snapshot, "x/a", "y/a", 80, "TCP").allowed


# -- compiled chains --------------------------------------------------------------------------------

def test_pods_with_the_same_anps_share_one_tier_chain_and_pass_returns() -> None:
    passing = AdminNetworkPolicy("pass", 1, NS_X, ingress=(AdminRule("Pass", (FROM_Y,), (AdminPort("TCP", 80),)),))
    deny = AdminNetworkPolicy("deny", 2, NS_X, ingress=(AdminRule("Deny", (AdminPeer(ALL),)),))
    baseline = BaselineAdminNetworkPolicy(AdminSubject(ALL), egress=(AdminRule("Deny", (FROM_Y,)),))
    view = NodeView("n1", {n.name: n for n in NAMESPACES}, [XA, XB, YA], [ALLOW_NP], [deny, passing], baseline)
    rs = compile_node(view)
    tier = tier_chain_name(["anp:pass", "anp:deny"], "Ingress")
    assert rs.chains[pod_chain_name("x/a", "Ingress")].rules[0] == f"jump {tier}"
    assert rs.chains[pod_chain_name("x/b", "Ingress")].rules[0] == f"jump {tier}"
    rules = rs.chains[tier].rules
    assert rules[0].endswith('tcp dport 80 counter return comment "anp:pass ingress[0] peer[0]"')
    assert "log prefix \"pycni T I anp:deny \"" in rules[1] and rules[2].endswith(
        'counter drop comment "anp:deny ingress[0] peer[0]"')
    assert rs.chains[pod_chain_name("x/a", "Egress")].rules == (f"jump {baseline_chain_name('Egress')}",)
    assert "y/a" not in {k for k, _ in rs.maps["ingress_v4"].elements}  # y/a is on n2


def test_an_anp_edit_touches_its_tier_chain_only() -> None:
    deny = AdminNetworkPolicy("deny", 2, NS_X, ingress=(AdminRule("Deny", (FROM_Y,)),))
    view = NodeView("n1", {n.name: n for n in NAMESPACES}, [XA, XB, YA], [ALLOW_NP], [deny])
    before = compile_node(view)
    edited = AdminNetworkPolicy("deny", 2, NS_X, ingress=(AdminRule("Allow", (FROM_Y,)),))
    after = compile_node(NodeView(view.node, view.namespaces, view.pods, view.policies, [edited]))
    changed = {name for name in before.chains.keys() | after.chains.keys()
               if before.chains.get(name) != after.chains.get(name)}
    assert changed == {tier_chain_name(["anp:deny"], "Ingress")}


# -- explain and the deny log ---------------------------------------------------------------------------

def test_explain_names_the_deciding_admin_rule() -> None:
    deny = AdminNetworkPolicy("no-y", 7, NS_X, ingress=(AdminRule("Deny", (FROM_Y,), name="block-y"),))
    text = explain(evaluate(world(deny, policies=(ALLOW_NP,)), "y/a", "x/a", 80, "TCP"))
    assert "  denied by anp:no-y ingress[0] (block-y) (AdminNetworkPolicy priority 7, Deny)" in text
    assert "AdminNetworkPolicies decide before NetworkPolicy" in text


def test_a_tier_deny_is_logged_with_the_pod_and_the_policy() -> None:
    context = context_of("n1", {}, [XA, XB, YA], [])
    packet = LoggedPacket(2, "pycni T I anp:no-y ", 4, "10.244.2.10", "10.244.1.10", "TCP", 40000, 80, 1.0)
    record = denied_record(packet, context, 0)
    assert record is not None
    assert (record["pod"], record["srcPod"], record["deniedBy"], record["direction"]) == (
        "x/a", "y/a", "anp:no-y", "ingress")
