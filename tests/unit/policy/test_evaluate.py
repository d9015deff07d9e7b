"""The evaluator's Kubernetes semantics, corner by corner (notes/netpol.md §5)."""

from __future__ import annotations

from pycni.policy.evaluate import (
    Match,
    Node,
    Snapshot,
    evaluate,
    isolating,
    resolve,
)
from pycni.policy.model import (
    ContainerPort,
    Direction,
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
from pycni.policy.reachability import ReachabilityDiff, diff, reachability

NODES = (Node("n1", ("192.168.50.11", "10.244.1.0")), Node("n2", ("192.168.50.12", "10.244.2.0")))
NAMESPACES = (Namespace("x", labels_of({"team": "blue"})), Namespace("y", labels_of({"team": "red"})))


def pod(key: str, node: str, ip: str, *ports: ContainerPort, host: bool = False, **labels: str) -> Pod:
    ns, name = key.split("/")
    return Pod(ns, name, labels_of(labels or {"pod": name}), ports, (ip,) if ip else (), node, host)


XA = pod("x/a", "n1", "10.244.1.10")
XB = pod("x/b", "n2", "10.244.2.10")
YA = pod("y/a", "n1", "10.244.1.20")
YB = pod("y/b", "n2", "10.244.2.20")
PODS = (XA, XB, YA, YB)


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(labels_of(labels))


def policy(
    name: str,
    selector: LabelSelector,
    *,
    ns: str = "x",
    ingress: tuple[PolicyRule, ...] | None = None,
    egress: tuple[PolicyRule, ...] | None = None,
    types: tuple[Direction, ...] | None = None,
) -> NetworkPolicy:
    kinds: tuple[Direction, ...] = types or (("Ingress",) if ingress is not None else ()) + (
        ("Egress",) if egress is not None else ()
    )
    return NetworkPolicy(ns, name, selector, frozenset(kinds), ingress or (), egress or ())


def world(*policies: NetworkPolicy, pods: tuple[Pod, ...] = PODS) -> Snapshot:
    return Snapshot(NAMESPACES, pods, policies, NODES)


def rule(*peers: PolicyPeer, ports: tuple[PolicyPort, ...] = ()) -> PolicyRule:
    return PolicyRule(ports, peers)


DENY_IN_X = policy("deny", LabelSelector(), ingress=())


# --- isolation and the union --------------------------------------------------------------


def test_unselected_pods_are_not_isolated() -> None:
    verdict = evaluate(world(policy("a-only", sel(pod="a"), ingress=())), XA, XB, 80, "TCP")
    assert verdict.allowed
    assert verdict.ingress.status == "not-isolated" and verdict.egress.status == "not-isolated"


def test_isolating_lists_policies_of_the_pods_namespace_and_direction() -> None:
    ing = policy("ing", LabelSelector(), ingress=())
    eg = policy("eg", LabelSelector(), egress=())
    other_ns = policy("other", LabelSelector(), ns="y", ingress=())
    snapshot = world(ing, eg, other_ns)
    assert isolating(snapshot, XA, "Ingress") == [ing]
    assert isolating(snapshot, XA, "Egress") == [eg]
    assert isolating(snapshot, YA, "Ingress") == [other_ns]


def test_policies_are_a_union_and_every_allowing_rule_is_reported() -> None:
    only_b = policy("from-b", sel(pod="a"), ingress=(rule(PolicyPeer(pod_selector=sel(pod="b"))),))
    everyone = policy("all", sel(pod="a"), ingress=(PolicyRule(),))
    verdict = evaluate(world(DENY_IN_X, only_b, everyone), XB, XA, 80, "TCP").ingress
    assert verdict.status == "allowed"
    assert verdict.isolated_by == ("x/deny", "x/from-b", "x/all")
    assert verdict.allowed_by == (Match("x/from-b", "Ingress", 0, 0, None), Match("x/all", "Ingress", 0, None, None))


def test_egress_at_the_source_and_ingress_at_the_destination_both_must_allow() -> None:
    egress_to_ya = policy(
        "to-ya", sel(pod="a"), egress=(rule(PolicyPeer(sel(pod="a"), LabelSelector(labels_of({"team": "red"})))),)
    )
    ya_from_nobody = policy("closed", sel(pod="a"), ns="y", ingress=())
    snapshot = world(egress_to_ya, ya_from_nobody)
    verdict = evaluate(snapshot, XA, YA, 80, "TCP")
    assert verdict.egress.status == "allowed" and verdict.ingress.status == "denied" and not verdict.allowed
    verdict = evaluate(snapshot, XA, YB, 80, "TCP")
    assert verdict.egress.status == "denied" and verdict.ingress.status == "not-isolated" and not verdict.allowed


# --- empty versus absent ----------------------------------------------------------------------


def test_no_rules_denies_one_empty_rule_allows_all() -> None:
    assert not evaluate(world(policy("p", sel(pod="a"), ingress=())), XB, XA, 80, "TCP").allowed
    assert evaluate(world(policy("p", sel(pod="a"), ingress=(PolicyRule(),))), XB, XA, 80, "TCP").allowed


def test_rules_of_an_unlisted_policy_type_are_ignored() -> None:
    # policyTypes [Egress]: the ingress rules are not enforced, and the pod is not isolated for ingress
    unused = (rule(PolicyPeer(pod_selector=sel(pod="zzz"))),)
    p = policy("p", sel(pod="a"), ingress=unused, egress=(), types=("Egress",))
    verdict = evaluate(world(p), XB, XA, 80, "TCP")
    assert verdict.ingress.status == "not-isolated"
    assert not evaluate(world(p), XA, XB, 80, "TCP").allowed


def test_empty_ports_mean_every_port_and_empty_peers_every_peer() -> None:
    any_port = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(pod_selector=sel(pod="b"))),))
    assert evaluate(world(any_port), XB, XA, 12345, "SCTP").allowed
    any_peer = policy("p", sel(pod="a"), ingress=(rule(ports=(PolicyPort("TCP", 80),)),))
    assert evaluate(world(any_peer), "203.0.113.9", XA, 80, "TCP").allowed
    assert evaluate(world(any_peer), "203.0.113.9", XA, 81, "TCP").allowed is False


