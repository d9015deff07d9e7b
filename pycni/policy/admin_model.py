"""AdminNetworkPolicy and BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1), as values.

Contract: pure values, built by ``pycni.policy.admin_validate`` from objects
that passed validation, with the API's defaulting done once (a port's
protocol is always set; a named port has none, it takes the container
port's). Both kinds are cluster-scoped tiers around NetworkPolicy:

- an ``AdminNetworkPolicy`` (ANP) has a ``priority`` (0-1000, lower first)
  and ordered rules whose action is ``Allow``, ``Deny`` or ``Pass``; the
  first rule of the first policy that matches a connection decides it, and
  ``Pass`` hands it to NetworkPolicy;
- the one ``BaselineAdminNetworkPolicy`` (BANP, named ``default``) has rules
  with ``Allow`` or ``Deny``, consulted only when no NetworkPolicy isolates
  the pod in that direction.

A subject or a peer selects pods by namespace labels, and optionally by pod
labels as well (``pods``); an egress peer may instead be ``networks``, CIDRs
matched against the address on the wire. A rule's ``ports`` None means every
port. Keys (``anp:<name>``, ``banp:default``) cannot collide with a
NetworkPolicy's ``namespace/name``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from pycni.policy.model import Labels, LabelSelector, Protocol

__all__ = [
    "ADMIN_API_VERSION",
    "BASELINE_NAME",
    "AdminAction",
    "AdminNetworkPolicy",
    "AdminPeer",
    "AdminPort",
    "AdminRule",
    "AdminSubject",
    "BaselineAdminNetworkPolicy",
    "TierPolicy",
]

ADMIN_API_VERSION = "policy.networking.k8s.io/v1alpha1"
BASELINE_NAME = "default"  # the API allows exactly one BANP, with this name
AdminAction = Literal["Allow", "Deny", "Pass"]


@dataclass(frozen=True)
class AdminSubject:
    """Pods of the namespaces ``namespace_selector`` selects; with ``pod_selector``, only those it selects."""

    namespace_selector: LabelSelector
    pod_selector: LabelSelector | None = None


@dataclass(frozen=True)
class AdminPeer:
    """``namespaces`` (pod_selector None), ``pods`` (both selectors) or ``networks`` (CIDRs, egress only)."""

    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdminPort:
    """``portNumber`` (port), ``portRange`` (port..end_port, inclusive) or ``namedPort`` (name, protocol None)."""

    protocol: Protocol | None = "TCP"
    port: int | None = None
    end_port: int | None = None
    name: str = ""


@dataclass(frozen=True)
class AdminRule:
    action: AdminAction
    peers: tuple[AdminPeer, ...]
    ports: tuple[AdminPort, ...] | None = None  # None: every port of every protocol
    name: str = ""


@dataclass(frozen=True)
class AdminNetworkPolicy:
    name: str
    priority: int
    subject: AdminSubject
    ingress: tuple[AdminRule, ...] = ()
    egress: tuple[AdminRule, ...] = ()
    labels: Labels = ()

    @cached_property
    def key(self) -> str:
        return f"anp:{self.name}"

    @property
    def kind(self) -> str:
        return "AdminNetworkPolicy"


@dataclass(frozen=True)
class BaselineAdminNetworkPolicy:
    subject: AdminSubject
    ingress: tuple[AdminRule, ...] = ()
    egress: tuple[AdminRule, ...] = ()
    labels: Labels = ()
    name: str = BASELINE_NAME

    @cached_property
    def key(self) -> str:
        return f"banp:{self.name}"

    @property
    def kind(self) -> str:
        return "BaselineAdminNetworkPolicy"


TierPolicy = AdminNetworkPolicy | BaselineAdminNetworkPolicy
