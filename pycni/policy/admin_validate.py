"""AdminNetworkPolicy and BaselineAdminNetworkPolicy specs checked as their CRD schema checks them.

Contract: pure. ``admin_network_policy(checker, obj, name, labels)`` and
``baseline_admin_network_policy(...)`` walk a spec with the shared field
checker of ``pycni.policy.validate`` (same one-line, field-path messages),
record every error on it and return the model (meaningful only when no
error was recorded). The rules are the v1alpha1 CRD's (the upstream
network-policy-api ``apis/v1alpha1``), worded as the API server words
OpenAPI and CEL failures:

- ``spec.priority`` 0-1000; ``spec.subject`` exactly one of ``namespaces``
  and ``pods`` (``pods`` needs both selectors, either may be ``{}``);
- at most 100 rules per direction; a rule's ``name`` at most 100
  characters; ``action`` one of Allow, Deny, Pass (BANP: Allow, Deny);
  ``from``/``to`` 1-100 peers, each exactly one of its fields; ``ports``
  absent (every port) or 1-100 entries, each exactly one of
  ``portNumber``, ``portRange`` (start < end) and ``namedPort``;
- egress peers ``networks`` (1-25 CIDRs); a rule with a ``networks`` peer
  cannot use a ``namedPort``;
- a BANP must be named ``default``.

pycni does not implement the experimental ``nodes`` and ``domainNames``
egress peers; they are refused here, by name, rather than ignored (an
ignored Deny peer would fail open).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, cast

from pycni.policy import formats
from pycni.policy.admin_model import (
    BASELINE_NAME,
    AdminAction,
    AdminNetworkPolicy,
    AdminPeer,
    AdminPort,
    AdminRule,
    AdminSubject,
    BaselineAdminNetworkPolicy,
)
from pycni.policy.fielderror import FieldError
from pycni.policy.model import Labels, LabelSelector
from pycni.policy.model import Protocol as L4Protocol

__all__ = ["FieldChecker", "admin_network_policy", "baseline_admin_network_policy"]

_PROTOCOLS = ("TCP", "UDP", "SCTP")
_ADMIN_ACTIONS = ("Allow", "Deny", "Pass")
_BASELINE_ACTIONS = ("Allow", "Deny")
_MAX_RULES = 100
_MAX_PEERS = 100
_MAX_PORTS = 100
_MAX_NETWORKS = 25
_MAX_RULE_NAME = 100
_UNSUPPORTED_PEERS = {
    "nodes": "pycni does not implement the experimental nodes peer; select node addresses with networks",
    "domainNames": "pycni does not implement the experimental domainNames peer",
}


class FieldChecker(Protocol):
    """The parts of ``pycni.policy.validate``'s checker used here."""

    errors: list[FieldError]

    def invalid(self, path: str, value: object, *details: str) -> None: ...
    def required(self, path: str, detail: str = "") -> None: ...
    def forbidden(self, path: str, detail: str) -> None: ...
    def not_supported(self, path: str, value: object, supported: tuple[str, ...]) -> None: ...
    def mapping(self, value: object, path: str) -> Mapping[str, Any]: ...
    def sequence(self, value: object, path: str) -> list[Any]: ...
    def string(self, value: object, path: str, default: str = "") -> str: ...
    def integer(self, value: object, path: str) -> int | None: ...
    def selector(self, value: object, path: str) -> LabelSelector: ...


def admin_network_policy(checker: FieldChecker, obj: Mapping[str, Any], name: str,
                         labels: Labels) -> AdminNetworkPolicy:
    walk = _Walk(checker, _ADMIN_ACTIONS)
    spec = checker.mapping(obj.get("spec"), "spec")
    priority = 0
    if spec.get("priority") is None:
        checker.required("spec.priority")
    else:
        value = checker.integer(spec.get("priority"), "spec.priority")
        if value is not None:
            walk.bounded("spec.priority", value, 0, 1000)
            priority = value
    subject, ingress, egress = walk.spec(spec)
    return AdminNetworkPolicy(name, priority, subject, ingress, egress, labels)


