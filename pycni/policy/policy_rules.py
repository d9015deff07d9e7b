"""One NetworkPolicy direction as one nft chain, and the sets its rules refer to.

Contract: pure. ``render_policy_chain(policy, direction, families)`` returns
the chain ``pol_<h>_in|eg`` and the specs of the sets it names; the rule
text depends only on those three inputs (set *names* are hashes of what
the sets stand for, never of their members), so a compiler can keep the
chain until the policy itself changes and recompute only set members.

One rule per (rule, peer, family) and per named port, never the peer x
port product: ``ip saddr @peer_<h>_v4 tcp dport 80 counter accept comment
"x/allow ingress[0] peer[1]"``. A few ports become plain matches each (an
anonymous set per rule costs the kernel ~1 ms to load, a plain match
~50 µs); longer lists share one anonymous ``proto . port`` set. Named ports
resolve on the destination pod: the selected pods for ingress, the peer's
pods for egress (every pod for "all peers", the pods inside an ipBlock).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from pycni.policy.model import Direction, IPBlock, LabelSelector, NetworkPolicy, PolicyPeer, PolicyPort
from pycni.policy.ruleset import IP_KEYWORD, Chain, Fam, digest, policy_chain_name

__all__ = [
    "CidrSet",
    "FromAll",
    "FromBlock",
    "FromPeer",
    "FromSelected",
    "NamedPortSet",
    "PeerSet",
    "SetSpec",
    "Source",
    "block_family",
    "ip_in_block",
    "nft_comment",
    "port_matches_text",
    "render_policy_chain",
    "subtract",
]

_PLAIN_MATCHES = 4  # up to this many ports in a rule are written as plain matches, more share a set


@dataclass(frozen=True)
class PeerSet:
    """The addresses of the pods a (namespace scope, podSelector, namespaceSelector) triple selects.
    ``scope`` is the policy's namespace when there is no namespaceSelector, else ""."""

    name: str
    fam: Fam
    scope: str
    pod_selector: LabelSelector | None
    namespace_selector: LabelSelector | None


@dataclass(frozen=True)
class CidrSet:
    name: str
    fam: Fam
    block: IPBlock


@dataclass(frozen=True)
class FromSelected:
    policy_key: str


@dataclass(frozen=True)
class FromPeer:
    scope: str
    pod_selector: LabelSelector | None
    namespace_selector: LabelSelector | None


@dataclass(frozen=True)
class FromAll:
    pass


@dataclass(frozen=True)
class FromBlock:
    block: IPBlock


Source = FromSelected | FromPeer | FromAll | FromBlock


@dataclass(frozen=True)
class NamedPortSet:
    """``ip . proto . port`` of ``port_name`` resolved on each pod of ``source``."""

    name: str
    fam: Fam
    port_name: str
    protocol: str
    source: Source


SetSpec = PeerSet | CidrSet | NamedPortSet


def block_family(block: IPBlock) -> Fam:
    return "v4" if ipaddress.ip_network(block.cidr, strict=False).version == 4 else "v6"


def ip_in_block(ip: str, block: IPBlock) -> bool:
    addr = ipaddress.ip_address(ip)
    net = ipaddress.ip_network(block.cidr, strict=False)
    if addr.version != net.version or addr not in net:
        return False
    return not any(addr in ipaddress.ip_network(e, strict=False) for e in block.except_)


def subtract(block: IPBlock) -> list[str]:
    """``cidr`` minus every ``except``, as the few prefixes that remain (nft cannot carve them out later)."""
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


def port_matches_text(ports: Sequence[PolicyPort]) -> list[str]:
    """Port matches for one rule's numeric ports, each its own nft rule (two matches in one rule would AND)."""
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
    return f'{text} counter accept comment "{nft_comment(comment)}"'


def nft_comment(text: str) -> str:
    """nft comments: no double quotes, at most 128 bytes."""
    return text.replace('"', "").encode()[:127].decode(errors="ignore")


