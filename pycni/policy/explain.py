"""Verdicts in words: the text ``pycni policy explain`` prints.

Contract: pure functions over ``pycni.policy.evaluate`` values; no I/O.
``explain(verdict)`` prints a headline, then per direction (egress first, as
the packet meets it) one line ``<direction> <from|to> <end> (node N): <verdict>``
(N: the node that enforces that side) and,
indented, why: not a pod, its own node, not isolated, isolated by which
policies and which rule allowed it, or on a deny the nearest misses: rules
that matched the port but no peer, or a peer but not the port, e.g.::

    x/allow ingress[0] allows TCP/80 from pods with pod=a in namespace x; the source x/b has pod=b

Rule parts are named as in the policy: ``ingress[0]``, ``from[1]``/``to[1]``,
``ports[0]``. A direction the admin tiers decided names the rule
(``anp:ops ingress[2] (deny-db)``, with its priority and action), and one an
AdminNetworkPolicy passed on says so before the NetworkPolicy reasons.
"""

from __future__ import annotations

from pycni.policy.evaluate import (
    NAMESPACE_NAME_LABEL,
    DirectionVerdict,
    Match,
    Miss,
    Party,
    Verdict,
    named_port_number,
)
from pycni.policy.model import Direction, Labels, LabelSelector, Pod, PolicyPeer, PolicyPort, PolicyRule, Protocol
from pycni.policy.selectors import labels_text, selector_text

__all__ = ["explain", "match_text", "miss_text", "peer_text", "port_text", "rule_text"]


def _pods_with(sel: LabelSelector | None) -> str:
    text = selector_text(sel) if sel is not None else ""
    return f"pods with {text}" if text else "all pods"


def peer_text(peer: PolicyPeer, namespace: str) -> str:
    """One from/to entry, e.g. ``pods with pod=a in namespaces with ns=y``."""
    if peer.ip_block is not None:
        block = peer.ip_block
        return block.cidr + (f" except {', '.join(block.except_)}" if block.except_ else "")
    pods = _pods_with(peer.pod_selector)
    if peer.namespace_selector is None:
        return f"{pods} in namespace {namespace}"
    ns_text = selector_text(peer.namespace_selector)
    return f"{pods} in namespaces with {ns_text}" if ns_text else f"{pods} in all namespaces"


def port_text(port: PolicyPort) -> str:
    """One ports entry: ``TCP/80``, ``TCP/8000-9000``, ``TCP/http``, ``every UDP port``."""
    if port.port is None:
        return f"every {port.protocol} port"
    if port.end_port is not None:
        return f"{port.protocol}/{port.port}-{port.end_port}"
    return f"{port.protocol}/{port.port}"


def rule_text(rule: PolicyRule, direction: Direction, namespace: str) -> str:
    """What a rule allows: ``TCP/80, TCP/81 from pods with pod=a in namespace x``."""
    ports = ", ".join(port_text(port) for port in rule.ports) if rule.ports else "every port"
    word = "from" if direction == "Ingress" else "to"
    peers = " or ".join(peer_text(peer, namespace) for peer in rule.peers) if rule.peers else "anywhere"
    return f"{ports} {word} {peers}"


def _rule_name(policy: str, direction: Direction, index: int) -> str:
    return f"{policy} {direction.lower()}[{index}]"


def match_text(match: Match) -> str:
    """``x/allow ingress[0] from[1] ports[0]: <what the rule allows>`` (``all peers``/``all ports``
    stand for empty lists)."""
    word = "from" if match.direction == "Ingress" else "to"
    peer = f"{word}[{match.peer}]" if match.peer is not None else "all peers"
    port = f"ports[{match.port}]" if match.port is not None else "all ports"
    text = f"{_rule_name(match.policy, match.direction, match.rule)} {peer} {port}"
    if match.body is None:
        return text
    return f"{text}: {rule_text(match.body, match.direction, match.namespace)}"


def _party_facts(party: Party, rule: PolicyRule, namespace_labels: Labels) -> str:
    """What the rule's peers looked at: labels, namespace labels, the address."""
    wants_ns = any(peer.namespace_selector is not None for peer in rule.peers)
    wants_ip = any(peer.ip_block is not None for peer in rule.peers)
    if party.pod is None:
        if party.host_pod:
            return f"{party.name} is on node {party.node}'s host network, not a pod"
        what = "node " + party.node + "'s address, not a pod" if party.kind == "node" else "not a pod"
        return f"{party.name} is {what}"
    labels = labels_text(party.pod.labels)
    facts = f"{party.name} has {labels}" if labels else f"{party.name} has no labels"
    if wants_ns:
        facts += f" in namespace {party.pod.namespace}"
        ns_labels = labels_text(tuple(kv for kv in namespace_labels if kv[0] != NAMESPACE_NAME_LABEL))
        facts += f" with {ns_labels}" if ns_labels else ""
    if wants_ip:
        facts += f" and address {party.ip}" if party.ip else " and no address yet"
    return facts


