"""The pure compiler and its diff: what the table holds for a view, and what a change costs."""

from __future__ import annotations

from dataclasses import replace

from pycni.policy.compile import NodeView, compile_node, pod_chain_name, policy_chain_name
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
from pycni.policy.nftdiff import count_changes, render_diff, render_full
from pycni.policy.ruleset import Ruleset

NAMESPACES = {
    n: Namespace(n, labels_of({"ns": n, "kubernetes.io/metadata.name": n})) for n in ("x", "y")
}


def pod(ns: str, name: str, ip: str, node: str = "n1", ports: tuple[ContainerPort, ...] = (), **labels: str) -> Pod:
    return Pod(ns, name, labels_of({"pod": name, **labels}), ports, (ip,), node)


PODS = [
    pod("x", "a", "10.244.1.10"),
    pod("x", "b", "10.244.1.11"),
    pod("x", "r", "10.244.2.10", node="n2"),
    pod("y", "a", "10.244.1.20"),
]
DENY_INGRESS = NetworkPolicy("x", "deny", LabelSelector(), frozenset({"Ingress"}))
ALLOW_FROM_B = NetworkPolicy(
    "x", "allow", LabelSelector(labels_of({"pod": "a"})), frozenset({"Ingress"}),
    ingress=(PolicyRule(ports=(PolicyPort("TCP", 80),),
                        peers=(PolicyPeer(pod_selector=LabelSelector(labels_of({"pod": "b"}))),)),),
)


def compile_(policies: list[NetworkPolicy], pods: list[Pod] = PODS) -> Ruleset:
    return compile_node(NodeView("n1", NAMESPACES, pods, policies))


def vmap(rs: Ruleset, name: str) -> dict[str, str]:
    return dict(rs.maps[name].elements)


def test_no_policy_means_base_chains_and_empty_maps_only() -> None:
    rs = compile_([])
    assert set(rs.chains) == {"egress", "ingress"}
    assert rs.sets == {}
    assert all(m.elements == () for m in rs.maps.values())


def test_default_deny_isolates_only_this_nodes_pods_of_its_namespace() -> None:
    rs = compile_([DENY_INGRESS])
    assert vmap(rs, "ingress_v4") == {
        "10.244.1.10": f"goto {pod_chain_name('x/a', 'Ingress')}",
        "10.244.1.11": f"goto {pod_chain_name('x/b', 'Ingress')}",
    }
    assert vmap(rs, "egress_v4") == {}
    chain = rs.chains[pod_chain_name("x/a", "Ingress")]
    assert chain.rules[0] == f"jump {policy_chain_name('x/deny', 'Ingress')}"
    assert chain.rules[-1] == 'counter drop comment "x/a isolated for ingress by x/deny"'
    assert rs.chains[policy_chain_name("x/deny", "Ingress")].rules == ()


def test_union_of_policies_in_one_pod_chain_and_peer_set_of_pod_ips() -> None:
    rs = compile_([DENY_INGRESS, ALLOW_FROM_B])
    chain = rs.chains[pod_chain_name("x/a", "Ingress")]
    assert chain.rules[:2] == (
        f"jump {policy_chain_name('x/allow', 'Ingress')}",
        f"jump {policy_chain_name('x/deny', 'Ingress')}",
    )
    (rule_v4,) = rs.chains[policy_chain_name("x/allow", "Ingress")].rules  # no pod has IPv6: no ip6 rules
    peer_set = rule_v4.split()[2][1:]
    assert rs.sets[peer_set].elements == {"10.244.1.11"}
    assert rule_v4 == f'ip saddr @{peer_set} tcp dport 80 counter accept comment "x/allow ingress[0] peer[0]"'


def test_ipv6_rules_once_a_pod_has_ipv6() -> None:
    dual = [*PODS, Pod("x", "six", labels_of({"pod": "b"}), (), ("10.244.1.30", "fd00::30"), "n2")]
    rules = rs_rules(compile_([ALLOW_FROM_B], dual), policy_chain_name("x/allow", "Ingress"))
    assert [r.split()[0] for r in rules] == ["ip", "ip6"]


def test_host_network_pods_are_never_peers() -> None:
    host = replace(pod("x", "b", "192.168.0.5", node="n2"), name="hostnet", host_network=True)
    rs = compile_([ALLOW_FROM_B], [*PODS, host])
    peer_sets = [s for name, s in rs.sets.items() if name.startswith("peer_") and name.endswith("_v4")]
    assert [s.elements for s in peer_sets] == [frozenset({"10.244.1.11"})]


def test_ipblock_except_is_subtracted_inside_the_block() -> None:
    block = NetworkPolicy("x", "block", LabelSelector(), frozenset({"Egress"}), egress=(
        PolicyRule(peers=(PolicyPeer(ip_block=IPBlock("10.0.0.0/8", ("10.244.0.0/16",))),)),))
    rs = compile_([block])
    (cidr,) = [s for name, s in rs.sets.items() if name.startswith("cidr_")]
    assert cidr.interval
    covered = sorted(cidr.elements)
    assert "10.244.0.0/16" not in covered and "10.0.0.0/9" in covered and "10.245.0.0/16" in covered


