"""NetworkPolicy to nftables, as a pure function: the desired table for one node.

Contract: values in, values out; no I/O. ``compile_node(view)`` returns a
``Ruleset``: every named object of pycni's one table (``inet pycni_policy``)
keyed by kind and name, each object's content fully determined by the view.
``pycni.policy.nftdiff`` turns two rulesets into the smallest transaction
between them; the enforcer keeps the last committed ruleset in memory, so
the kernel is never listed on the hot path.

Layout (docs/DESIGN.md "NetworkPolicy" says why):

- ``egress`` and ``ingress`` are separate base chains on the ``forward``
  hook, egress first: ``accept`` in one still leaves the other to judge.
  Each passes established/related packets, lets IPv6
  neighbour discovery through, then dispatches on the pod's IP through a
  verdict map (``egress_v4``: local pod IP -> ``goto`` its chain). A pod
  with no element is not isolated in that direction.
- Nothing hooks ``input`` or ``output``: traffic between a pod and its own
  node is always allowed (Kubernetes says so; probes depend on it). Remote
  nodes get no exemption: their addresses are not pods, only ipBlocks
  match them.
- ``pod_<id>_in|eg``: one chain per isolated local pod and direction, the
  union of the policies that isolate it: a jump to each policy's chain,
  then a rate-limited NFLOG (group 2) and a counted drop whose comment
  names the isolating policies.
- ``pol_<id>_in|eg``: one chain per policy and direction, shared by every
  local pod it selects. One rule per (rule, peer), and per named port:
  ``ip saddr @peer_<id>_v4 meta l4proto . th dport { tcp . 80 } counter
  accept comment "x/allow ingress[0] peer[1]"``. Never the peer x port or
  pod x pod product.
- ``peer_<id>_v4|v6``: the pod IPs a (namespace scope, podSelector,
  namespaceSelector) triple selects, shared by every policy that has the
  same peer; ``cidr_<id>_v4|v6`` (interval): an ipBlock, its exceptions
  already subtracted (nft cannot carve them out later);
  ``nport_<id>_v4|v6``: ``ip . proto . port`` of a named port resolved on
  each destination pod it applies to.

Object names derive from a hash of what they stand for, so they are stable
across restarts and the same on every node.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pycni.policy.model import (
    Direction,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)
from pycni.policy.selectors import selector_matches

__all__ = [
    "FAMILY",
    "TABLE",
    "Chain",
    "Map",
    "NodeView",
    "Ruleset",
    "Set",
    "compile_node",
    "ip_family",
    "pod_chain_name",
    "policy_chain_name",
]

FAMILY = "inet"
TABLE = "pycni_policy"
LOG_GROUP = 2
LOG_RATE = "limit rate 10/second burst 20 packets"
# Router/neighbour solicitation and advertisement, redirect: IPv6 is dead without them.
ND_TYPES = "{ nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect }"
Fam = Literal["v4", "v6"]
FAMILIES: tuple[Fam, ...] = ("v4", "v6")
_ADDR_TYPE = {"v4": "ipv4_addr", "v6": "ipv6_addr"}
_IP = {"v4": "ip", "v6": "ip6"}
_SUFFIX = {"Ingress": "in", "Egress": "eg"}
_PLAIN_MATCHES = 4  # up to this many ports in a rule are written as plain matches, more share a set


@dataclass(frozen=True)
class Set:
    name: str
    type: str
    elements: frozenset[str] = frozenset()
    interval: bool = False


@dataclass(frozen=True)
class Map:
    """A verdict map: element key -> verdict text (``goto pod_..._in``)."""

    name: str
    type: str
    elements: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Chain:
    name: str
    rules: tuple[str, ...] = ()
    hook: str = ""  # "type filter hook forward priority -2; policy accept;" for base chains


@dataclass(frozen=True)
class Ruleset:
    """Every object of the table by name; sets and maps before chains when rendered."""

    sets: Mapping[str, Set] = field(default_factory=dict)
    maps: Mapping[str, Map] = field(default_factory=dict)
    chains: Mapping[str, Chain] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeView:
    """What one node's agent knows: the cluster's objects and which node it is.

    ``pods`` are every pod with an endpoint anywhere (IPs and node set);
    pods without IPs cannot be matched and are ignored.
    """

    node: str
    namespaces: Mapping[str, Namespace]
    pods: Sequence[Pod]
    policies: Sequence[NetworkPolicy]


def ip_family(address: str) -> Fam:
    return "v6" if ":" in address else "v4"


def _digest(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


def pod_chain_name(pod_key: str, direction: Direction) -> str:
    return f"pod_{_digest('pod', pod_key)}_{_SUFFIX[direction]}"


def policy_chain_name(policy_key: str, direction: Direction) -> str:
    return f"pol_{_digest('policy', policy_key)}_{_SUFFIX[direction]}"


class _Matcher:
    """Selector evaluation over the view through label indexes, memoised per peer.

    Pods are indexed by namespace and by label pair, so a selector costs the
    size of its smallest matchLabels bucket, not the number of pods.
    """

    def __init__(self, view: NodeView) -> None:
        self.view = view
        self.pods = [p for p in view.pods if p.ips and not p.host_network]
        self._ns_labels = {name: ns.labels for name, ns in view.namespaces.items()}
        self._by_ns: dict[str, set[int]] = {}
        self._by_label: dict[tuple[str, str], set[int]] = {}
        self._local_by_ns: dict[str, list[int]] = {}
        for i, pod in enumerate(self.pods):
            self._by_ns.setdefault(pod.namespace, set()).add(i)
            for pair in pod.labels:
                self._by_label.setdefault(pair, set()).add(i)
            if pod.node == view.node:
                self._local_by_ns.setdefault(pod.namespace, []).append(i)
        self._peer_cache: dict[tuple[str, LabelSelector | None, LabelSelector | None], tuple[Pod, ...]] = {}
        # Rules for a family no pod has would only cost the kernel (a v4-only cluster gets no ip6 rules).
        self.families: tuple[Fam, ...] = tuple(
            fam for fam in FAMILIES if any(ip_family(ip) == fam for p in self.pods for ip in p.ips))

    def ns_labels(self, namespace: str) -> tuple[tuple[str, str], ...]:
        # A namespace that has pods but no object yet still carries its name label.
        return self._ns_labels.get(namespace, (("kubernetes.io/metadata.name", namespace),))

    def _matching(self, candidates: set[int], selector: LabelSelector | None) -> set[int]:
        if selector is None:
            return candidates
        for pair in selector.match_labels:
            candidates = candidates & self._by_label.get(pair, set())
            if not candidates:
                return candidates
        if not selector.match_expressions:
            return candidates
        return {i for i in candidates if selector_matches(selector, self.pods[i].labels)}

    def selected(self, policy: NetworkPolicy) -> list[Pod]:
        """Local pods the policy's podSelector selects."""
        local = self._local_by_ns.get(policy.namespace, [])
        return [self.pods[i] for i in local if selector_matches(policy.pod_selector, self.pods[i].labels)]

    def peer_pods(self, scope: str, peer: PolicyPeer) -> tuple[Pod, ...]:
        key = (scope if peer.namespace_selector is None else "", peer.pod_selector, peer.namespace_selector)
        found = self._peer_cache.get(key)
        if found is None:
            if peer.namespace_selector is None:
                in_scope = set(self._by_ns.get(scope, ()))
            else:
                selector = peer.namespace_selector
                in_scope = set().union(*(
                    members for name, members in self._by_ns.items()
                    if selector_matches(selector, self.ns_labels(name))
                ))
            found = tuple(self.pods[i] for i in sorted(self._matching(in_scope, peer.pod_selector)))
            self._peer_cache[key] = found
        return found


