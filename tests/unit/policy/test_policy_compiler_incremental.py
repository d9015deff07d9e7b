"""The Compiler that keeps what did not change gives exactly compile_node's answer, view after view."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from pycni.policy.admin_model import (
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    BaselineAdminNetworkPolicy,
)
from pycni.policy.compile import Compiler, NodeView, compile_node
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
    Requirement,
    labels_of,
)

NAMES = ("a", "b", "c")
NODES = ("n1", "n2")


def namespace(name: str, team: str) -> Namespace:
    return Namespace(name, labels_of({"team": team, "kubernetes.io/metadata.name": name}))


def pod(ns: str, index: int, app: str, node: str, six: bool = False) -> Pod:
    ips = (f"10.244.{index // 200}.{index % 200 + 10}",) + ((f"fd00::{index + 10:x}",) if six else ())
    port = ContainerPort(80 + index % 3, "TCP", "http")
    return Pod(ns, f"p{index}", labels_of({"app": app}), (port,), ips, node)


POLICIES = [
    NetworkPolicy("a", "deny", LabelSelector(), frozenset({"Ingress", "Egress"})),
    NetworkPolicy("a", "web", LabelSelector(labels_of({"app": "web"})), frozenset({"Ingress"}), ingress=(
        PolicyRule(ports=(PolicyPort("TCP", "http"), PolicyPort("UDP", 53)),
                   peers=(PolicyPeer(pod_selector=LabelSelector(labels_of({"app": "db"})),
                                     namespace_selector=LabelSelector(labels_of({"team": "t1"}))),)),)),
    NetworkPolicy("b", "eg", LabelSelector(match_expressions=(Requirement("app", "NotIn", ("db",)),)),
                  frozenset({"Egress"}), egress=(
        PolicyRule(ports=(PolicyPort("TCP", "http"),)),
        PolicyRule(peers=(PolicyPeer(ip_block=IPBlock("10.244.0.0/16", ("10.244.1.0/24",))),),
                   ports=(PolicyPort("TCP", "http"),)),
        PolicyRule(peers=(PolicyPeer(pod_selector=LabelSelector(labels_of({"app": "web"}))),)))),
    NetworkPolicy("c", "from-a", LabelSelector(), frozenset({"Ingress"}), ingress=(
        PolicyRule(peers=(PolicyPeer(namespace_selector=LabelSelector(labels_of({"team": "t0"}))),)),)),
]

ADMIN = [
    AdminNetworkPolicy("ops", 10, AdminSubject(LabelSelector(labels_of({"team": "t0"}))), ingress=(
        AdminRule("Pass", (AdminPeer(LabelSelector(), LabelSelector(labels_of({"app": "db"}))),),
                  (AdminPort(None, name="http"),)),
        AdminRule("Deny", (AdminPeer(LabelSelector()),)))),
    AdminNetworkPolicy("egress", 20, AdminSubject(LabelSelector(), LabelSelector(labels_of({"app": "web"}))),
                       egress=(AdminRule("Allow", (AdminPeer(LabelSelector(labels_of({"team": "t1"})),
                                                             LabelSelector(labels_of({"app": "cache"}))),),
                                         (AdminPort(None, name="http"), AdminPort("UDP", 53, 55))),
                               AdminRule("Deny", (AdminPeer(networks=("10.244.0.0/24",)),)))),
]
BASELINE = BaselineAdminNetworkPolicy(AdminSubject(LabelSelector()), ingress=(
    AdminRule("Allow", (AdminPeer(LabelSelector(), LabelSelector(labels_of({"app": "web"}))),)),
    AdminRule("Deny", (AdminPeer(LabelSelector()),))))

operations = st.lists(st.tuples(st.sampled_from(
    ["relabel", "move", "remove", "add", "six", "policy-on", "policy-off", "policy-edit", "ns-label", "anp-on",
     "anp-off", "anp-edit", "banp"]),
    st.integers(0, 29), st.integers(0, 5)), max_size=25)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_incremental_equals_fresh_compile(ops: list[tuple[str, int, int]]) -> None:
    namespaces = {n: namespace(n, f"t{i % 2}") for i, n in enumerate(NAMES)}
    pods = {i: pod(NAMES[i % 3], i, ("web", "db", "cache")[i % 3], NODES[i % 2]) for i in range(20)}
    policies = {p.key: p for p in POLICIES[:3]}
    admin: dict[str, AdminNetworkPolicy] = {}
    baseline: BaselineAdminNetworkPolicy | None = None
    compiler = Compiler()
    for op, i, j in ops:
        if op == "relabel" and i in pods:
            pods[i] = replace(pods[i], labels=labels_of({"app": ("web", "db", "cache")[j % 3]}))
        elif op == "move" and i in pods:
            pods[i] = replace(pods[i], node=NODES[j % 2])
        elif op == "remove":
            pods.pop(i, None)
        elif op == "add":
            pods[i] = pod(NAMES[j % 3], i, ("web", "db", "cache")[j % 3], NODES[j % 2])
        elif op == "six" and i in pods:
            pods[i] = pod(pods[i].namespace, i, dict(pods[i].labels)["app"], pods[i].node, six=True)
        elif op == "policy-on":
            p = POLICIES[j % len(POLICIES)]
            policies[p.key] = p
        elif op == "policy-off":
            policies.pop(POLICIES[j % len(POLICIES)].key, None)
        elif op == "policy-edit" and policies:
            p = sorted(policies.values(), key=lambda p: p.key)[j % len(policies)]
            policies[p.key] = replace(p, pod_selector=LabelSelector(labels_of({"app": ("web", "db")[i % 2]})))
        elif op == "ns-label":
            n = NAMES[j % 3]
            namespaces[n] = namespace(n, f"t{i % 2}")
        elif op == "anp-on":
            a = ADMIN[j % len(ADMIN)]
            admin[a.name] = a
        elif op == "anp-off":
            admin.pop(ADMIN[j % len(ADMIN)].name, None)
        elif op == "anp-edit" and admin:
            a = sorted(admin.values(), key=lambda a: a.name)[j % len(admin)]
            admin[a.name] = replace(a, priority=(a.priority + 15) % 40)
        elif op == "banp":
            baseline = None if baseline is not None else BASELINE
        view = NodeView("n1", dict(namespaces), list(pods.values()), list(policies.values()),
                        list(admin.values()), baseline)
        assert compiler.compile(view) == compile_node(view)
