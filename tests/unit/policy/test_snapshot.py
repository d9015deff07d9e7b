"""The evaluator's snapshot read from the store's keys: objects, endpoints and the nodes' leased addresses."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from pycni.cluster.kv import Put
from pycni.cluster.lease import lease_value
from pycni.policy.endpoints import Endpoint, encode, endpoint_key
from pycni.policy.evaluate import Node, Snapshot, evaluate
from pycni.policy.model import ContainerPort, LabelSelector, Namespace, NetworkPolicy, Pod, labels_of
from pycni.policy.snapshot import Change, ClusterObjects, declared_ports, reachability_changes, read
from pycni.policy.store import ObjectStore
from pycni.testing.kv import MemoryKV

PREFIX = "/pycni"
DENY = NetworkPolicy("x", "deny", LabelSelector(), frozenset({"Ingress"}))


def cluster() -> MemoryKV:
    kv = MemoryKV()
    ObjectStore(kv, PREFIX).apply([
        Namespace("x", labels_of({"team": "a"})),
        Pod("x", "a", labels_of({"pod": "a"}), (ContainerPort(8080, "TCP", "http"),)),
        Pod("x", "idle", labels_of({"pod": "idle"})),  # no endpoint: not a pod policy sees yet
        DENY,
    ])
    puts = [
        Put(endpoint_key(PREFIX, e), encode(e)) for e in (
            Endpoint("x", "a", "n1", ("10.244.1.10",), "c1", "eth0"),
            Endpoint("x", "b", "n2", ("10.244.2.10", "fd00:2::10"), "c2", "eth0"),  # no Pod object
        )
    ]
    puts.append(Put(f"{PREFIX}/subnets/10.244.1.0-24", lease_value("n1", IPv4Address("192.168.50.11"), "vxlan", {})))
    puts.append(Put(f"{PREFIX}/subnets/10.244.2.0-24", lease_value("n2", IPv4Address("192.168.50.12"), "host-gw", {})))
    puts.append(Put(f"{PREFIX}/endpoints/n1/garbled/eth0", b"{not json"))
    puts.append(Put(f"{PREFIX}/config", b"{}"))
    kv.txn([], puts)
    return kv


def test_objects_endpoints_and_nodes_come_from_one_read() -> None:
    objects = read(cluster(), PREFIX)
    snapshot = objects.snapshot()
    assert [pod.key for pod in snapshot.pods] == ["x/a", "x/b"]
    a, b = snapshot.pods
    assert (a.labels, a.ips, a.node, a.ports) == (
        labels_of({"pod": "a"}), ("10.244.1.10",), "n1", (ContainerPort(8080, "TCP", "http"),))
    assert (b.labels, b.ips, b.node) == ((), ("10.244.2.10", "fd00:2::10"), "n2")
    assert [ns.name for ns in snapshot.namespaces] == ["x"]
    assert snapshot.policies == (DENY,)
    assert snapshot.nodes == (
        Node("n1", ("192.168.50.11", "10.244.1.0", "10.244.1.1")),
        Node("n2", ("192.168.50.12", "10.244.2.0", "10.244.2.1")),
    )
    assert objects.unreadable == (f"{PREFIX}/endpoints/n1/garbled/eth0",)
    assert objects.revision > 0


def test_node_addresses_are_never_pods_and_the_own_node_is_exempt() -> None:
    snapshot = read(cluster(), PREFIX).snapshot()
    from_gateway = evaluate(snapshot, "10.244.1.1", "x/a", 8080, "TCP")
    assert (from_gateway.src.kind, from_gateway.ingress.status) == ("node", "own-node")
    from_other_node = evaluate(snapshot, "10.244.2.0", "x/a", 8080, "TCP")
    assert (from_other_node.src.node, from_other_node.ingress.status) == ("n2", "denied")


def test_with_applied_replaces_objects_by_identity_and_keeps_endpoints() -> None:
    objects = read(cluster(), PREFIX)
    relabelled = Pod("x", "b", labels_of({"pod": "b"}))
    allow = NetworkPolicy("x", "deny", LabelSelector(), frozenset({"Egress"}))
    after = objects.with_applied([relabelled, allow, Namespace("y")])
    snapshot = after.snapshot()
    assert snapshot.pod("x/b") == Pod("x", "b", labels_of({"pod": "b"}), (), ("10.244.2.10", "fd00:2::10"), "n2")
    assert snapshot.policies == (allow,)
    assert [ns.name for ns in snapshot.namespaces] == ["x", "y"]
    assert objects.snapshot().policies == (DENY,)  # the original is untouched


def test_a_garbled_lease_is_reported_not_raised() -> None:
    kv = MemoryKV()
    kv.txn([], [Put(f"{PREFIX}/subnets/10.244.9.0-24", b"[]")])
    objects = ClusterObjects.from_kvs(kv.list_prefix(PREFIX + "/")[0], PREFIX)
    assert (objects.nodes, objects.unreadable) == ((), (f"{PREFIX}/subnets/10.244.9.0-24",))


def test_reachability_changes_over_declared_ports_without_self_pairs() -> None:
    objects = read(cluster(), PREFIX)
    before = replace(objects, policies={}).snapshot()
    after = objects.snapshot()  # x/deny isolates every pod of x for ingress
    assert declared_ports(before, after) == [(8080, "TCP")]
    assert declared_ports(Snapshot()) == [(80, "TCP")]
    assert reachability_changes(before, after) == [Change("x/a", "x/b", 8080, "TCP", False),
                                                   Change("x/b", "x/a", 8080, "TCP", False)]
    assert [change.allowed for change in reachability_changes(after, before)] == [True, True]
    assert reachability_changes(after, after) == []


def _brute_force(before: Snapshot, after: Snapshot) -> list[Change]:
    from pycni.policy.reachability import diff, reachability

    changes = []
    for port, protocol in declared_ports(before, after):
        found = diff(reachability(before, port, protocol), reachability(after, port, protocol))
        changes += [Change(s, d, port, protocol, True) for s, d in found.gained if s != d]
        changes += [Change(s, d, port, protocol, False) for s, d in found.lost if s != d]
    return sorted(changes, key=lambda c: (c.src, c.dst, c.protocol, c.port))


def test_only_affected_pairs_are_evaluated_and_nothing_is_missed() -> None:
    from pycni.policy.model import IPBlock, PolicyPeer, PolicyPort, PolicyRule

    def sel(**labels: str) -> LabelSelector:
        return LabelSelector(labels_of(labels))

    web = ContainerPort(8080, "TCP", "web")
    pods = [Pod(ns, name, labels_of({"app": app}), (web,) if app == "db" else (), (f"10.244.{i // 9}.{i + 10}",),
                f"n{i % 2}")
            for i, (ns, name, app) in enumerate(
                (ns, f"{app}-{n}", app) for ns in "xyz" for app in ("web", "db", "api") for n in (1,))]
    base = Snapshot((Namespace("x", labels_of({"team": "a"})), Namespace("y", labels_of({"team": "b"})),
                     Namespace("z")), tuple(pods), (
        NetworkPolicy("x", "db", sel(app="db"), frozenset({"Ingress"}), ingress=(
            PolicyRule((PolicyPort("TCP", "web"),), (PolicyPeer(sel(app="api"), sel(team="a")),)),)),
        NetworkPolicy("y", "out", sel(app="web"), frozenset({"Egress"}), egress=(
            PolicyRule((), (PolicyPeer(ip_block=IPBlock("10.244.0.0/24")),)),)),
    ), ())
    x_web = next(p for p in pods if p.key == "x/web-1")
    variants = {
        "new default deny in z": replace(base, policies=(
            *base.policies, NetworkPolicy("z", "deny", LabelSelector(), frozenset({"Ingress"})))),
        "policy edited": replace(base, policies=(replace(base.policies[0], pod_selector=LabelSelector()),
                                                 base.policies[1])),
        "policy removed": replace(base, policies=base.policies[1:]),
        "pod relabelled": replace(base, pods=tuple(replace(p, labels=labels_of({"app": "api"})) if p == x_web else p
                                                   for p in pods)),
        "namespace relabelled": replace(base, namespaces=(base.namespaces[0], Namespace("y", labels_of({"team": "a"})),
                                                          base.namespaces[2])),
        "named port moved": replace(base, pods=tuple(replace(p, ports=(ContainerPort(9090, "TCP", "web"),))
                                                     if p.key == "x/db-1" else p for p in pods)),
    }
    for name, after in variants.items():
        expected = _brute_force(base, after)
        assert reachability_changes(base, after) == expected, name
        assert reachability_changes(after, base) == _brute_force(after, base), name
        assert expected, name  # each variant changes something