class _Builder:
    def __init__(self, view: NodeView) -> None:
        self.m = _Matcher(view)
        self.sets: dict[str, Set] = {}
        self.chains: dict[str, Chain] = {}
        self.vmaps: dict[str, dict[str, str]] = {
            f"{d}_{f}": {} for d in ("ingress", "egress") for f in FAMILIES
        }

    # -- sets ---------------------------------------------------------------

    def _add_set(self, name: str, type_: str, elements: Iterable[str], interval: bool = False) -> str:
        self.sets[name] = Set(name, type_, frozenset(elements), interval)
        return name

    def peer_set(self, scope: str, peer: PolicyPeer, fam: Fam) -> str:
        scope_key = scope if peer.namespace_selector is None else ""
        name = f"peer_{_digest(scope_key, peer.pod_selector, peer.namespace_selector)}_{fam}"
        if name not in self.sets:
            ips = (ip for p in self.m.peer_pods(scope, peer) for ip in p.ips if ip_family(ip) == fam)
            self._add_set(name, _ADDR_TYPE[fam], ips)
        return name

    def cidr_set(self, block: IPBlock) -> tuple[str, Fam]:
        net = ipaddress.ip_network(block.cidr, strict=False)
        fam: Fam = "v4" if net.version == 4 else "v6"
        name = f"cidr_{_digest(block)}_{fam}"
        if name not in self.sets:
            self._add_set(name, _ADDR_TYPE[fam], _subtract(block), interval=True)
        return name, fam

    def nport_set(self, pods: Iterable[Pod], port_name: str, protocol: str, fam: Fam, key: object) -> str:
        name = f"nport_{_digest(key, port_name, protocol)}_{fam}"
        if name not in self.sets:
            elements = {
                f"{ip} . {protocol.lower()} . {cp.container_port}"
                for pod in pods for cp in pod.ports if cp.name == port_name and cp.protocol == protocol
                for ip in pod.ips if ip_family(ip) == fam
            }
            self._add_set(name, f"{_ADDR_TYPE[fam]} . inet_proto . inet_service", elements)
        return name

    # -- chains -------------------------------------------------------------

    def policy_chain(self, policy: NetworkPolicy, direction: Direction, selected: list[Pod]) -> str:
        name = policy_chain_name(policy.key, direction)
        if name in self.chains:
            return name
        rules_ = policy.ingress if direction == "Ingress" else policy.egress
        lines: list[str] = []
        for r_index, rule in enumerate(rules_):
            lines.extend(self._rule_lines(policy, direction, r_index, rule, selected))
        self.chains[name] = Chain(name, tuple(lines))
        return name

    def _rule_lines(self, policy: NetworkPolicy, direction: Direction, r_index: int, rule: PolicyRule,
                    selected: list[Pod]) -> list[str]:
        where = f"{policy.key} {direction.lower()}[{r_index}]"
        side = "saddr" if direction == "Ingress" else "daddr"
        numeric = [p for p in rule.ports if not isinstance(p.port, str)]
        named = [p for p in rule.ports if isinstance(p.port, str)]
        peers: list[tuple[str, PolicyPeer | None]] = [("all peers", None)] if not rule.peers else [
            (f"peer[{i}]", peer) for i, peer in enumerate(rule.peers)
        ]
        lines: list[str] = []
        for label, peer in peers:
            for fam, peer_match in self._peer_matches(policy, peer, side):
                comment = f"{where} {label}"
                if not rule.ports:
                    lines.append(_accept(peer_match, "", comment))
                lines.extend(_accept(peer_match, ports, comment) for ports in _port_matches(numeric))
                for port in named:
                    assert isinstance(port.port, str)
                    nport = self.nport_set(self._named_port_pods(policy, direction, peer, selected),
                                           port.port, port.protocol, fam, _nport_key(policy, direction, label))
                    ports = f"{_IP[fam]} daddr . meta l4proto . th dport @{nport}"
                    lines.append(_accept(peer_match, ports, f"{comment} port={port.port}"))
        return lines

    def _peer_matches(self, policy: NetworkPolicy, peer: PolicyPeer | None, side: str) -> list[tuple[Fam, str]]:
        """Per address family, the match for the peer's address (``side`` = saddr for ingress)."""
        if peer is None:
            return [(fam, f"meta nfproto ipv{4 if fam == 'v4' else 6}") for fam in self.m.families]
        if peer.ip_block is not None:
            set_name, fam = self.cidr_set(peer.ip_block)
            return [(fam, f"{_IP[fam]} {side} @{set_name}")]
        return [(fam, f"{_IP[fam]} {side} @{self.peer_set(policy.namespace, peer, fam)}") for fam in self.m.families]

    def _named_port_pods(self, policy: NetworkPolicy, direction: Direction, peer: PolicyPeer | None,
                         selected: list[Pod]) -> list[Pod]:
        """Named ports resolve on the destination pod: the selected local pods for ingress; for
        egress the peer's pods (every pod for "all peers", the pods inside an ipBlock)."""
        if direction == "Ingress":
            return selected
        if peer is None:
            return self.m.pods
        if peer.ip_block is not None:
            block = peer.ip_block
            return [p for p in self.m.pods if any(_ip_in_block(ip, block) for ip in p.ips)]
        return list(self.m.peer_pods(policy.namespace, peer))

    def pod_chain(self, pod: Pod, direction: Direction, policies: list[NetworkPolicy],
                  selected_by: dict[str, list[Pod]]) -> None:
        name = pod_chain_name(pod.key, direction)
        jumps = [f"jump {self.policy_chain(p, direction, selected_by[p.key])}" for p in policies]
        isolating = ", ".join(p.key for p in policies)
        flag = "I" if direction == "Ingress" else "E"
        log = f'{LOG_RATE} log prefix "pycni D {flag} {pod.key} " group {LOG_GROUP}'
        drop = f'counter drop comment "{_comment(f"{pod.key} isolated for {direction.lower()} by {isolating}")}"'
        self.chains[name] = Chain(name, (*jumps, log, drop))
        vmap_dir = "ingress" if direction == "Ingress" else "egress"
        for ip in pod.ips:
            self.vmaps[f"{vmap_dir}_{ip_family(ip)}"][ip] = f"goto {name}"


