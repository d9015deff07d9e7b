"""pycni.policy.render: the normalised Kubernetes form of model objects, and the round trip through it."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pycni.policy.manifest import load_manifests
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
from pycni.policy.render import to_manifest
from pycni.policy.validate import to_model

ROUND_TRIP = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# -- golden forms ----------------------------------------------------------------------------------------------


def test_policy_defaults_are_explicit() -> None:
    policy = to_model(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "web", "namespace": "x", "labels": {"team": "a"}},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [
                    {"from": [{"namespaceSelector": {}}], "ports": [{"port": 80}, {"port": "dns", "protocol": "UDP"}]}
                ],
                "egress": [{}],
            },
        }
    )
    assert to_manifest(policy) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web", "namespace": "x", "labels": {"team": "a"}},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {
                    "ports": [{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": "dns"}],
                    "from": [{"namespaceSelector": {}}],
                }
            ],
            "egress": [{}],
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def test_default_deny_keeps_an_empty_selector() -> None:
    policy = NetworkPolicy("x", "deny", LabelSelector(), frozenset({"Egress", "Ingress"}))
    assert to_manifest(policy)["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_selector_and_ip_block_forms() -> None:
    peer = PolicyPeer(
        pod_selector=LabelSelector(match_expressions=(Requirement("a", "In", ("1", "2")), Requirement("b", "Exists")))
    )
    block = PolicyPeer(ip_block=IPBlock("10.0.0.0/8", ("10.1.0.0/16",)))
    policy = NetworkPolicy("x", "p", LabelSelector(), frozenset({"Egress"}), egress=(PolicyRule(peers=(peer, block)),))
    assert to_manifest(policy)["spec"]["egress"] == [
        {
            "to": [
                {
                    "podSelector": {
                        "matchExpressions": [
                            {"key": "a", "operator": "In", "values": ["1", "2"]},
                            {"key": "b", "operator": "Exists"},
                        ]
                    }
                },
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
            ]
        }
    ]


def test_namespace_form() -> None:
    ns = to_model({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labels": {"env": "prod"}}})
    assert to_manifest(ns) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "a", "labels": {"env": "prod", "kubernetes.io/metadata.name": "a"}},
    }


def test_pod_form() -> None:
    pod = Pod(
        "x",
        "web",
        (("app", "web"),),
        (ContainerPort(80, "TCP", "http"), ContainerPort(53, "UDP")),
        ips=("10.1.0.5", "fd00::5"),
        node="node-1",
    )
    assert to_manifest(pod) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "x", "labels": {"app": "web"}},
        "spec": {
            "nodeName": "node-1",
            "containers": [
                {
                    "name": "main",
                    "ports": [
                        {"name": "http", "containerPort": 80, "protocol": "TCP"},
                        {"containerPort": 53, "protocol": "UDP"},
                    ],
                }
            ],
        },
        "status": {"podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}, {"ip": "fd00::5"}]},
    }
    assert to_manifest(Pod("x", "bare")) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "namespace": "x"},
        "spec": {},
    }


def test_not_a_model_object() -> None:
    with pytest.raises(TypeError):
        to_manifest("pod")  # type: ignore[arg-type]


# -- the round trip, for every model to_model can produce ---------------------------------------------------------

dns_label = st.sampled_from(["a", "x", "default", "team-a", "0", "kube-system", "a" * 63])
dns_subdomain = st.lists(dns_label, min_size=1, max_size=3).map(".".join)
label_name = st.sampled_from(["app", "App", "k8s.io", "a_b", "tier-1", "9", "x" * 63])
label_key = st.one_of(label_name, st.tuples(dns_subdomain, label_name).map("/".join))
label_value = st.one_of(st.just(""), label_name)
labels = st.dictionaries(label_key, label_value, max_size=3).map(labels_of)
port_name = st.sampled_from(["http", "dns", "a", "grpc-web", "serve-80", "x" * 15, "8a"])
protocol = st.sampled_from(["TCP", "UDP", "SCTP"])


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    operator = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]))
    values: tuple[str, ...] = ()
    if operator in ("In", "NotIn"):
        values = tuple(sorted(draw(st.sets(label_value, min_size=1, max_size=3))))
    return Requirement(draw(label_key), operator, values)


selectors = st.builds(
    LabelSelector, match_labels=labels, match_expressions=st.lists(requirements(), max_size=2).map(tuple)
)


@st.composite
def networks(draw: st.DrawFn, inside: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None) -> Any:
    if inside is None:
        bits = draw(st.sampled_from([32, 128]))
        value = draw(st.integers(0, 2**bits - 1))
        address = ipaddress.IPv4Address(value) if bits == 32 else ipaddress.IPv6Address(value)
        return ipaddress.ip_network((address, draw(st.integers(0, bits))), strict=False)
    prefix = draw(st.integers(inside.prefixlen + 1, inside.max_prefixlen))
    offset = draw(st.integers(0, inside.num_addresses - 1))
    return ipaddress.ip_network((inside.network_address + offset, prefix), strict=False)


@st.composite
def ip_blocks(draw: st.DrawFn) -> IPBlock:
    cidr = draw(networks().filter(lambda n: n.prefixlen < n.max_prefixlen))
    excepts = draw(st.lists(networks(inside=cidr), max_size=2))
    return IPBlock(str(cidr), tuple(str(n) for n in excepts))


@st.composite
def peers(draw: st.DrawFn) -> PolicyPeer:
    if draw(st.booleans()):
        return PolicyPeer(ip_block=draw(ip_blocks()))
    pod_selector, namespace_selector = draw(st.tuples(st.none() | selectors, st.none() | selectors))
    if pod_selector is None and namespace_selector is None:
        pod_selector = LabelSelector()
    return PolicyPeer(pod_selector=pod_selector, namespace_selector=namespace_selector)


@st.composite
def policy_ports(draw: st.DrawFn) -> PolicyPort:
    kind = draw(st.sampled_from(["all", "number", "range", "name"]))
    proto = draw(protocol)
    if kind == "all":
        return PolicyPort(proto)
    if kind == "name":
        return PolicyPort(proto, draw(port_name))
    port = draw(st.integers(1, 65535))
    end = draw(st.integers(port, 65535)) if kind == "range" else None
    return PolicyPort(proto, port, end)


rules = st.builds(
    PolicyRule, ports=st.lists(policy_ports(), max_size=3).map(tuple), peers=st.lists(peers(), max_size=3).map(tuple)
)

policies = st.builds(
    NetworkPolicy,
    namespace=dns_label,
    name=dns_subdomain,
    pod_selector=selectors,
    policy_types=st.sampled_from([{"Ingress"}, {"Egress"}, {"Ingress", "Egress"}]).map(frozenset),
    ingress=st.lists(rules, max_size=2).map(tuple),
    egress=st.lists(rules, max_size=2).map(tuple),
    labels=labels,
)

namespaces = st.tuples(dns_label, st.dictionaries(label_key, label_value, max_size=3)).map(
    lambda pair: Namespace(pair[0], labels_of({**pair[1], "kubernetes.io/metadata.name": pair[0]}))
)


@st.composite
def pods(draw: st.DrawFn) -> Pod:
    names = draw(st.lists(port_name, unique=True, max_size=3))
    ports = [ContainerPort(draw(st.integers(1, 65535)), draw(protocol), name) for name in names]
    ports += draw(st.lists(st.builds(ContainerPort, st.integers(1, 65535), protocol), max_size=2))
    ips = draw(st.lists(networks().map(lambda n: str(n.network_address)), max_size=2))
    return Pod(
        namespace=draw(dns_label),
        name=draw(dns_subdomain),
        labels=draw(labels),
        ports=tuple(draw(st.permutations(ports))),
        ips=tuple(ips),
        node=draw(st.just("") | dns_subdomain),
        host_network=draw(st.booleans()),
    )


models = st.one_of(policies, namespaces, pods())


@ROUND_TRIP
@given(models)
def test_round_trip(model: Namespace | Pod | NetworkPolicy) -> None:
    assert to_model(to_manifest(model)) == model


@ROUND_TRIP
@given(models)
def test_round_trip_through_json_and_yaml(model: Namespace | Pod | NetworkPolicy) -> None:
    manifest = to_manifest(model)
    assert to_model(json.loads(json.dumps(manifest))) == model  # what etcd stores
    assert [to_model(obj) for obj in load_manifests(yaml.safe_dump(manifest))] == [model]  # what get -o yaml shows


@ROUND_TRIP
@given(policies)
def test_normal_form_is_a_fixed_point(policy: NetworkPolicy) -> None:
    manifest = to_manifest(policy)
    assert to_manifest(to_model(manifest)) == manifest