class _Renderer:
    def __init__(self, policy: NetworkPolicy, direction: Direction, families: tuple[Fam, ...]) -> None:
        self.policy = policy
        self.direction = direction
        self.families = families
        self.side = "saddr" if direction == "Ingress" else "daddr"
        self.specs: dict[str, SetSpec] = {}

    def _peer_matches(self, peer: PolicyPeer | None) -> list[tuple[Fam, str]]:
        if peer is None:
            return [(fam, f"meta nfproto ipv{4 if fam == 'v4' else 6}") for fam in self.families]
        if peer.ip_block is not None:
            fam = block_family(peer.ip_block)
            name = f"cidr_{digest(peer.ip_block)}_{fam}"
            self.specs[name] = CidrSet(name, fam, peer.ip_block)
            return [(fam, f"{IP_KEYWORD[fam]} {self.side} @{name}")]
        scope = self.policy.namespace if peer.namespace_selector is None else ""
        out: list[tuple[Fam, str]] = []
        for fam in self.families:
            name = f"peer_{digest(scope, peer.pod_selector, peer.namespace_selector)}_{fam}"
            self.specs[name] = PeerSet(name, fam, scope, peer.pod_selector, peer.namespace_selector)
            out.append((fam, f"{IP_KEYWORD[fam]} {self.side} @{name}"))
        return out

    def _source(self, peer: PolicyPeer | None) -> Source:
        if self.direction == "Ingress":
            return FromSelected(self.policy.key)
        if peer is None:
            return FromAll()
        if peer.ip_block is not None:
            return FromBlock(peer.ip_block)
        scope = self.policy.namespace if peer.namespace_selector is None else ""
        return FromPeer(scope, peer.pod_selector, peer.namespace_selector)

    def _nport_match(self, peer: PolicyPeer | None, peer_label: str, port: PolicyPort, fam: Fam) -> str:
        assert isinstance(port.port, str)
        # Ingress resolves on the selected pods whatever the peer: one set per policy serves every peer.
        key = ("Ingress", self.policy.key) if self.direction == "Ingress" else ("Egress", self.policy.key, peer_label)
        name = f"nport_{digest(key, port.port, port.protocol)}_{fam}"
        self.specs[name] = NamedPortSet(name, fam, port.port, port.protocol, self._source(peer))
        return f"{IP_KEYWORD[fam]} daddr . meta l4proto . th dport @{name}"

    def lines(self) -> list[str]:
        rules = self.policy.ingress if self.direction == "Ingress" else self.policy.egress
        out: list[str] = []
        for r_index, rule in enumerate(rules):
            where = f"{self.policy.key} {self.direction.lower()}[{r_index}]"
            numeric = [p for p in rule.ports if not isinstance(p.port, str)]
            named = [p for p in rule.ports if isinstance(p.port, str)]
            peers: list[tuple[str, PolicyPeer | None]] = [("all peers", None)] if not rule.peers else [
                (f"peer[{i}]", peer) for i, peer in enumerate(rule.peers)
            ]
            for label, peer in peers:
                for fam, peer_match in self._peer_matches(peer):
                    comment = f"{where} {label}"
                    if not rule.ports:
                        out.append(_accept(peer_match, "", comment))
                    out.extend(_accept(peer_match, ports, comment) for ports in port_matches_text(numeric))
                    for port in named:
                        out.append(_accept(peer_match, self._nport_match(peer, label, port, fam),
                                           f"{comment} port={port.port}"))
        return out


def render_policy_chain(policy: NetworkPolicy, direction: Direction,
                        families: tuple[Fam, ...]) -> tuple[Chain, tuple[SetSpec, ...]]:
    renderer = _Renderer(policy, direction, families)
    chain = Chain(policy_chain_name(policy.key, direction), tuple(renderer.lines()))
    return chain, tuple(renderer.specs.values())