def _nport_key(policy: NetworkPolicy, direction: Direction, peer_label: str) -> tuple[str, ...]:
    # Ingress resolves on the selected pods whatever the peer: one set per policy serves every peer.
    return ("Ingress", policy.key) if direction == "Ingress" else ("Egress", policy.key, peer_label)


def _ip_in_block(ip: str, block: IPBlock) -> bool:
    addr = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(block.cidr, strict=False)
    if addr.version != net.version or addr not in net:
        return False
    return not any(addr in ipaddress.ip_network(e, strict=False) for e in block.except_)


def _subtract(block: IPBlock) -> list[str]:
    """``cidr`` minus every ``except``, as the few prefixes that remain."""
    remaining: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [ipaddress.ip_network(block.cidr, strict=False)]
    for text in block.except_:
        hole = ipaddress.ip_network(text, strict=False)
        next_remaining: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for net in remaining:
            if hole.version == net.version and hole.subnet_of(net):  # type: ignore[arg-type]
                next_remaining.extend(net.address_exclude(hole))  # type: ignore[arg-type]
            elif hole.version == net.version and net.subnet_of(hole):  # type: ignore[arg-type]
                continue
            else:
                next_remaining.append(net)
        remaining = next_remaining
    return sorted(str(n) for n in ipaddress.collapse_addresses(remaining))  # type: ignore[type-var]