def test_an_empty_selector_in_a_peer_is_not_an_absent_one() -> None:
    own_ns_only = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(pod_selector=LabelSelector())),))
    all_ns = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(namespace_selector=LabelSelector())),))
    assert evaluate(world(own_ns_only), XB, XA, 80, "TCP").allowed
    assert not evaluate(world(own_ns_only), YB, XA, 80, "TCP").allowed
    assert evaluate(world(all_ns), YB, XA, 80, "TCP").allowed


# --- peers ----------------------------------------------------------------------------------------


def test_namespace_selector_and_pod_selector_in_one_peer_are_anded() -> None:
    red_b = PolicyPeer(sel(pod="b"), LabelSelector(labels_of({"team": "red"})))
    p = policy("p", sel(pod="a"), ingress=(rule(red_b),))
    assert evaluate(world(p), YB, XA, 80, "TCP").allowed
    assert not evaluate(world(p), YA, XA, 80, "TCP").allowed  # right namespace, wrong pod
    assert not evaluate(world(p), XB, XA, 80, "TCP").allowed  # right pod, wrong namespace


def test_every_namespace_carries_its_name_label() -> None:
    by_name = LabelSelector((), (Requirement("kubernetes.io/metadata.name", "In", ("y",)),))
    p = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(namespace_selector=by_name)),))
    assert evaluate(world(p), YB, XA, 80, "TCP").allowed
    assert not evaluate(world(p), XB, XA, 80, "TCP").allowed


def test_ip_blocks_match_pod_addresses() -> None:
    p = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(ip_block=IPBlock("10.244.2.0/24"))),))
    assert evaluate(world(p), XB, XA, 80, "TCP").allowed
    assert not evaluate(world(p), YA, XA, 80, "TCP").allowed


