"""The NetworkPolicy evaluator: one pure oracle for explain, the compiler's tests and dry-run.

Contract: values in, values out; no I/O. ``evaluate(snapshot, src, dst, port,
protocol)`` judges one new connection with Kubernetes semantics:

- An end is a ``Pod``, a bare IP string, or a ``namespace/name`` string naming
  a pod of the snapshot. An IP is resolved against the snapshot: a node's
  address (VTEP included) or a host-network pod's address is a *node*, never a
  pod; an address of a pod is that pod; anything else is *external*. A
  host-network pod is a node too.
- Egress is judged at the source, ingress at the destination, independently;
  the connection passes when both directions allow it. A direction is not
  checked when its end is not a pod. Traffic between a pod and its own node
  (its addresses, or a host-network pod on it) is never checked, either way:
  Kubernetes always allows it (probes depend on it), and the compiled table
  hooks only forwarded traffic. Other nodes get no exemption.
- A pod is isolated in a direction when a policy of its namespace selects it
  and lists that policy type; then the union of those policies' rules of that
  direction decides. A rule allows when one of its peers matches (none =
  every peer) and one of its ports matches (none = every port).
- Peers: ``podSelector`` alone = pods of the policy's namespace;
  ``namespaceSelector`` alone = every pod of the matching namespaces; both =
  AND; ``ipBlock`` = the CIDR minus its exceptions, matched against the
  address on the wire, pod addresses included. Selectors never match nodes or
  external addresses.
- Ports: the protocol must match; a number (to ``endPort`` inclusive) or no
  number (every port); a name is resolved on the *destination* pod by
  containerPort name and protocol, so one name can mean different numbers on
  different pods and never matches a destination that is not a pod.
- Namespaces always carry ``kubernetes.io/metadata.name=<name>``, as the API
  server sets it; a namespace the snapshot lacks has only that label.
- Tiers (``pycni.policy.admin_match``): AdminNetworkPolicies first (Allow or
  Deny decide, Pass goes on), then NetworkPolicy, then, only for a pod no
  NetworkPolicy isolates in that direction, the BaselineAdminNetworkPolicy.
  ``DirectionVerdict.tier`` names the admin rule that decided, ``passed`` an
  ANP Pass that handed the connection on.

The address on the wire is chosen from the family both ends have (IPv4
first). ``pycni.policy.reachability`` tabulates every pod pair with it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from typing import Literal

from pycni.policy.admin_match import TierMatch, admin_order, first_admin_match, first_baseline_match
from pycni.policy.admin_model import AdminNetworkPolicy, BaselineAdminNetworkPolicy
from pycni.policy.model import (
    Direction,
    IPBlock,
    Labels,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Protocol,
)
from pycni.policy.selectors import selector_matches

__all__ = [
    "NAMESPACE_NAME_LABEL",
    "DirectionVerdict",
    "Endpoint",
    "Match",
    "Miss",
    "Node",
    "Party",
    "Snapshot",
    "Verdict",
    "evaluate",
    "isolating",
    "judge_quickly",
    "named_port_number",
    "resolve",
]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

Endpoint = Pod | str
PartyKind = Literal["pod", "node", "external"]
Status = Literal["not-a-pod", "own-node", "not-isolated", "allowed", "denied"]


@dataclass(frozen=True)
class Node:
    """A cluster node and every address it owns (primary, VTEP ``S.0``, ...)."""

    name: str
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """What the evaluator judges against: the objects in force and the nodes' addresses."""

    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    policies: tuple[NetworkPolicy, ...] = ()
    nodes: tuple[Node, ...] = ()
    admin_policies: tuple[AdminNetworkPolicy, ...] = ()
    baseline: BaselineAdminNetworkPolicy | None = None

    @cached_property
    def admin_ordered(self) -> list[AdminNetworkPolicy]:
        return admin_order(self.admin_policies)

    def namespace_labels(self, name: str) -> Labels:
        """The namespace's labels with the API server's ``kubernetes.io/metadata.name``."""
        return self._namespace_labels.get(name) or ((NAMESPACE_NAME_LABEL, name),)

    @cached_property
    def _namespace_labels(self) -> dict[str, Labels]:
        # computed once per snapshot: peer matching asks for it per rule and pair
        table = {}
        for ns in self.namespaces:
            labels = dict(ns.labels)
            labels.setdefault(NAMESPACE_NAME_LABEL, ns.name)
            table[ns.name] = tuple(sorted(labels.items()))
        return table

    def pod(self, key: str) -> Pod | None:
        return next((pod for pod in self.pods if pod.key == key), None)


