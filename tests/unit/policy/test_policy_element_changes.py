"""element_changes: a ruleset difference as plain sets' element changes, or None when it is more than that."""

from __future__ import annotations

from pycni.policy.nftdiff import element_changes
from pycni.policy.ruleset import Chain, Map, Ruleset, Set

PEERS = Set("peer_a_v4", "ipv4_addr", frozenset({"10.0.0.1", "10.0.0.2"}))
PORTS = Set("nport_a_v4", "ipv4_addr . inet_proto . inet_service", frozenset({"10.0.0.1 . tcp . 80"}))
CIDRS = Set("cidr_a_v4", "ipv4_addr", frozenset({"10.0.0.0/8"}), interval=True)
CHAIN = Chain("pol_a_in", ("ip saddr @peer_a_v4 accept",))
VMAP = Map("ingress_v4", "ipv4_addr : verdict", (("10.0.0.1", "goto pod_a_in"),))
BASE = Ruleset({s.name: s for s in (PEERS, PORTS, CIDRS)}, {VMAP.name: VMAP}, {CHAIN.name: CHAIN})


def with_sets(*sets: Set) -> Ruleset:
    return Ruleset({**BASE.sets, **{s.name: s for s in sets}}, BASE.maps, BASE.chains)


def test_a_pod_leaving_and_joining_sets_is_element_changes() -> None:
    peers = Set(PEERS.name, PEERS.type, frozenset({"10.0.0.2", "10.0.0.3"}))
    ports = Set(PORTS.name, PORTS.type, frozenset({"10.0.0.3 . tcp . 80"}))
    changes = element_changes(BASE, with_sets(peers, ports))
    assert changes == [(peers, frozenset({"10.0.0.1"}), frozenset({"10.0.0.3"})),
                       (ports, frozenset({"10.0.0.1 . tcp . 80"}), frozenset({"10.0.0.3 . tcp . 80"}))]


def test_nothing_changed_is_no_change() -> None:
    assert element_changes(BASE, with_sets(Set(PEERS.name, PEERS.type, PEERS.elements))) == []


def test_anything_else_is_left_to_the_script() -> None:
    assert element_changes(BASE, with_sets(Set(CIDRS.name, CIDRS.type, frozenset({"10.0.0.0/9"}), True))) is None
    assert element_changes(BASE, with_sets(Set("peer_b_v4", "ipv4_addr"))) is None
    assert element_changes(BASE, Ruleset(BASE.sets, BASE.maps, {CHAIN.name: Chain(CHAIN.name, ("accept",))})) is None
    assert element_changes(BASE, Ruleset(BASE.sets, {VMAP.name: Map(VMAP.name, VMAP.type)}, BASE.chains)) is None
    many = Set(PEERS.name, PEERS.type, frozenset(f"10.1.{i // 250}.{i % 250}" for i in range(3000)))
    assert element_changes(BASE, with_sets(many)) is None