def test_except_subtracts_inside_its_own_peer_only() -> None:
    carved = PolicyPeer(ip_block=IPBlock("10.244.0.0/16", ("10.244.2.0/24",)))
    p = policy("p", sel(pod="a"), ingress=(rule(carved, PolicyPeer(pod_selector=sel(pod="b"))),))
    verdict = evaluate(world(p), XB, XA, 80, "TCP").ingress
    assert verdict.allowed_by == (Match("x/p", "Ingress", 0, 1, None),)
    assert not evaluate(world(p), YB, XA, 80, "TCP").allowed  # in the except, and not x/b


def test_except_is_not_a_deny_for_another_policy() -> None:
    all_but_yb = PolicyPeer(ip_block=IPBlock("0.0.0.0/0", ("10.244.2.20/32",)))
    carved = policy("carved", sel(pod="a"), ingress=(rule(all_but_yb),))
    direct = policy("direct", sel(pod="a"), ingress=(rule(PolicyPeer(ip_block=IPBlock("10.244.2.20/32"))),))
    assert not evaluate(world(carved), YB, XA, 80, "TCP").allowed
    assert evaluate(world(carved, direct), YB, XA, 80, "TCP").allowed


def test_a_pod_without_an_address_never_matches_an_ip_block_but_matches_selectors() -> None:
    pending = pod("x/b", "n2", "")
    by_ip = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(ip_block=IPBlock("0.0.0.0/0"))),))
    by_label = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(pod_selector=sel(pod="b"))),))
    assert not evaluate(world(by_ip, pods=(XA, pending)), pending, XA, 80, "TCP").allowed
    assert evaluate(world(by_label, pods=(XA, pending)), pending, XA, 80, "TCP").allowed


# --- ports ----------------------------------------------------------------------------------------


def test_named_ports_resolve_on_each_destination_pod() -> None:
    web1 = pod("x/w1", "n1", "10.244.1.51", ContainerPort(8080, "TCP", "http"), app="web")
    web2 = pod("x/w2", "n2", "10.244.2.52", ContainerPort(9090, "TCP", "http"), app="web")
    client = pod("x/c", "n1", "10.244.1.53", app="client")
    pods = (web1, web2, client)
    ingress = policy("http-in", sel(app="web"), ingress=(rule(ports=(PolicyPort("TCP", "http"),)),))
    snapshot = world(ingress, pods=pods)
    assert evaluate(snapshot, client, web1, 8080, "TCP").allowed
    assert not evaluate(snapshot, client, web1, 9090, "TCP").allowed
    assert evaluate(snapshot, client, web2, 9090, "TCP").allowed
    assert not evaluate(snapshot, client, web2, 8080, "TCP").allowed
    # egress: resolved on the destination too, never on the source
    egress = policy("http-out", sel(app="client"), egress=(rule(ports=(PolicyPort("TCP", "http"),)),))
    snapshot = world(egress, pods=pods)
    assert evaluate(snapshot, client, web2, 9090, "TCP").allowed
    assert not evaluate(snapshot, client, web2, 8080, "TCP").allowed
    assert not evaluate(snapshot, client, "203.0.113.9", 8080, "TCP").allowed  # not a pod: no name to resolve


def test_named_ports_match_name_and_protocol() -> None:
    dns = pod("x/d", "n1", "10.244.1.60", ContainerPort(53, "UDP", "dns"), ContainerPort(5353, "TCP", "dns"))
    p = policy("p", sel(pod="d"), ingress=(rule(ports=(PolicyPort("UDP", "dns"),)),))
    snapshot = world(p, pods=(dns, XB))
    assert evaluate(snapshot, XB, dns, 53, "UDP").allowed
    assert not evaluate(snapshot, XB, dns, 5353, "TCP").allowed
    assert not evaluate(snapshot, XB, dns, 53, "TCP").allowed


