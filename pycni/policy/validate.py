"""Kubernetes-shaped objects (dicts) in, validated and normalised model objects out.

Contract: pure. ``to_model(obj)`` checks a Namespace, Pod or NetworkPolicy
(and AdminNetworkPolicy, BaselineAdminNetworkPolicy: ``pycni.policy.admin_validate``)
as the Kubernetes API server does (``pkg/apis/networking/validation`` and
the apimachinery rules it calls), collects every field error, and raises
``ValidationError`` if there is any; otherwise it returns the model object
with Kubernetes' defaulting applied (see ``pycni.policy.model``). The
message is one line in the API server's shape (here folded)::

    NetworkPolicy "x/deny" is invalid: spec.ingress[0].ports[0].port: Invalid value: 70000:
    must be between 1 and 65535, inclusive

with several errors in brackets, comma separated, as kubectl prints them.
``validate_all(objs)`` converts a whole apply and reports the first object
that fails with its position, so a multi-document apply is all or nothing.

Names follow Kubernetes: a Namespace's is a DNS-1123 label, a Pod's and a
NetworkPolicy's a DNS-1123 subdomain (dots allowed); CIDRs follow its strict
IP/CIDR validation (``pycni.policy.formats``).

Where pycni differs from the API server, on purpose:

- a namespaced object without ``metadata.namespace`` is in ``default``
  (kubectl's default; the server itself would take it from the request);
- ``metadata.namespace`` on a Namespace is ignored (the server clears it);
- a repeated ``policyTypes`` entry is rejected (the server accepts it);
- container port names are unique in the whole pod, not per container,
  because a NetworkPolicy resolves a named port per pod;
- fields pycni does not use are not checked (most of a Pod's spec), and
  a Pod needs no containers;
- a value of the wrong JSON type (a list where a string belongs) is a field
  error here, not a decoding error.

A Pod's ``spec.nodeName`` and ``status.podIPs`` (or ``status.podIP``) are
read into ``Pod.node`` and ``Pod.ips`` when present, so what
``pycni.policy.render`` writes for a running pod reads back the same.
Every Namespace carries ``kubernetes.io/metadata.name=<name>``, set here
as Kubernetes >= 1.21 does (a user value for that key is overwritten).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from pycni.policy import formats
from pycni.policy.admin_model import AdminNetworkPolicy, BaselineAdminNetworkPolicy
from pycni.policy.admin_validate import admin_network_policy, baseline_admin_network_policy
from pycni.policy.fielderror import FieldError, ValidationError
from pycni.policy.model import (
    API_VERSIONS,
    ContainerPort,
    Direction,
    IPBlock,
    Labels,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    Protocol,
    Requirement,
    labels_of,
)
from pycni.policy.render import to_manifest  # re-exported: the store and CLI take both directions from here

__all__ = [
    "METADATA_NAME_LABEL",
    "FieldError",
    "Model",
    "ValidationError",
    "to_manifest",
    "to_model",
    "validate_all",
]

Model = Namespace | Pod | NetworkPolicy | AdminNetworkPolicy | BaselineAdminNetworkPolicy

METADATA_NAME_LABEL = "kubernetes.io/metadata.name"
DEFAULT_NAMESPACE = "default"

# The order Kubernetes lists them in its messages: NetworkPolicy lists them as
# written in its validation code, Pod validation sorts them.
_POLICY_PROTOCOLS = ("TCP", "UDP", "SCTP")
_POD_PROTOCOLS = ("SCTP", "TCP", "UDP")
_POLICY_TYPES = ("Ingress", "Egress")


def to_model(obj: Mapping[str, Any]) -> Model:
    """Validate one Kubernetes object and return its model. Raises ValidationError."""
    checker = _Checker()
    if not isinstance(obj, Mapping):
        raise ValidationError("object", "", [FieldError("Invalid value", "<object>", obj, "must be a mapping")])
    kind = checker.kind(obj)
    metadata = checker.mapping(obj.get("metadata"), "metadata")
    name = checker.name(metadata, kind)
    namespace = checker.namespace(metadata) if kind in ("Pod", "NetworkPolicy") else ""
    labels = checker.labels(metadata.get("labels"), "metadata.labels")
    model: Model | None = None
    if kind == "Namespace":
        labels = labels_of({**dict(labels), METADATA_NAME_LABEL: name})
        model = Namespace(name=name, labels=labels)
    elif kind == "Pod":
        model = checker.pod(obj, namespace, name, labels)
    elif kind == "NetworkPolicy":
        model = checker.network_policy(obj, namespace, name, labels)
    elif kind == "AdminNetworkPolicy":
        model = admin_network_policy(checker, obj, name, labels)
    elif kind == "BaselineAdminNetworkPolicy":
        model = baseline_admin_network_policy(checker, obj, name, labels)
    if checker.errors or model is None:
        raw_kind = obj.get("kind")
        shown_kind = raw_kind if isinstance(raw_kind, str) and raw_kind else "object"
        shown_name = f"{namespace}/{name}" if namespace else name
        raise ValidationError(shown_kind, shown_name, checker.errors)
    return model


def validate_all(objs: Iterable[Mapping[str, Any]], where: Sequence[str] | None = None) -> list[Model]:
    """Every object's model, or ValidationError for the first invalid one, placed by its 1-based
    index (``document 2: ...``) or, given ``where`` (one label per object, e.g. from
    ``manifest.load_located``), by its label (``policy.yaml: document 2: ...``)."""
    models = []
    for index, obj in enumerate(objs, start=1):
        try:
            models.append(to_model(obj))
        except ValidationError as exc:
            raise exc.at(index, where[index - 1] if where is not None else None) from None
    return models


class _Checker:
    """Walks one object, collecting field errors and building model values.

    Builders return something even for invalid input (a default), so one
    pass finds every error; the result is used only if no error was found.
    """

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    # -- recording -----------------------------------------------------------

    def invalid(self, path: str, value: object, *details: str) -> None:
        if details:  # most calls pass a valid value's empty list of problems
            self.errors += [FieldError("Invalid value", path, value, detail) for detail in details]

    def required(self, path: str, detail: str = "") -> None:
        self.errors.append(FieldError("Required value", path, detail=detail))

    def forbidden(self, path: str, detail: str) -> None:
        self.errors.append(FieldError("Forbidden", path, detail=detail))

    def not_supported(self, path: str, value: object, supported: Iterable[str]) -> None:
        listed = ", ".join(json.dumps(choice) for choice in supported)
        self.errors.append(FieldError("Unsupported value", path, value, f"supported values: {listed}"))

    def duplicate(self, path: str, value: object) -> None:
        self.errors.append(FieldError("Duplicate value", path, value))

    # -- JSON shapes (null is absent, as in Go) ------------------------------

    def mapping(self, value: object, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict) and not isinstance(value, Mapping):  # dict first: the ABC check is slow
            self.invalid(path, value, "must be an object")
            return {}
        return value

    def sequence(self, value: object, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.invalid(path, value, "must be a list")
            return []
        return value

    def string(self, value: object, path: str, default: str = "") -> str:
        if value is None:
            return default
        if not isinstance(value, str):
            self.invalid(path, value, "must be a string")
            return default
        return value

    def integer(self, value: object, path: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.invalid(path, value, "must be an integer")
            return None
        return value

    # -- type and metadata ---------------------------------------------------

    def kind(self, obj: Mapping[str, Any]) -> str:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind is None or kind == "":
            self.required("kind")
            return ""
        if not isinstance(kind, str) or kind not in API_VERSIONS:
            self.not_supported("kind", kind, API_VERSIONS)
            return ""
        if api_version is None or api_version == "":
            self.required("apiVersion")
        elif api_version != API_VERSIONS[kind]:
            self.not_supported("apiVersion", api_version, [API_VERSIONS[kind]])
        return kind

    def name(self, metadata: Mapping[str, Any], kind: str) -> str:
        name = self.string(metadata.get("name"), "metadata.name")
        if not name:
            if not any(error.field == "metadata.name" for error in self.errors):
                self.required("metadata.name", "name or generateName is required")
            return name
        # Namespace names are DNS labels; Pod and NetworkPolicy names DNS subdomains.
        check = formats.is_dns1123_label if kind == "Namespace" else formats.is_dns1123_subdomain
        self.invalid("metadata.name", name, *check(name))
        return name

    def namespace(self, metadata: Mapping[str, Any]) -> str:
        namespace = self.string(metadata.get("namespace"), "metadata.namespace") or DEFAULT_NAMESPACE
        self.invalid("metadata.namespace", namespace, *formats.is_dns1123_label(namespace))
        return namespace

    def labels(self, value: object, path: str) -> Labels:
        pairs: dict[str, str] = {}
        for key, label_value in self.mapping(value, path).items():
            if not isinstance(key, str):
                self.invalid(path, key, "must be a string")
                continue
            self.invalid(path, key, *formats.is_label_key(key))
            text = self.string(label_value, path)
            self.invalid(path, text, *formats.is_label_value(text))
            pairs[key] = text
        return labels_of(pairs)

    # -- selectors -----------------------------------------------------------

    def selector(self, value: object, path: str) -> LabelSelector:
        selector = self.mapping(value, path)
        match_labels = self.labels(selector.get("matchLabels"), f"{path}.matchLabels")
        requirements = []
        for i, expression in enumerate(self.sequence(selector.get("matchExpressions"), f"{path}.matchExpressions")):
            requirements.append(self.requirement(expression, f"{path}.matchExpressions[{i}]"))
        return LabelSelector(match_labels=match_labels, match_expressions=tuple(requirements))

    def requirement(self, value: object, path: str) -> Requirement:
        expression = self.mapping(value, path)
        key = self.string(expression.get("key"), f"{path}.key")
        operator = self.string(expression.get("operator"), f"{path}.operator")
        values = []
        for i, item in enumerate(self.sequence(expression.get("values"), f"{path}.values")):
            text = self.string(item, f"{path}.values[{i}]")
            self.invalid(f"{path}.values[{i}]", text, *formats.is_label_value(text))
            values.append(text)
        if operator in ("In", "NotIn"):
            if not values:
                self.required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'")
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                self.forbidden(f"{path}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        else:
            self.invalid(f"{path}.operator", operator, "not a valid selector operator")
        self.invalid(f"{path}.key", key, *formats.is_label_key(key))
        # Values are a set: sorted and deduplicated, so reordering them is no change.
        return Requirement(key=key, operator=cast(Any, operator), values=tuple(sorted(set(values))))

    # -- NetworkPolicy -------------------------------------------------------

    def network_policy(self, obj: Mapping[str, Any], namespace: str, name: str, labels: Labels) -> NetworkPolicy:
        spec = self.mapping(obj.get("spec"), "spec")
        pod_selector = self.selector(spec.get("podSelector"), "spec.podSelector")
        ingress = self.rules(spec.get("ingress"), "spec.ingress", "from")
        egress = self.rules(spec.get("egress"), "spec.egress", "to")
        policy_types = self.policy_types(spec.get("policyTypes"), "spec.policyTypes")
        if not policy_types:
            # Kubernetes' defaulting: Ingress always, Egress when there are egress rules.
            policy_types = {"Ingress", "Egress"} if egress else {"Ingress"}
        return NetworkPolicy(
            namespace=namespace,
            name=name,
            pod_selector=pod_selector,
            policy_types=frozenset(cast(set[Direction], policy_types)),
            ingress=ingress,
            egress=egress,
            labels=labels,
        )

    def rules(self, value: object, path: str, peers_field: str) -> tuple[PolicyRule, ...]:
        rules = []
        for i, item in enumerate(self.sequence(value, path)):
            rule = self.mapping(item, f"{path}[{i}]")
            ports = tuple(
                self.policy_port(port, f"{path}[{i}].ports[{j}]")
                for j, port in enumerate(self.sequence(rule.get("ports"), f"{path}[{i}].ports"))
            )
            peers = tuple(
                self.peer(peer, f"{path}[{i}].{peers_field}[{j}]")
                for j, peer in enumerate(self.sequence(rule.get(peers_field), f"{path}[{i}].{peers_field}"))
            )
            rules.append(PolicyRule(ports=ports, peers=peers))
        return tuple(rules)

    def protocol(self, value: object, path: str, supported: tuple[str, ...]) -> Protocol:
        protocol = self.string(value, path, default="TCP")
        if protocol not in supported:
            self.not_supported(path, protocol, supported)
            return "TCP"
        return cast(Protocol, protocol)

    def policy_port(self, value: object, path: str) -> PolicyPort:
        entry = self.mapping(value, path)
        protocol = self.protocol(entry.get("protocol"), f"{path}.protocol", _POLICY_PROTOCOLS)
        port: int | str | None = None
        raw_port = entry.get("port")
        end_port = self.integer(entry.get("endPort"), f"{path}.endPort")
        if isinstance(raw_port, int) and not isinstance(raw_port, bool):
            port = raw_port
            self.invalid(f"{path}.port", port, *formats.is_port_num(port))
            if end_port is not None:
                if end_port < port:
                    self.invalid(f"{path}.endPort", end_port, "must be greater than or equal to `port`")
                self.invalid(f"{path}.endPort", end_port, *formats.is_port_num(end_port))
        elif isinstance(raw_port, str):
            port = raw_port
            if end_port is not None:
                self.invalid(f"{path}.endPort", end_port, "may not be specified when `port` is non-numeric")
            self.invalid(f"{path}.port", port, *formats.is_port_name(port))
        elif raw_port is None:
            if end_port is not None:
                self.invalid(f"{path}.endPort", end_port, "may not be specified when `port` is not specified")
        else:
            self.invalid(f"{path}.port", raw_port, "must be an integer or a string")
        return PolicyPort(protocol=protocol, port=port, end_port=end_port)

    def peer(self, value: object, path: str) -> PolicyPeer:
        entry = self.mapping(value, path)
        pod_selector = namespace_selector = ip_block = None
        if entry.get("podSelector") is not None:
            pod_selector = self.selector(entry["podSelector"], f"{path}.podSelector")
        if entry.get("namespaceSelector") is not None:
            namespace_selector = self.selector(entry["namespaceSelector"], f"{path}.namespaceSelector")
        if entry.get("ipBlock") is not None:
            ip_block = self.ip_block(entry["ipBlock"], f"{path}.ipBlock")
        given = sum(part is not None for part in (pod_selector, namespace_selector, ip_block))
        if given == 0:
            self.required(path, "must specify a peer")
        elif given > 1 and ip_block is not None:
            self.forbidden(path, "may not specify both ipBlock and another peer")
        return PolicyPeer(pod_selector=pod_selector, namespace_selector=namespace_selector, ip_block=ip_block)

    def ip_block(self, value: object, path: str) -> IPBlock:
        block = self.mapping(value, path)
        cidr = self.string(block.get("cidr"), f"{path}.cidr")
        excepts = [
            self.string(item, f"{path}.except[{i}]")
            for i, item in enumerate(self.sequence(block.get("except"), f"{path}.except"))
        ]
        if not cidr:
            if not any(error.field == f"{path}.cidr" for error in self.errors):
                self.required(f"{path}.cidr")
            return IPBlock(cidr=cidr, except_=tuple(excepts))
        self.invalid(f"{path}.cidr", cidr, *formats.is_cidr(cidr))
        network = formats.parse_cidr(cidr)
        for i, text in enumerate(excepts):
            self.invalid(f"{path}.except[{i}]", text, *formats.is_cidr(text))
            inner = formats.parse_cidr(text)
            if network is None or inner is None:
                continue
            if (
                inner.version != network.version
                or not network.supernet_of(inner)  # type: ignore[arg-type]
                or inner.prefixlen <= network.prefixlen
            ):
                self.invalid(f"{path}.except[{i}]", text, "must be a strict subset of `cidr`")
        return IPBlock(cidr=cidr, except_=tuple(excepts))

    def policy_types(self, value: object, path: str) -> set[str]:
        types = self.sequence(value, path)
        if len(types) > len(_POLICY_TYPES):
            self.invalid(path, types, "may not specify more than two policyTypes")
            return set()
        seen: set[str] = set()
        for i, item in enumerate(types):
            if not isinstance(item, str):
                self.invalid(f"{path}[{i}]", item, "must be a string")
                continue
            text = item
            if text not in _POLICY_TYPES:
                self.not_supported(f"{path}[{i}]", text, _POLICY_TYPES)
            elif text in seen:
                self.duplicate(f"{path}[{i}]", text)
            seen.add(text)
        return seen & set(_POLICY_TYPES)

    # -- Pod -----------------------------------------------------------------

    def pod(self, obj: Mapping[str, Any], namespace: str, name: str, labels: Labels) -> Pod:
        spec = self.mapping(obj.get("spec"), "spec")
        host_network = spec.get("hostNetwork")
        if host_network is not None and not isinstance(host_network, bool):
            self.invalid("spec.hostNetwork", host_network, "must be a boolean")
            host_network = False
        node = self.string(spec.get("nodeName"), "spec.nodeName")
        if node:
            self.invalid("spec.nodeName", node, *formats.is_dns1123_subdomain(node))
        ports: list[ContainerPort] = []
        names: set[str] = set()
        for i, item in enumerate(self.sequence(spec.get("containers"), "spec.containers")):
            container = self.mapping(item, f"spec.containers[{i}]")
            path = f"spec.containers[{i}].ports"
            for j, entry in enumerate(self.sequence(container.get("ports"), path)):
                ports.append(self.container_port(entry, f"{path}[{j}]", names))
        return Pod(
            namespace=namespace,
            name=name,
            labels=labels,
            ports=tuple(ports),
            ips=self.pod_ips(self.mapping(obj.get("status"), "status")),
            node=node,
            host_network=bool(host_network),
        )

    def container_port(self, value: object, path: str, names: set[str]) -> ContainerPort:
        entry = self.mapping(value, path)
        name = self.string(entry.get("name"), f"{path}.name")
        if name:
            if problems := formats.is_port_name(name):
                self.invalid(f"{path}.name", name, *problems)
            elif name in names:
                self.duplicate(f"{path}.name", name)
            names.add(name)
        number = self.integer(entry.get("containerPort"), f"{path}.containerPort")
        if number is None or number == 0:
            if not any(error.field == f"{path}.containerPort" for error in self.errors):
                self.required(f"{path}.containerPort")
            number = 0
        else:
            self.invalid(f"{path}.containerPort", number, *formats.is_port_num(number))
        protocol = self.protocol(entry.get("protocol"), f"{path}.protocol", _POD_PROTOCOLS)
        return ContainerPort(container_port=number, protocol=protocol, name=name)

    def pod_ips(self, status: Mapping[str, Any]) -> tuple[str, ...]:
        ips = []
        for i, item in enumerate(self.sequence(status.get("podIPs"), "status.podIPs")):
            ip = self.string(self.mapping(item, f"status.podIPs[{i}]").get("ip"), f"status.podIPs[{i}].ip")
            self.invalid(f"status.podIPs[{i}].ip", ip, *formats.is_ip(ip))
            ips.append(ip)
        if not ips and status.get("podIP") is not None:
            ip = self.string(status.get("podIP"), "status.podIP")
            self.invalid("status.podIP", ip, *formats.is_ip(ip))
            ips.append(ip)
        return tuple(ips)
