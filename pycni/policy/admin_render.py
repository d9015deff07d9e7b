"""AdminNetworkPolicy and BaselineAdminNetworkPolicy back to Kubernetes form (``get -o yaml``, etcd).

Contract: pure. ``admin_manifest(policy)`` is the normalised object with
the API's defaults written out (every ``portNumber``/``portRange`` has its
protocol); ``to_model(admin_manifest(m)) == m`` for every validated model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pycni.policy.admin_model import (
    ADMIN_API_VERSION,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    TierPolicy,
)
from pycni.policy.model import LabelSelector

__all__ = ["admin_manifest"]

SelectorRenderer = Callable[[LabelSelector], dict[str, Any]]


def admin_manifest(policy: TierPolicy, selector: SelectorRenderer) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": policy.name}
    if policy.labels:
        metadata["labels"] = dict(policy.labels)
    spec: dict[str, Any] = {}
    if isinstance(policy, AdminNetworkPolicy):
        spec["priority"] = policy.priority
    spec["subject"] = _subject(policy.subject, selector)
    if policy.ingress:
        spec["ingress"] = [_rule(rule, "from", selector) for rule in policy.ingress]
    if policy.egress:
        spec["egress"] = [_rule(rule, "to", selector) for rule in policy.egress]
    return {"apiVersion": ADMIN_API_VERSION, "kind": policy.kind, "metadata": metadata, "spec": spec}


def _subject(subject: AdminSubject, selector: SelectorRenderer) -> dict[str, Any]:
    if subject.pod_selector is None:
        return {"namespaces": selector(subject.namespace_selector)}
    return {"pods": {"namespaceSelector": selector(subject.namespace_selector),
                     "podSelector": selector(subject.pod_selector)}}


def _rule(rule: AdminRule, peers_field: str, selector: SelectorRenderer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.name:
        out["name"] = rule.name
    out["action"] = rule.action
    out[peers_field] = [_peer(peer, selector) for peer in rule.peers]
    if rule.ports is not None:
        out["ports"] = [_port(port) for port in rule.ports]
    return out


def _peer(peer: AdminPeer, selector: SelectorRenderer) -> dict[str, Any]:
    if peer.networks:
        return {"networks": list(peer.networks)}
    assert peer.namespace_selector is not None
    if peer.pod_selector is None:
        return {"namespaces": selector(peer.namespace_selector)}
    return {"pods": {"namespaceSelector": selector(peer.namespace_selector),
                     "podSelector": selector(peer.pod_selector)}}


def _port(port: AdminPort) -> dict[str, Any]:
    if port.name:
        return {"namedPort": port.name}
    if port.end_port is not None:
        return {"portRange": {"protocol": port.protocol, "start": port.port, "end": port.end_port}}
    return {"portNumber": {"protocol": port.protocol, "port": port.port}}