def baseline_admin_network_policy(checker: FieldChecker, obj: Mapping[str, Any], name: str,
                                  labels: Labels) -> BaselineAdminNetworkPolicy:
    if name and name != BASELINE_NAME:
        checker.invalid("metadata.name", name, 'Only one baseline admin network policy with metadata.name="default" '
                                               "can be created in the cluster")
    walk = _Walk(checker, _BASELINE_ACTIONS)
    subject, ingress, egress = walk.spec(checker.mapping(obj.get("spec"), "spec"))
    return BaselineAdminNetworkPolicy(subject, ingress, egress, labels, name or BASELINE_NAME)


class _Walk:
    def __init__(self, checker: FieldChecker, actions: tuple[str, ...]) -> None:
        self.c = checker
        self.actions = actions

    def bounded(self, path: str, value: int, low: int, high: int) -> None:
        if value < low:
            self.c.invalid(path, value, f"{path} in body should be greater than or equal to {low}")
        elif value > high:
            self.c.invalid(path, value, f"{path} in body should be less than or equal to {high}")

    def items(self, value: object, path: str, low: int, high: int) -> list[Any]:
        entries = self.c.sequence(value, path)
        if value is not None and len(entries) < low:
            self.c.invalid(path, len(entries), f"{path} in body should have at least {low} items")
        if len(entries) > high:
            self.c.errors.append(FieldError("Too many", path, len(entries), f"must have at most {high} items"))
        return entries

    def one_of(self, entry: Mapping[str, Any], path: str, fields: tuple[str, ...]) -> str | None:
        """The one field set among ``fields`` (and unsupported ones); errors when none or several are."""
        given = [key for key, value in entry.items() if value is not None]
        if not given:
            self.c.invalid(path, 0, f"{path} in body should have at least 1 properties")
            return None
        if len(given) > 1:
            self.c.errors.append(FieldError("Too many", path, len(given), "must have at most 1 items"))
            return None
        key = given[0]
        if key in _UNSUPPORTED_PEERS and key not in fields:
            self.c.forbidden(f"{path}.{key}", _UNSUPPORTED_PEERS[key])
            return None
        if key not in fields:
            self.c.not_supported(f"{path}.{key}", key, fields)
            return None
        return key

    def spec(self, spec: Mapping[str, Any]) -> tuple[AdminSubject, tuple[AdminRule, ...], tuple[AdminRule, ...]]:
        if spec.get("subject") is None:
            self.c.required("spec.subject")
            subject = AdminSubject(LabelSelector())
        else:
            subject = self.subject(self.c.mapping(spec["subject"], "spec.subject"), "spec.subject")
        ingress = tuple(self.rule(raw, f"spec.ingress[{i}]", "from", ("namespaces", "pods"))
                        for i, raw in enumerate(self.items(spec.get("ingress"), "spec.ingress", 0, _MAX_RULES)))
        egress = tuple(self.rule(raw, f"spec.egress[{i}]", "to", ("namespaces", "pods", "networks"))
                       for i, raw in enumerate(self.items(spec.get("egress"), "spec.egress", 0, _MAX_RULES)))
        return subject, ingress, egress

    def subject(self, entry: Mapping[str, Any], path: str) -> AdminSubject:
        which = self.one_of(entry, path, ("namespaces", "pods"))
        if which == "namespaces":
            return AdminSubject(self.c.selector(entry["namespaces"], f"{path}.namespaces"))
        if which == "pods":
            namespaces, pods = self.namespaced_pod(entry["pods"], f"{path}.pods")
            return AdminSubject(namespaces, pods)
        return AdminSubject(LabelSelector())

    def namespaced_pod(self, value: object, path: str) -> tuple[LabelSelector, LabelSelector]:
        entry = self.c.mapping(value, path)
        for field in ("namespaceSelector", "podSelector"):
            if entry.get(field) is None:
                self.c.required(f"{path}.{field}")
        return (self.c.selector(entry.get("namespaceSelector"), f"{path}.namespaceSelector"),
                self.c.selector(entry.get("podSelector"), f"{path}.podSelector"))

    def rule(self, value: object, path: str, peers_field: str, peer_kinds: tuple[str, ...]) -> AdminRule:
        entry = self.c.mapping(value, path)
        name = self.c.string(entry.get("name"), f"{path}.name")
        if len(name) > _MAX_RULE_NAME:
            too_long = f"may not be longer than {_MAX_RULE_NAME}"
            self.c.errors.append(FieldError("Too long", f"{path}.name", detail=too_long))
        action = self.c.string(entry.get("action"), f"{path}.action")
        if not action:
            self.c.required(f"{path}.action")
        elif action not in self.actions:
            self.c.not_supported(f"{path}.action", action, self.actions)
        if entry.get(peers_field) is None:
            self.c.required(f"{path}.{peers_field}")
        peers = tuple(self.peer(raw, f"{path}.{peers_field}[{i}]", peer_kinds)
                      for i, raw in enumerate(self.items(entry.get(peers_field), f"{path}.{peers_field}", 1,
                                                         _MAX_PEERS)))
        ports: tuple[AdminPort, ...] | None = None
        if entry.get("ports") is not None:
            ports = tuple(self.port(raw, f"{path}.ports[{i}]")
                          for i, raw in enumerate(self.items(entry["ports"], f"{path}.ports", 1, _MAX_PORTS)))
            if any(peer.networks for peer in peers) and any(port.name for port in ports):
                self.c.invalid(path, "object", "networks/nodes/domainNames peer cannot be set with namedPorts "
                                               "since there are no namedPorts for networks/nodes/domainNames")
        return AdminRule(cast(AdminAction, action or "Deny"), peers, ports, name)

    def peer(self, value: object, path: str, kinds: tuple[str, ...]) -> AdminPeer:
        entry = self.c.mapping(value, path)
        which = self.one_of(entry, path, kinds)
        if which == "namespaces":
            return AdminPeer(namespace_selector=self.c.selector(entry["namespaces"], f"{path}.namespaces"))
        if which == "pods":
            namespaces, pods = self.namespaced_pod(entry["pods"], f"{path}.pods")
            return AdminPeer(namespace_selector=namespaces, pod_selector=pods)
        if which == "networks":
            networks = []
            for i, raw in enumerate(self.items(entry["networks"], f"{path}.networks", 1, _MAX_NETWORKS)):
                text = self.c.string(raw, f"{path}.networks[{i}]")
                if formats.is_cidr(text):
                    self.c.invalid(f"{path}.networks[{i}]", text, "Invalid CIDR format provided")
                else:
                    networks.append(text)
            return AdminPeer(networks=tuple(networks))
        return AdminPeer(networks=("0.0.0.0/32",))  # never used: an error was recorded

    def port(self, value: object, path: str) -> AdminPort:
        entry = self.c.mapping(value, path)
        which = self.one_of(entry, path, ("portNumber", "portRange", "namedPort"))
        if which == "namedPort":
            name = self.c.string(entry["namedPort"], f"{path}.namedPort")
            self.c.invalid(f"{path}.namedPort", name, *formats.is_port_name(name))
            return AdminPort(protocol=None, name=name)
        if which == "portNumber":
            number = self.c.mapping(entry["portNumber"], f"{path}.portNumber")
            protocol = self.protocol(number.get("protocol"), f"{path}.portNumber.protocol")
            port = self.number(number.get("port"), f"{path}.portNumber.port")
            return AdminPort(protocol, port)
        if which == "portRange":
            span = self.c.mapping(entry["portRange"], f"{path}.portRange")
            protocol = self.protocol(span.get("protocol"), f"{path}.portRange.protocol")
            start = self.number(span.get("start"), f"{path}.portRange.start")
            end = self.number(span.get("end"), f"{path}.portRange.end")
            if start >= end:  # the API says Start must be less than End
                self.c.invalid(f"{path}.portRange", "object", "Start port must be less than End port")
            return AdminPort(protocol, start, end)
        return AdminPort()

    def protocol(self, value: object, path: str) -> L4Protocol:
        protocol = self.c.string(value, path, default="TCP")
        if protocol not in _PROTOCOLS:
            self.c.not_supported(path, protocol, _PROTOCOLS)
            return "TCP"
        return cast(L4Protocol, protocol)

    def number(self, value: object, path: str) -> int:
        if value is None:
            self.c.required(path)
            return 1
        number = self.c.integer(value, path)
        if number is None:
            return 1
        self.bounded(path, number, 1, 65535)
        return number