def _named_port_note(rule: PolicyRule, protocol: Protocol, dst_pod: Pod | None) -> str:
    notes = []
    for port in rule.ports:
        if not isinstance(port.port, str) or port.protocol != protocol:
            continue
        number = named_port_number(dst_pod, port.port, port.protocol)
        where = dst_pod.key if dst_pod is not None else "the destination"
        if number is None:
            notes.append(f"{where} has no {port.protocol} port named {port.port}")
        else:
            notes.append(f"{port.port} is {port.protocol}/{number} on {where}")
    return f" ({'; '.join(notes)})" if notes else ""


def miss_text(miss: Miss, port: int, protocol: Protocol) -> str:
    """A nearest miss in one line: what the rule allows, and what did not fit."""
    head = f"{_rule_name(miss.policy, miss.direction, miss.rule_index)} allows "
    head += rule_text(miss.rule, miss.direction, miss.namespace)
    if miss.kind == "peer":
        role = "source" if miss.direction == "Ingress" else "destination"
        return f"{head}; the {role} {_party_facts(miss.other, miss.rule, miss.other_namespace_labels)}"
    return f"{head}; the connection is {protocol}/{port}{_named_port_note(miss.rule, protocol, miss.dst_pod)}"


def _end(party: Party) -> str:
    if party.pod is not None:
        return party.name
    if party.kind == "node":
        return f"{party.name} (node {party.node})"
    return party.name


def _direction_lines(verdict: DirectionVerdict, port: int, protocol: Protocol) -> list[str]:
    word = "egress from" if verdict.direction == "Egress" else "ingress to"
    party = verdict.party
    where = f" (node {party.node})" if party.pod is not None and party.node else ""  # the node that enforces it
    head = f"{word} {_end(party)}{where}: {'allowed' if verdict.allowed else 'denied'}"
    why: list[str] = []
    if verdict.passed is not None:
        why.append(f"passed on by {verdict.passed} (AdminNetworkPolicy priority {verdict.passed.priority}, Pass)")
    if verdict.tier is not None:
        tier = verdict.tier
        kind = "AdminNetworkPolicy" if tier.priority is not None else "BaselineAdminNetworkPolicy"
        rank = f" priority {tier.priority}" if tier.priority is not None else ""
        what = "allowed" if tier.action == "Allow" else "denied"
        why.append(f"{what} by {tier} ({kind}{rank}, {tier.action})")
        if tier.priority is not None:
            why.append("AdminNetworkPolicies decide before NetworkPolicy: no NetworkPolicy was consulted")
        else:
            why.append(f"no NetworkPolicy isolates {party.name} for {verdict.direction.lower()}; the baseline decided")
    elif verdict.status == "not-a-pod":
        if party.host_pod:
            why.append(f"not checked: {party.name} uses node {party.node}'s host network; host-network pods are nodes")
        elif party.kind == "node":
            why.append(f"not checked: {party.name} is node {party.node}'s address; nodes are never pods")
        else:
            why.append(f"not checked: {party.name} is not a pod (outside the cluster)")
    elif verdict.status == "own-node" and verdict.direction == "Ingress":
        why.append(f"not checked: from its own node {party.node} (a pod's node always reaches it)")
    elif verdict.status == "own-node":
        why.append(f"not checked: to its own node {party.node} (a pod always reaches its node)")
    elif verdict.status == "not-isolated":
        why.append(f"not isolated: no policy selects {party.name} for {verdict.direction.lower()}")
    else:
        why.append(f"isolated by {', '.join(verdict.isolated_by)}")
        why += [f"allowed by {match_text(match)}" for match in verdict.allowed_by]
        if not verdict.allowed:
            why += [f"{key} allows no {verdict.direction.lower()}" for key in verdict.empty_policies]
            if verdict.misses:
                why.append("nearest misses:")
                why += [f"  {miss_text(miss, port, protocol)}" for miss in verdict.misses]
            elif len(verdict.empty_policies) < len(verdict.isolated_by):
                why.append(f"no {verdict.direction.lower()} rule matches the peer or the port")
    return [head] + [f"  {line}" for line in why]


def explain(verdict: Verdict) -> str:
    """The whole explanation, one line per fact, ending without a newline."""
    src, dst = verdict.src, verdict.dst
    src_ip = f" ({src.ip})" if src.pod is not None and src.ip else ""
    dst_ip = f" ({dst.ip})" if dst.pod is not None and dst.ip else ""
    lines = [
        f"{_end(src)}{src_ip} -> {_end(dst)}{dst_ip} {verdict.protocol}/{verdict.port}: "
        + ("allowed" if verdict.allowed else "denied")
    ]
    lines += _direction_lines(verdict.egress, verdict.port, verdict.protocol)
    lines += _direction_lines(verdict.ingress, verdict.port, verdict.protocol)
    return "\n".join(lines)