def test_end_port_is_inclusive_and_protocol_must_match() -> None:
    p = policy("p", sel(pod="a"), ingress=(rule(ports=(PolicyPort("TCP", 8000, 8080),)),))
    for port, ok in ((7999, False), (8000, True), (8080, True), (8081, False)):
        assert evaluate(world(p), XB, XA, port, "TCP").allowed is ok
    assert not evaluate(world(p), XB, XA, 8000, "UDP").allowed


def test_a_protocol_without_a_port_means_every_port_of_it() -> None:
    p = policy("p", sel(pod="a"), ingress=(rule(ports=(PolicyPort("SCTP"),)),))
    assert evaluate(world(p), XB, XA, 1, "SCTP").allowed
    assert evaluate(world(p), XB, XA, 65535, "SCTP").allowed
    assert not evaluate(world(p), XB, XA, 80, "TCP").allowed


# --- nodes, host network, outside --------------------------------------------------------------


def test_a_pods_own_node_always_reaches_it() -> None:
    snapshot = world(DENY_IN_X)
    own = evaluate(snapshot, "192.168.50.11", XA, 80, "TCP")
    assert own.allowed and own.ingress.status == "own-node" and own.egress.status == "not-a-pod"
    assert evaluate(snapshot, "10.244.1.0", XA, 80, "TCP").allowed  # its VTEP address is its node too
    assert not evaluate(snapshot, "192.168.50.12", XA, 80, "TCP").allowed  # another node is not exempt


def test_a_pod_always_reaches_its_own_node() -> None:
    deny_out = policy("deny-out", LabelSelector(), egress=())
    snapshot = world(deny_out)
    to_own = evaluate(snapshot, XA, "192.168.50.11", 10250, "TCP")
    assert to_own.allowed and to_own.egress.status == "own-node"
    assert not evaluate(snapshot, XA, "192.168.50.12", 10250, "TCP").allowed  # another node is not exempt


def test_node_and_vtep_addresses_are_never_pods() -> None:
    every_pod = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(LabelSelector(), LabelSelector())),))
    # a pod record wrongly claiming a node's VTEP address does not make the address a pod
    impostor = pod("y/i", "n2", "10.244.2.0")
    snapshot = world(every_pod, pods=(*PODS, impostor))
    src, _ = resolve(snapshot, "10.244.2.0", XA)
    assert src.kind == "node" and src.node == "n2" and src.pod is None
    assert not evaluate(snapshot, "10.244.2.0", XA, 80, "TCP").allowed
    # but node addresses do fall in ipBlocks
    cidr = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(ip_block=IPBlock("10.244.0.0/16"))),))
    assert evaluate(world(cidr), "10.244.2.0", XA, 80, "TCP").allowed


def test_host_network_pods_are_their_node() -> None:
    kubelet_like = pod("kube-system/probe", "n1", "192.168.50.11", host=True, pod="a")
    remote = pod("kube-system/agent", "n2", "192.168.50.12", host=True, pod="a")
    snapshot = world(DENY_IN_X, policy("host", sel(pod="a"), ns="kube-system", ingress=()))
    assert isolating(snapshot, kubelet_like, "Ingress") == []
    assert evaluate(snapshot, kubelet_like, XA, 80, "TCP").ingress.status == "own-node"
    assert not evaluate(snapshot, remote, XA, 80, "TCP").allowed
    # never selected by a podSelector peer, and never isolated as a destination
    every_pod = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(LabelSelector(), LabelSelector())),))
    assert not evaluate(world(every_pod), remote, XA, 80, "TCP").allowed
    assert evaluate(snapshot, XB, kubelet_like, 80, "TCP").ingress.status == "not-a-pod"
    assert evaluate(snapshot, "192.168.50.12", XB, 80, "TCP").ingress.status == "own-node"


def test_outside_addresses_are_judged_by_ip_blocks_only() -> None:
    p = policy(
        "p",
        sel(pod="a"),
        egress=(rule(PolicyPeer(ip_block=IPBlock("203.0.113.0/24", ("203.0.113.128/25",)))),),
    )
    assert evaluate(world(p), XA, "203.0.113.9", 443, "TCP").allowed
    assert not evaluate(world(p), XA, "203.0.113.200", 443, "TCP").allowed
    assert evaluate(world(p), XA, "203.0.113.9", 443, "TCP").ingress.status == "not-a-pod"


