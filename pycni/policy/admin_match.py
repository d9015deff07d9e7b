"""The admin tiers' verdict on one connection: which AdminNetworkPolicy or baseline rule decides it.

Contract: pure. The evaluator (``pycni.policy.evaluate``) asks, per direction
and for a pod end, ``first_admin_match`` before NetworkPolicy and
``first_baseline_match`` after it (only when no NetworkPolicy isolates the pod).

- ANPs whose subject selects the pod are tried in priority order (lower
  first; equal priorities by name, so the answer is stable: the API leaves
  that order to the implementation), rules in order, and the first rule
  whose peers and ports match decides: Allow, Deny, or Pass (go on to
  NetworkPolicy).
- A peer of ``namespaces`` or ``pods`` matches only a pod (never a node, a
  host-network pod or an outside address); ``networks`` matches the address
  on the wire, whatever it belongs to.
- Ports: none = every port; a number or range on its protocol; a named port
  resolves on the destination pod by containerPort name, on that port's own
  protocol.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from pycni.policy.admin_model import (
    AdminAction,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    BaselineAdminNetworkPolicy,
    TierPolicy,
)
from pycni.policy.model import Direction, Labels, Pod, Protocol
from pycni.policy.selectors import selector_matches

__all__ = [
    "TierMatch",
    "admin_order",
    "admin_port_matches",
    "applies",
    "first_admin_match",
    "first_baseline_match",
    "rules_of",
    "subject_selects",
]

NamespaceLabels = Callable[[str], Labels]


@dataclass(frozen=True)
class TierMatch:
    """The admin-tier rule that decided (or passed) a direction."""

    policy: str  # anp:<name> or banp:default
    direction: Direction
    rule: int
    rule_name: str
    action: AdminAction
    priority: int | None = None  # ANPs only

    def __str__(self) -> str:
        named = f" ({self.rule_name})" if self.rule_name else ""
        return f"{self.policy} {self.direction.lower()}[{self.rule}]{named}"


def subject_selects(subject: AdminSubject, pod: Pod, ns_labels: NamespaceLabels) -> bool:
    if pod.host_network:
        return False
    if not selector_matches(subject.namespace_selector, ns_labels(pod.namespace)):
        return False
    return subject.pod_selector is None or selector_matches(subject.pod_selector, pod.labels)


def rules_of(policy: TierPolicy, direction: Direction) -> tuple[AdminRule, ...]:
    return policy.ingress if direction == "Ingress" else policy.egress


def admin_order(policies: Iterable[AdminNetworkPolicy]) -> list[AdminNetworkPolicy]:
    """Evaluation order: priority, then name."""
    return sorted(policies, key=lambda p: (p.priority, p.name))


def applies(policy: TierPolicy, pod: Pod, direction: Direction, ns_labels: NamespaceLabels) -> bool:
    """The policy has rules in ``direction`` and its subject selects ``pod``."""
    return bool(rules_of(policy, direction)) and subject_selects(policy.subject, pod, ns_labels)


@lru_cache(maxsize=4096)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def _peer_matches(peer: AdminPeer, other_pod: Pod | None, other_ip: str | None, ns_labels: NamespaceLabels) -> bool:
    if peer.networks:
        if other_ip is None:
            return False
        address = ipaddress.ip_address(other_ip)
        return any(address.version == _network(cidr).version and address in _network(cidr)
                   for cidr in peer.networks)
    if other_pod is None or other_pod.host_network:
        return False
    assert peer.namespace_selector is not None
    if not selector_matches(peer.namespace_selector, ns_labels(other_pod.namespace)):
        return False
    return peer.pod_selector is None or selector_matches(peer.pod_selector, other_pod.labels)


def admin_port_matches(port_spec: AdminPort, port: int, protocol: Protocol, dst_pod: Pod | None) -> bool:
    if port_spec.name:
        if dst_pod is None:
            return False
        return any(cp.name == port_spec.name and cp.protocol == protocol and cp.container_port == port
                   for cp in dst_pod.ports)
    if port_spec.protocol != protocol or port_spec.port is None:
        return False
    end = port_spec.end_port if port_spec.end_port is not None else port_spec.port
    return port_spec.port <= port <= end


def rule_matches(rule: AdminRule, other_pod: Pod | None, other_ip: str | None, dst_pod: Pod | None, port: int,
                 protocol: Protocol, ns_labels: NamespaceLabels) -> bool:
    if rule.ports is not None and not any(admin_port_matches(p, port, protocol, dst_pod) for p in rule.ports):
        return False
    return any(_peer_matches(peer, other_pod, other_ip, ns_labels) for peer in rule.peers)


def _first(policies: Sequence[TierPolicy], direction: Direction, other_pod: Pod | None, other_ip: str | None,
           dst_pod: Pod | None, port: int, protocol: Protocol, ns_labels: NamespaceLabels) -> TierMatch | None:
    for policy in policies:
        for index, rule in enumerate(rules_of(policy, direction)):
            if rule_matches(rule, other_pod, other_ip, dst_pod, port, protocol, ns_labels):
                priority = policy.priority if isinstance(policy, AdminNetworkPolicy) else None
                return TierMatch(policy.key, direction, index, rule.name, rule.action, priority)
    return None


def first_admin_match(ordered: Sequence[AdminNetworkPolicy], pod: Pod, direction: Direction,
                      other_pod: Pod | None, other_ip: str | None, dst_pod: Pod | None, port: int,
                      protocol: Protocol, ns_labels: NamespaceLabels) -> TierMatch | None:
    """The first ANP rule (``ordered`` by ``admin_order``) matching the connection, for ``pod``'s side."""
    mine = [policy for policy in ordered if applies(policy, pod, direction, ns_labels)]
    return _first(mine, direction, other_pod, other_ip, dst_pod, port, protocol, ns_labels)


def first_baseline_match(baseline: BaselineAdminNetworkPolicy | None, pod: Pod, direction: Direction,
                         other_pod: Pod | None, other_ip: str | None, dst_pod: Pod | None, port: int,
                         protocol: Protocol, ns_labels: NamespaceLabels) -> TierMatch | None:
    if baseline is None or not applies(baseline, pod, direction, ns_labels):
        return None
    return _first([baseline], direction, other_pod, other_ip, dst_pod, port, protocol, ns_labels)
