"""The kinds pycni stores, named as the API server names them, and how one object is referred to.

Contract: pure values. ``KINDS`` by kind name, ``KIND_BY_RESOURCE`` by
resource (``networkpolicies``); an ``ObjectRef`` is (kind, namespace or "",
name) and prints as kubectl's ``<kind>.<group>/<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADMIN_NETWORK_POLICY",
    "BASELINE_ADMIN_NETWORK_POLICY",
    "KINDS",
    "KIND_BY_RESOURCE",
    "NAMESPACE",
    "NETWORK_POLICY",
    "POD",
    "Kind",
    "ObjectRef",
]


@dataclass(frozen=True)
class Kind:
    """A kind's names as the API server spells them."""

    name: str  # NetworkPolicy
    resource: str  # networkpolicies
    group: str  # "" for the core group
    namespaced: bool

    @property
    def qualified_resource(self) -> str:
        """``networkpolicies.networking.k8s.io``, ``pods``: the API server's name in errors."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def qualified_kind(self) -> str:
        """``networkpolicy.networking.k8s.io``, ``pod``: kubectl's name in ``<kind>/<name> created``."""
        return f"{self.name.lower()}.{self.group}" if self.group else self.name.lower()


NAMESPACE = Kind("Namespace", "namespaces", "", namespaced=False)
POD = Kind("Pod", "pods", "", namespaced=True)
NETWORK_POLICY = Kind("NetworkPolicy", "networkpolicies", "networking.k8s.io", namespaced=True)
ADMIN_NETWORK_POLICY = Kind("AdminNetworkPolicy", "adminnetworkpolicies", "policy.networking.k8s.io",
                            namespaced=False)
BASELINE_ADMIN_NETWORK_POLICY = Kind("BaselineAdminNetworkPolicy", "baselineadminnetworkpolicies",
                                     "policy.networking.k8s.io", namespaced=False)
KINDS: dict[str, Kind] = {k.name: k for k in (NAMESPACE, POD, NETWORK_POLICY, ADMIN_NETWORK_POLICY,
                                              BASELINE_ADMIN_NETWORK_POLICY)}
KIND_BY_RESOURCE: dict[str, Kind] = {k.resource: k for k in KINDS.values()}


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Which object: kind, namespace ("" for a Namespace) and name."""

    kind: Kind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind.qualified_kind}/{self.name}"