def test_an_address_of_a_pod_is_that_pod() -> None:
    p = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(pod_selector=sel(pod="b"))),))
    assert evaluate(world(p), "10.244.2.10", "10.244.1.10", 80, "TCP").allowed
    assert not evaluate(world(p), "10.244.1.20", "10.244.1.10", 80, "TCP").allowed


def test_ipv6_blocks_judge_ipv6_connections() -> None:
    a6 = Pod("x", "a", labels_of({"pod": "a"}), (), ("10.244.1.10", "fd00:1::10"), "n1")
    b6 = Pod("x", "b", labels_of({"pod": "b"}), (), ("10.244.2.10", "fd00:2::10"), "n2")
    p = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(ip_block=IPBlock("fd00:2::/64"))),))
    snapshot = world(p, pods=(a6, b6))
    assert evaluate(snapshot, "fd00:2::10", a6, 80, "TCP").allowed  # the destination's v6 address is used
    assert evaluate(snapshot, "fd00:2::10", a6, 80, "TCP").dst.ip == "fd00:1::10"
    assert not evaluate(snapshot, b6, a6, 80, "TCP").allowed  # both have IPv4: IPv4 is on the wire
    assert not evaluate(snapshot, "10.244.2.10", "10.244.1.10", 80, "TCP").allowed


# --- nearest misses --------------------------------------------------------------------------------


def test_misses_are_rules_matching_the_peer_or_the_port_but_not_both() -> None:
    p = policy(
        "p",
        sel(pod="a"),
        ingress=(
            rule(PolicyPeer(pod_selector=sel(pod="b")), ports=(PolicyPort("TCP", 81),)),  # peer yes, port no
            rule(PolicyPeer(pod_selector=sel(pod="c")), ports=(PolicyPort("TCP", 80),)),  # port yes, peer no
            rule(PolicyPeer(pod_selector=sel(pod="c")), ports=(PolicyPort("UDP", 80),)),  # neither
        ),
    )
    verdict = evaluate(world(p), XB, XA, 80, "TCP").ingress
    assert verdict.status == "denied"
    assert [(miss.rule_index, miss.kind) for miss in verdict.misses] == [(0, "port"), (1, "peer")]


# --- tables -------------------------------------------------------------------------------------------


def test_reachability_covers_every_pod_pair_but_host_network_ones() -> None:
    host = pod("kube-system/h", "n1", "192.168.50.11", host=True)
    table = reachability(world(DENY_IN_X, pods=(*PODS, host)), 80, "TCP")
    assert len(table) == 16
    assert table[("y/a", "x/a")] is False and table[("x/a", "y/a")] is True


def test_diff_reports_pairs_gained_and_lost() -> None:
    before = reachability(world(DENY_IN_X), 80, "TCP")
    after = reachability(world(policy("closed", sel(pod="a"), ns="y", ingress=())), 80, "TCP")
    change = diff(before, after)
    assert ("y/a", "x/a") in change.gained and ("x/a", "y/a") in change.lost
    assert len(change.gained) == 8 and len(change.lost) == 4
    assert not diff(before, before) and diff(before, before) == ReachabilityDiff()
    assert diff({("a", "b"): True}, {("a", "c"): False}) == ReachabilityDiff()


def test_ends_may_be_named_by_namespace_and_pod() -> None:
    p = policy("p", sel(pod="a"), ingress=(rule(PolicyPeer(pod_selector=sel(pod="b"))),))
    assert evaluate(world(p), "x/b", "x/a", 80, "TCP").allowed
    assert not evaluate(world(p), "y/b", "x/a", 80, "TCP").allowed
    for bad in ("x/nope", "not-an-address"):
        try:
            evaluate(world(p), bad, "x/a", 80, "TCP")
        except ValueError as exc:
            assert bad in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