def test_named_port_resolves_per_destination_pod() -> None:
    pods = [
        pod("x", "a", "10.244.1.10", ports=(ContainerPort(80, "TCP", "http"),)),
        pod("x", "b", "10.244.1.11", ports=(ContainerPort(8080, "TCP", "http"),)),
    ]
    named = NetworkPolicy("x", "named", LabelSelector(), frozenset({"Ingress"}),
                          ingress=(PolicyRule(ports=(PolicyPort("TCP", "http"),)),))
    rs = compile_([named], pods)
    (nport,) = [s for name, s in rs.sets.items() if name.startswith("nport_") and name.endswith("_v4")]
    assert nport.elements == {"10.244.1.10 . tcp . 80", "10.244.1.11 . tcp . 8080"}


def test_port_forms() -> None:
    few = NetworkPolicy("x", "few", LabelSelector(), frozenset({"Ingress"}), ingress=(
        PolicyRule(ports=(PolicyPort("UDP", 53, 60), PolicyPort("SCTP"), PolicyPort("TCP", 443))),))
    tail = 'counter accept comment "x/few ingress[0] all peers"'
    assert rs_rules(compile_([few]), policy_chain_name("x/few", "Ingress")) == [
        f"meta nfproto ipv4 meta l4proto sctp {tail}",
        f"meta nfproto ipv4 tcp dport 443 {tail}",
        f"meta nfproto ipv4 udp dport 53-60 {tail}",
    ]
    many = NetworkPolicy("x", "many", LabelSelector(), frozenset({"Ingress"}), ingress=(
        PolicyRule(ports=tuple(PolicyPort("TCP", p) for p in (80, 443, 8080, 8443, 9090))),))
    assert rs_rules(compile_([many]), policy_chain_name("x/many", "Ingress")) == [
        "meta nfproto ipv4 meta l4proto . th dport { tcp . 443, tcp . 80, tcp . 8080, tcp . 8443, tcp . 9090 } "
        'counter accept comment "x/many ingress[0] all peers"',
    ]


def rs_rules(rs: Ruleset, chain: str) -> list[str]:
    return list(rs.chains[chain].rules)


def test_diff_of_equal_rulesets_is_empty() -> None:
    assert render_diff(compile_([DENY_INGRESS, ALLOW_FROM_B]), compile_([DENY_INGRESS, ALLOW_FROM_B])) == ""


def test_label_change_of_a_peer_costs_set_elements_only() -> None:
    before = compile_([DENY_INGRESS, ALLOW_FROM_B])
    relabelled = [p if p.key != "x/b" else replace(p, labels=labels_of({"pod": "c"})) for p in PODS]
    script = render_diff(before, compile_([DENY_INGRESS, ALLOW_FROM_B], relabelled))
    assert script.splitlines() == [
        f"delete element inet pycni_policy {name} {{ 10.244.1.11 }}"
        for name in before.sets if name.startswith("peer_") and name.endswith("_v4")
    ]


def test_policy_edit_touches_its_own_chain() -> None:
    before = compile_([DENY_INGRESS, ALLOW_FROM_B])
    edited = replace(ALLOW_FROM_B, ingress=(replace(ALLOW_FROM_B.ingress[0], ports=(PolicyPort("TCP", 8080),)),))
    lines = render_diff(before, compile_([DENY_INGRESS, edited])).splitlines()
    chain = policy_chain_name("x/allow", "Ingress")
    assert lines[0] == f"flush chain inet pycni_policy {chain}"
    assert all(f" {chain} " in line for line in lines[1:])
    assert count_changes("\n".join(lines)) == 2


def test_new_local_pod_costs_its_chain_map_element_and_set_membership() -> None:
    before = compile_([DENY_INGRESS, ALLOW_FROM_B])
    new_pod = pod("x", "b2", "10.244.1.12", pod="b")
    script = render_diff(before, compile_([DENY_INGRESS, ALLOW_FROM_B], [*PODS, new_pod]))
    assert "flush chain" not in script and "delete" not in script
    assert "add element inet pycni_policy ingress_v4 { 10.244.1.12 : goto " in script
    assert f"add chain inet pycni_policy {pod_chain_name('x/b2', 'Ingress')}" in script


def test_full_render_replaces_the_table_in_one_script() -> None:
    script = render_full(compile_([DENY_INGRESS]))
    assert script.splitlines()[:3] == [
        "add table inet pycni_policy", "delete table inet pycni_policy", "add table inet pycni_policy"]
    assert "add chain inet pycni_policy ingress { type filter hook forward priority -1; policy accept; }" in script