@dataclass(frozen=True)
class Party:
    """One end of a connection as policy sees it. ``pod`` is set only when ``kind == "pod"``;
    ``node`` is the node a pod runs on or the node owning the address; ``ip`` is the
    address on the wire (None for a pod with no address yet); ``host_pod`` names a
    host-network pod (which is its node)."""

    kind: PartyKind
    ip: str | None = None
    pod: Pod | None = None
    node: str = ""
    host_pod: str = ""

    @property
    def name(self) -> str:
        if self.pod is not None:
            return self.pod.key
        return self.host_pod or self.ip or "?"


@dataclass(frozen=True)
class Match:
    """A rule that allows the connection: ``peer``/``port`` are indexes, None = all."""

    policy: str
    direction: Direction
    rule: int
    peer: int | None
    port: int | None
    # for wording only: the rule itself and its policy's namespace
    body: PolicyRule | None = field(default=None, compare=False)
    namespace: str = field(default="", compare=False)


@dataclass(frozen=True)
class Miss:
    """A nearest miss: a rule that matched the port but no peer, or a peer but no port.

    ``rule`` and ``namespace`` (the policy's) let ``explain`` word it; ``other`` is the
    end the rule's peers are about (the source for ingress, the destination for egress),
    with its namespace's labels; ``dst_pod`` is where named ports were resolved."""

    policy: str
    direction: Direction
    rule_index: int
    kind: Literal["peer", "port"]
    rule: PolicyRule
    namespace: str
    other: Party
    dst_pod: Pod | None
    other_namespace_labels: Labels = ()


@dataclass(frozen=True)
class DirectionVerdict:
    direction: Direction
    status: Status
    party: Party  # the end judged: the source for egress, the destination for ingress
    isolated_by: tuple[str, ...] = ()
    allowed_by: tuple[Match, ...] = ()
    misses: tuple[Miss, ...] = ()
    empty_policies: tuple[str, ...] = ()  # isolating policies with no rules in this direction
    tier: TierMatch | None = None  # the AdminNetworkPolicy or baseline rule that decided
    passed: TierMatch | None = None  # an AdminNetworkPolicy Pass that handed over to NetworkPolicy

    @property
    def allowed(self) -> bool:
        return self.status != "denied"


@dataclass(frozen=True)
class Verdict:
    src: Party
    dst: Party
    port: int
    protocol: Protocol
    egress: DirectionVerdict
    ingress: DirectionVerdict

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed


# --- resolving ends --------------------------------------------------------------------


def _family(ip: str) -> int:
    return ipaddress.ip_address(ip).version


def _node_of_ip(snapshot: Snapshot, ip: str) -> str | None:
    for node in snapshot.nodes:
        if ip in node.ips:
            return node.name
    for pod in snapshot.pods:
        if pod.host_network and ip in pod.ips:
            return pod.node
    return None


def _candidates(snapshot: Snapshot, end: Endpoint) -> tuple[Party, tuple[str, ...]]:
    """The party (ip not yet chosen) and the addresses it may use on the wire."""
    if isinstance(end, str) and "/" in end:
        found = snapshot.pod(end)
        if found is None:
            raise ValueError(f"no pod {end!r} in the snapshot")
        end = found
    if isinstance(end, Pod):
        if end.host_network:
            return Party("node", node=end.node, host_pod=end.key), end.ips
        return Party("pod", pod=end, node=end.node), end.ips
    try:
        ip = str(ipaddress.ip_address(end))
    except ValueError:
        raise ValueError(f"{end!r} is neither an IP address nor namespace/pod") from None
    node = _node_of_ip(snapshot, ip)
    if node is not None:
        return Party("node", node=node), (ip,)
    pod = next((p for p in snapshot.pods if not p.host_network and ip in p.ips), None)
    if pod is not None:
        return Party("pod", pod=pod, node=pod.node), (ip,)
    return Party("external"), (ip,)


def _pick(ips: tuple[str, ...], family: int | None) -> str | None:
    return next((ip for ip in ips if family is None or _family(ip) == family), None)


