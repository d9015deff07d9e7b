"""The admin tiers as nft chains: one chain per set of AdminNetworkPolicies, one for the baseline.

Contract: pure. ``render_tier_chain(name, policies, direction, families)``
writes every rule of ``policies`` (already in evaluation order) into one
chain, in order, so the first matching rule decides as the API says:
``Allow`` is ``accept``, ``Deny`` a rate-limited NFLOG then ``drop``, and
``Pass`` is ``return``: back to the pod's chain, which goes on to its
NetworkPolicies. Pods selected by the same ANPs share one such chain
(``anpt_<h>_in|eg``, named by the policies' keys), so Pass needs no packet
mark and no per-pod copy. The baseline's chain (``banp_in|eg``) is the
same without Pass; falling off its end returns, and the pod's chain ends,
which allows.

Peers reuse the NetworkPolicy sets: ``namespaces``/``pods`` are the same
``peer_<h>`` pod-address sets (namespace scope ""), each ``networks`` CIDR an
interval ``cidr_<h>`` set, named ports an ``ip . proto . port`` set resolved
on the destination pods (the subject's pods for ingress, the peer's for
egress), on each container port's own protocol.
"""

from __future__ import annotations

from collections.abc import Sequence

from pycni.policy.admin_model import AdminPeer, AdminPort, AdminRule, TierPolicy
from pycni.policy.model import Direction, IPBlock, PolicyPort
from pycni.policy.policy_rules import (
    CidrSet,
    FromPeer,
    FromSelected,
    NamedPortSet,
    PeerSet,
    SetSpec,
    block_family,
    nft_comment,
    port_matches_text,
)
from pycni.policy.ruleset import IP_KEYWORD, Chain, Fam, digest

__all__ = ["TIER_LOG_PREFIX", "baseline_chain_name", "render_tier_chain", "tier_chain_name"]

TIER_LOG_PREFIX = "pycni T"  # + " I|E <policy key> ": an admin-tier deny, read by pycni.policy.denylog
_SUFFIX = {"Ingress": "in", "Egress": "eg"}
_VERDICT = {"Allow": "accept", "Deny": "drop", "Pass": "return"}


def tier_chain_name(policy_keys: Sequence[str], direction: Direction) -> str:
    return f"anpt_{digest('anp-tier', tuple(policy_keys))}_{_SUFFIX[direction]}"


def baseline_chain_name(direction: Direction) -> str:
    return f"banp_{_SUFFIX[direction]}"


class _TierRenderer:
    def __init__(self, direction: Direction, families: tuple[Fam, ...], log_rate: str, log_group: int) -> None:
        self.direction = direction
        self.families = families
        self.side = "saddr" if direction == "Ingress" else "daddr"
        self.log = (log_rate, log_group)
        self.specs: dict[str, SetSpec] = {}

    def peer_matches(self, peer: AdminPeer) -> list[tuple[Fam, str]]:
        if peer.networks:
            out = []
            for cidr in peer.networks:
                block = IPBlock(cidr)
                fam = block_family(block)
                if fam not in self.families:
                    continue
                name = f"cidr_{digest(block)}_{fam}"
                self.specs[name] = CidrSet(name, fam, block)
                out.append((fam, f"{IP_KEYWORD[fam]} {self.side} @{name}"))
            return out
        matches = []
        for fam in self.families:
            name = f"peer_{digest('', peer.pod_selector, peer.namespace_selector)}_{fam}"
            self.specs[name] = PeerSet(name, fam, "", peer.pod_selector, peer.namespace_selector)
            matches.append((fam, f"{IP_KEYWORD[fam]} {self.side} @{name}"))
        return matches

    def named_port(self, policy: TierPolicy, peer: AdminPeer, port: AdminPort, fam: Fam) -> str:
        if self.direction == "Ingress":
            source: FromSelected | FromPeer = FromSelected(policy.key)
        else:
            source = FromPeer("", peer.pod_selector, peer.namespace_selector)
        name = f"nport_{digest('admin', source, port.name)}_{fam}"
        self.specs[name] = NamedPortSet(name, fam, port.name, "", source)
        return f"{IP_KEYWORD[fam]} daddr . meta l4proto . th dport @{name}"

    def rule_lines(self, policy: TierPolicy, index: int, rule: AdminRule) -> list[str]:
        where = f"{policy.key} {self.direction.lower()}[{index}]"
        numeric = [PolicyPort(p.protocol or "TCP", p.port, p.end_port) for p in rule.ports or () if not p.name]
        named = [p for p in rule.ports or () if p.name]
        out: list[str] = []
        for p_index, peer in enumerate(rule.peers):
            for fam, peer_match in self.peer_matches(peer):
                port_matches = [""] if rule.ports is None else port_matches_text(numeric) if numeric else []
                port_matches += [self.named_port(policy, peer, port, fam) for port in named]
                for port_match in port_matches:
                    out.extend(self.verdict(rule, f"{peer_match} {port_match}".strip(), f"{where} peer[{p_index}]"))
        return out

    def verdict(self, rule: AdminRule, match: str, comment: str) -> list[str]:
        lines = []
        if rule.action == "Deny":
            rate, group = self.log
            flag = "I" if self.direction == "Ingress" else "E"
            key = comment.split()[0][:100]  # nft log prefixes stop at 127 bytes
            lines.append(f'{match} {rate} log prefix "{TIER_LOG_PREFIX} {flag} {key} " group {group}')
        lines.append(f'{match} counter {_VERDICT[rule.action]} comment "{nft_comment(comment)}"')
        return lines


def render_tier_chain(name: str, policies: Sequence[TierPolicy], direction: Direction, families: tuple[Fam, ...],
                      log_rate: str, log_group: int) -> tuple[Chain, tuple[SetSpec, ...]]:
    """One chain holding every rule of ``policies`` in ``direction``, in the order given."""
    renderer = _TierRenderer(direction, families, log_rate, log_group)
    lines: list[str] = []
    for policy in policies:
        rules = policy.ingress if direction == "Ingress" else policy.egress
        for index, rule in enumerate(rules):
            lines.extend(renderer.rule_lines(policy, index, rule))
    return Chain(name, tuple(lines)), tuple(renderer.specs.values())