def _port_matches(ports: Sequence[PolicyPort]) -> list[str]:
    """Port matches for one rule's numeric ports, each its own nft rule (two matches in one rule would AND).

    A few ports become one plain match each (``tcp dport 80``, ``udp dport 53-60``, ``meta l4proto
    sctp``): an anonymous set per rule costs the kernel ~1 ms to load, a plain match ~50 µs. Longer
    lists share one anonymous set: ``meta l4proto . th dport { tcp . 80, udp . 53-60, ... }``.
    """
    whole = sorted({p.protocol.lower() for p in ports if p.port is None})
    numbered = sorted({
        (p.protocol.lower(), f"{p.port}" + (f"-{p.end_port}" if p.end_port not in (None, p.port) else ""))
        for p in ports if p.port is not None and p.protocol.lower() not in whole
    })
    if len(whole) + len(numbered) <= _PLAIN_MATCHES:
        return [f"meta l4proto {proto}" for proto in whole] + [f"{proto} dport {port}" for proto, port in numbered]
    matches = []
    if whole:
        matches.append("meta l4proto { " + ", ".join(whole) + " }")
    if numbered:
        matches.append("meta l4proto . th dport { " + ", ".join(f"{proto} . {port}" for proto, port in numbered) + " }")
    return matches


def _accept(peer_match: str, port_match: str, comment: str) -> str:
    text = " ".join(part for part in (peer_match, port_match) if part)
    return f'{text} counter accept comment "{_comment(comment)}"'


def _comment(text: str) -> str:
    """nft comments: no double quotes, at most 128 bytes."""
    return text.replace('"', "").encode()[:127].decode(errors="ignore")


def _base_chains() -> dict[str, Chain]:
    chains = {}
    for name, priority, side in (("egress", -2, "saddr"), ("ingress", -1, "daddr")):
        chains[name] = Chain(name, (
            "ct state established,related accept",
            f"icmpv6 type {ND_TYPES} accept",
            f"ip {side} vmap @{name}_v4",
            f"ip6 {side} vmap @{name}_v6",
        ), hook=f"type filter hook forward priority {priority}; policy accept;")
    return chains


def compile_node(view: NodeView) -> Ruleset:
    """The whole table this node should hold for ``view``."""
    b = _Builder(view)
    policies = sorted(view.policies, key=lambda p: p.key)
    selected_by = {p.key: b.m.selected(p) for p in policies}
    isolating: dict[tuple[str, Direction], list[NetworkPolicy]] = {}
    local = {pod.key: pod for pods in selected_by.values() for pod in pods}
    for policy in policies:
        for pod in selected_by[policy.key]:
            for direction in sorted(policy.policy_types):
                isolating.setdefault((pod.key, direction), []).append(policy)
    for (pod_key, direction), by in sorted(isolating.items()):
        b.pod_chain(local[pod_key], direction, by, selected_by)
    chains = {**_base_chains(), **b.chains}
    maps = {
        name: Map(name, f"{_ADDR_TYPE['v6' if name.endswith('v6') else 'v4']} : verdict",
                  tuple(sorted(elements.items())))
        for name, elements in b.vmaps.items()
    }
    return Ruleset(sets=dict(sorted(b.sets.items())), maps=maps, chains=chains)