def resolve(snapshot: Snapshot, src: Endpoint, dst: Endpoint) -> tuple[Party, Party]:
    """Both ends as parties, with the addresses of one family both have (IPv4 first)."""
    src_party, src_ips = _candidates(snapshot, src)
    dst_party, dst_ips = _candidates(snapshot, dst)
    common = {_family(ip) for ip in src_ips} & {_family(ip) for ip in dst_ips}
    family = min(common) if common else None
    return (
        Party(src_party.kind, _pick(src_ips, family), src_party.pod, src_party.node, src_party.host_pod),
        Party(dst_party.kind, _pick(dst_ips, family), dst_party.pod, dst_party.node, dst_party.host_pod),
    )


# --- matching ----------------------------------------------------------------------------


def isolating(snapshot: Snapshot, pod: Pod, direction: Direction) -> list[NetworkPolicy]:
    """The policies that select ``pod`` and list ``direction``; host-network pods have none."""
    if pod.host_network:
        return []
    return [
        policy
        for policy in snapshot.policies
        if policy.namespace == pod.namespace
        and direction in policy.policy_types
        and selector_matches(policy.pod_selector, pod.labels)
    ]


@lru_cache(maxsize=4096)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def _in_block(ip: str | None, block: IPBlock) -> bool:
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    cidr = _network(block.cidr)
    if address.version != cidr.version or address not in cidr:
        return False
    return not any(address in _network(exc) for exc in block.except_)


def peer_matches(snapshot: Snapshot, peer: PolicyPeer, policy_namespace: str, party: Party) -> bool:
    """One from/to entry against the other end of the connection."""
    if peer.ip_block is not None:
        return _in_block(party.ip, peer.ip_block)
    if party.pod is None:
        return False  # selectors select pods; nodes and outside addresses are never pods
    if peer.namespace_selector is None:
        if party.pod.namespace != policy_namespace:
            return False
    elif not selector_matches(peer.namespace_selector, snapshot.namespace_labels(party.pod.namespace)):
        return False
    return peer.pod_selector is None or selector_matches(peer.pod_selector, party.pod.labels)


def named_port_number(pod: Pod | None, name: str, protocol: Protocol) -> int | None:
    """The number ``name`` stands for on ``pod`` for ``protocol``; None when it has no such port."""
    if pod is None:
        return None
    return next(
        (cp.container_port for cp in pod.ports if cp.name == name and cp.protocol == protocol),
        None,
    )


def port_matches(policy_port: PolicyPort, port: int, protocol: Protocol, dst_pod: Pod | None) -> bool:
    if policy_port.protocol != protocol:
        return False
    if policy_port.port is None:
        return True
    if isinstance(policy_port.port, str):
        return named_port_number(dst_pod, policy_port.port, protocol) == port
    end = policy_port.end_port if policy_port.end_port is not None else policy_port.port
    return policy_port.port <= port <= end


def _first(indexes: Iterable[int]) -> int | None:
    return next(iter(indexes), None)


Isolation = Callable[[Pod, Direction], list[NetworkPolicy]]


def _rule_allows(
    snapshot: Snapshot,
    rule: PolicyRule,
    namespace: str,
    other: Party,
    dst_pod: Pod | None,
    port: int,
    protocol: Protocol,
) -> bool:
    if rule.ports and not any(port_matches(pp, port, protocol, dst_pod) for pp in rule.ports):
        return False
    return not rule.peers or any(peer_matches(snapshot, peer, namespace, other) for peer in rule.peers)


