"""The Kubernetes objects NetworkPolicy enforcement works on, validated and normalised.

Contract: pure values. Everything here is a frozen dataclass built by
``pycni.policy.validate`` from a Kubernetes-shaped dict that already passed
validation, so code downstream (evaluator, compiler, store, CLI) never
re-checks a field. Normalisation is Kubernetes' own defaulting, done once:

- a port's protocol is always set (absent means ``TCP``);
- ``policy_types`` is always set (absent means ``Ingress``, plus ``Egress``
  when the policy has egress rules), as the API server defaults it;
- empty and absent lists mean the same thing where Kubernetes says so, and
  the model keeps the meaning, not the spelling:
  - ``ingress``/``egress`` absent or ``[]``: no rules (the pod is isolated
    in that direction if the policy type is listed);
  - a rule's ``ports`` absent or ``[]``: every port (``PolicyRule.ports``
    is empty);
  - a rule's ``from``/``to`` absent or ``[]``: every peer
    (``PolicyRule.peers`` is empty).
- a label selector that is present but empty (``{}``) selects everything;
  an absent ``podSelector``/``namespaceSelector`` inside a peer is ``None``.

Labels are tuples of pairs, sorted by key, so values hash and compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

__all__ = [
    "API_VERSIONS",
    "ContainerPort",
    "Direction",
    "IPBlock",
    "LabelSelector",
    "Labels",
    "Namespace",
    "NetworkPolicy",
    "Pod",
    "PolicyPeer",
    "PolicyPort",
    "PolicyRule",
    "Protocol",
    "Requirement",
    "labels_of",
]

Protocol = Literal["TCP", "UDP", "SCTP"]
Direction = Literal["Ingress", "Egress"]
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist"]
Labels = tuple[tuple[str, str], ...]

# kind -> the apiVersion Kubernetes serves it under
API_VERSIONS = {
    "Namespace": "v1",
    "Pod": "v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "AdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",  # pycni.policy.admin_model
    "BaselineAdminNetworkPolicy": "policy.networking.k8s.io/v1alpha1",
}


def labels_of(mapping: dict[str, str] | None) -> Labels:
    """Labels as the model keeps them: pairs sorted by key."""
    return tuple(sorted((mapping or {}).items()))


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry. ``values`` is empty for Exists/DoesNotExist."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """matchLabels AND every matchExpressions entry; both empty selects everything."""

    match_labels: Labels = ()
    match_expressions: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class IPBlock:
    """A CIDR minus its exceptions (strings as written, validated: same family, inside ``cidr``)."""

    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyPeer:
    """One from/to entry: either ``ip_block``, or pod and/or namespace selectors (both present = AND).

    ``pod_selector`` alone selects pods in the policy's own namespace;
    ``namespace_selector`` alone selects every pod of the matching namespaces.
    """

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    """One ports entry. ``port`` None = every port of ``protocol``; a str is a named port
    (resolved per destination pod); ``end_port`` only with an int ``port``, inclusive."""

    protocol: Protocol = "TCP"
    port: int | str | None = None
    end_port: int | None = None


@dataclass(frozen=True)
class PolicyRule:
    """One ingress or egress rule. Empty ``ports`` = all ports; empty ``peers`` = all peers."""

    ports: tuple[PolicyPort, ...] = ()
    peers: tuple[PolicyPeer, ...] = ()


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: frozenset[Direction]
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    # The policy's own metadata.labels: kept so `get` shows and `label` changes them; enforcement ignores them.
    labels: Labels = ()

    @cached_property
    def key(self) -> str:  # cached: the compiler asks for it per pod per sync
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Labels = ()


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    protocol: Protocol = "TCP"
    name: str = ""


@dataclass(frozen=True)
class Pod:
    """The parts of a Pod that policy uses. ``ips`` and ``node`` come from the pod's
    endpoint (the CNI attachment), not from the Pod object; a Pod applied before it
    starts has none yet."""

    namespace: str
    name: str
    labels: Labels = ()
    ports: tuple[ContainerPort, ...] = ()
    ips: tuple[str, ...] = field(default=())
    node: str = ""
    host_network: bool = False

    @cached_property
    def key(self) -> str:  # cached: the compiler asks for it per pod per sync
        return f"{self.namespace}/{self.name}"
