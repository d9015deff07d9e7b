"""Model objects back to Kubernetes form: what ``pycni get -o yaml`` shows and what etcd stores.

Contract: pure. ``to_manifest(obj)`` returns the normalised Kubernetes dict
of a model object (apiVersion, kind, metadata{name, namespace, labels},
spec), with the defaults made explicit: every port's ``protocol``, and the
policy's ``policyTypes``. Empty lists and empty optional fields are left
out, as the API server's own output leaves them out; an empty but present
selector stays ``{}`` (it selects everything). For every model that
``pycni.policy.validate.to_model`` returns, ``to_model(to_manifest(m)) == m``.

A Pod's ``node`` and ``ips`` (known once it is attached) are written as
``spec.nodeName`` and ``status.podIP``/``status.podIPs``, as kubectl users
expect to read them; a Pod object applied before it starts has neither.
"""

from __future__ import annotations

from typing import Any

from pycni.policy.admin_model import AdminNetworkPolicy, BaselineAdminNetworkPolicy
from pycni.policy.admin_render import admin_manifest
from pycni.policy.model import (
    API_VERSIONS,
    ContainerPort,
    IPBlock,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
)

__all__ = ["to_manifest"]

_DIRECTIONS = ("Ingress", "Egress")  # the order Kubernetes writes policyTypes in


def to_manifest(obj: Namespace | Pod | NetworkPolicy | AdminNetworkPolicy | BaselineAdminNetworkPolicy,
                ) -> dict[str, Any]:
    """The normalised Kubernetes object for a model object."""
    if isinstance(obj, Namespace):
        return _header("Namespace", _metadata(obj.name, None, obj.labels))
    if isinstance(obj, Pod):
        return _pod(obj)
    if isinstance(obj, NetworkPolicy):
        return _network_policy(obj)
    if isinstance(obj, AdminNetworkPolicy | BaselineAdminNetworkPolicy):
        return admin_manifest(obj, _selector)
    raise TypeError(f"not a policy model object: {type(obj).__name__}")


def _header(kind: str, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": metadata}


def _metadata(name: str, namespace: str | None, labels: Labels) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    return metadata


def _pod(pod: Pod) -> dict[str, Any]:
    out = _header("Pod", _metadata(pod.name, pod.namespace, pod.labels))
    spec: dict[str, Any] = {}
    if pod.node:
        spec["nodeName"] = pod.node
    if pod.host_network:
        spec["hostNetwork"] = True
    if pod.ports:
        # The model keeps the pod's ports, not which container declared them: one container holds them all.
        spec["containers"] = [{"name": "main", "ports": [_container_port(port) for port in pod.ports]}]
    out["spec"] = spec
    if pod.ips:
        out["status"] = {"podIP": pod.ips[0], "podIPs": [{"ip": ip} for ip in pod.ips]}
    return out


def _container_port(port: ContainerPort) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if port.name:
        out["name"] = port.name
    out["containerPort"] = port.container_port
    out["protocol"] = port.protocol
    return out


def _network_policy(policy: NetworkPolicy) -> dict[str, Any]:
    out = _header("NetworkPolicy", _metadata(policy.name, policy.namespace, policy.labels))
    spec: dict[str, Any] = {"podSelector": _selector(policy.pod_selector)}
    if policy.ingress:
        spec["ingress"] = [_rule(rule, "from") for rule in policy.ingress]
    if policy.egress:
        spec["egress"] = [_rule(rule, "to") for rule in policy.egress]
    spec["policyTypes"] = [direction for direction in _DIRECTIONS if direction in policy.policy_types]
    out["spec"] = spec
    return out


def _selector(selector: LabelSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        out["matchExpressions"] = [
            {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
            for r in selector.match_expressions
        ]
    return out


def _rule(rule: PolicyRule, peers_field: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rule.ports:
        out["ports"] = [_port(port) for port in rule.ports]
    if rule.peers:
        out[peers_field] = [_peer(peer) for peer in rule.peers]
    return out


def _port(port: PolicyPort) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": port.protocol}
    if port.port is not None:
        out["port"] = port.port
    if port.end_port is not None:
        out["endPort"] = port.end_port
    return out


def _peer(peer: PolicyPeer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if peer.pod_selector is not None:
        out["podSelector"] = _selector(peer.pod_selector)
    if peer.namespace_selector is not None:
        out["namespaceSelector"] = _selector(peer.namespace_selector)
    if peer.ip_block is not None:
        out["ipBlock"] = _ip_block(peer.ip_block)
    return out


def _ip_block(block: IPBlock) -> dict[str, Any]:
    out: dict[str, Any] = {"cidr": block.cidr}
    if block.except_:
        out["except"] = list(block.except_)
    return out