def _judge(
    snapshot: Snapshot,
    isolation: Isolation,
    direction: Direction,
    party: Party,
    other: Party,
    dst_pod: Pod | None,
    port: int,
    protocol: Protocol,
    detail: bool = True,
) -> DirectionVerdict:
    """Egress at the source or ingress at the destination, for a party that is a pod.

    Without ``detail`` only the status is right: it stops at the first allowing rule."""
    assert party.pod is not None
    policies = isolation(party.pod, direction)
    if not policies:
        return DirectionVerdict(direction, "not-isolated", party)
    keys = tuple(policy.key for policy in policies)
    matches: list[Match] = []
    misses: list[Miss] = []
    empty: list[str] = []
    for policy in policies:
        rules = policy.ingress if direction == "Ingress" else policy.egress
        if not rules:
            empty.append(policy.key)
        for index, rule in enumerate(rules):
            if not detail:
                if _rule_allows(snapshot, rule, policy.namespace, other, dst_pod, port, protocol):
                    return DirectionVerdict(direction, "allowed", party, keys)
                continue
            peer_hits = [
                i for i, peer in enumerate(rule.peers) if peer_matches(snapshot, peer, policy.namespace, other)
            ]
            port_hits = [i for i, pp in enumerate(rule.ports) if port_matches(pp, port, protocol, dst_pod)]
            peer_ok = not rule.peers or bool(peer_hits)
            port_ok = not rule.ports or bool(port_hits)
            if peer_ok and port_ok:
                first_peer, first_port = _first(peer_hits), _first(port_hits)
                matches.append(Match(policy.key, direction, index, first_peer, first_port, rule, policy.namespace))
            elif peer_ok or port_ok:
                kind: Literal["peer", "port"] = "port" if peer_ok else "peer"
                ns_labels = snapshot.namespace_labels(other.pod.namespace) if other.pod is not None else ()
                misses.append(
                    Miss(policy.key, direction, index, kind, rule, policy.namespace, other, dst_pod, ns_labels)
                )
    if matches:
        return DirectionVerdict(direction, "allowed", party, keys, tuple(matches))
    return DirectionVerdict(direction, "denied", party, keys, (), tuple(misses), tuple(empty))


def _tiers(
    snapshot: Snapshot,
    isolation: Isolation,
    direction: Direction,
    party: Party,
    other: Party,
    dst_pod: Pod | None,
    port: int,
    protocol: Protocol,
    detail: bool,
) -> DirectionVerdict:
    """Admin tier, NetworkPolicy, baseline tier: the first that decides, for a party that is a pod."""
    assert party.pod is not None
    labels = snapshot.namespace_labels
    admin = None
    if snapshot.admin_policies:
        admin = first_admin_match(snapshot.admin_ordered, party.pod, direction, other.pod, other.ip, dst_pod,
                                  port, protocol, labels)
        if admin is not None and admin.action != "Pass":
            return DirectionVerdict(direction, "allowed" if admin.action == "Allow" else "denied", party, tier=admin)
    verdict = _judge(snapshot, isolation, direction, party, other, dst_pod, port, protocol, detail)
    if verdict.status == "not-isolated":
        base = first_baseline_match(snapshot.baseline, party.pod, direction, other.pod, other.ip, dst_pod, port,
                                    protocol, labels)
        if base is not None:
            status: Status = "allowed" if base.action == "Allow" else "denied"
            return DirectionVerdict(direction, status, party, tier=base, passed=admin)
    return replace(verdict, passed=admin) if admin is not None else verdict


def evaluate(snapshot: Snapshot, src: Endpoint, dst: Endpoint, port: int, protocol: Protocol) -> Verdict:
    """The verdict on a new ``protocol`` connection from ``src`` to ``dst`` port ``port``."""
    return _evaluate(snapshot, lambda pod, direction: isolating(snapshot, pod, direction), src, dst, port, protocol)


def _evaluate(
    snapshot: Snapshot,
    isolation: Isolation,
    src: Endpoint,
    dst: Endpoint,
    port: int,
    protocol: Protocol,
    detail: bool = True,
) -> Verdict:
    src_party, dst_party = resolve(snapshot, src, dst)
    dst_pod = dst_party.pod
    if src_party.pod is None:
        egress = DirectionVerdict("Egress", "not-a-pod", src_party)
    elif dst_party.kind == "node" and dst_party.node and dst_party.node == src_party.node:
        egress = DirectionVerdict("Egress", "own-node", src_party)
    else:
        egress = _tiers(snapshot, isolation, "Egress", src_party, dst_party, dst_pod, port, protocol, detail)
    if dst_party.pod is None:
        ingress = DirectionVerdict("Ingress", "not-a-pod", dst_party)
    elif src_party.kind == "node" and src_party.node and src_party.node == dst_party.node:
        ingress = DirectionVerdict("Ingress", "own-node", dst_party)
    else:
        ingress = _tiers(snapshot, isolation, "Ingress", dst_party, src_party, dst_pod, port, protocol, detail)
    return Verdict(src_party, dst_party, port, protocol, egress, ingress)


def judge_quickly(snapshot: Snapshot, isolation: Isolation, src: Pod, dst: Pod, port: int,
                  protocol: Protocol) -> bool:
    """Only the answer (no explanation): what reachability tables need, with a memoised ``isolation``."""
    return _evaluate(snapshot, isolation, src, dst, port, protocol, detail=False).allowed
