"""Which pods a selector picks, kept current as pods come, go and change labels.

Contract: in-memory bookkeeping, no I/O. ``Membership.update(view)`` takes
the pods, namespaces and node of a new view and returns the keys of pods
that changed (added, removed, or replaced by a different object); the
indexes (namespace -> pods, label pair -> pods, this node's pods per
namespace) and every remembered peer's members follow, at a cost of the
changed pods times the peers remembered, not of every pod. A namespace
label change, or a different node, rebuilds everything (rare).

Finding the changed pods costs a pass over every pod, unless the view
brings ``PodChanges``: the keys that may differ since the view numbered
``since``, from a source that tracks them (``PolicyState``). They are
used only when ``since`` is the very view this Membership last followed;
otherwise (a first view, a view skipped or whose compile failed) the full
pass runs, so a wrong number can cost time, never correctness.

Pods without addresses and host-network pods are never members: their
traffic is node traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from pycni.policy.admin_model import AdminSubject
from pycni.policy.model import Labels, LabelSelector, Namespace, NetworkPolicy, Pod
from pycni.policy.ruleset import FAMILIES, Fam, ip_family
from pycni.policy.selectors import selector_matches

__all__ = ["Membership", "PeerKey", "PodChanges"]

PeerKey = tuple[str, LabelSelector | None, LabelSelector | None]  # (scope or "", podSelector, namespaceSelector)


def _usable(pod: Pod) -> bool:
    return bool(pod.ips) and not pod.host_network


@dataclass(frozen=True)
class PodChanges:
    """Which pods of a view may differ from those of an earlier one, numbered by their source.

    ``keys``: every pod key added, removed or replaced since view ``since``; ``by_key``: this view's
    pods by key (the same objects as its ``pods``); ``generation``: this view's own number.
    """

    since: int
    generation: int
    keys: frozenset[str]
    by_key: Mapping[str, Pod]


class Membership:
    def __init__(self) -> None:
        self.node = ""
        self.namespaces: dict[str, Namespace] = {}
        self.pods: dict[str, Pod] = {}
        self._by_ns: dict[str, set[str]] = {}
        self._by_label: dict[tuple[str, str], set[str]] = {}
        self._local_by_ns: dict[str, set[str]] = {}
        self._peers: dict[PeerKey, set[str]] = {}
        self._family_count: dict[Fam, int] = {"v4": 0, "v6": 0}
        # What the last update touched, so the compiler recomputes only that:
        self.dirty_peers: set[PeerKey] = set()  # peers that gained, lost or hold a changed pod (or are new)
        self.changed_local_namespaces: set[str] = set()  # namespaces where this node's pods changed
        self._generation = 0  # the PodChanges.generation of the view last followed (0: none)

    # -- keeping up ------------------------------------------------------------------

    def update(self, node: str, namespaces: Mapping[str, Namespace], pods: Iterable[Pod],
               changes: PodChanges | None = None) -> set[str] | None:
        """Follow a new view; the keys of changed pods, or None when everything was rebuilt."""
        self.dirty_peers = set()
        self.changed_local_namespaces = set()
        generation, self._generation = self._generation, 0  # back to "unknown" until this update is done
        if node != self.node or dict(namespaces) != self.namespaces:
            self._rebuild(node, namespaces, {p.key: p for p in pods if _usable(p)})
            changed = None
        elif changes is not None and generation and changes.since == generation:
            changed = set()
            for key in changes.keys:
                pod = changes.by_key.get(key)
                if self.pods.get(key) is not (pod if pod is not None and _usable(pod) else None):
                    changed.add(key)
            self._follow(changed, lambda key: changes.by_key.get(key))
        else:
            new = {p.key: p for p in pods if _usable(p)}
            changed = {k for k, p in new.items() if self.pods.get(k) is not p}
            changed |= {k for k in self.pods if k not in new}
            self._follow(changed, new.get)
        if changes is not None:
            self._generation = changes.generation
        return changed

    def _follow(self, changed: set[str], pod_of: Callable[[str], Pod | None]) -> None:
        """Re-index the changed pods and move them in and out of the remembered peers."""
        node = self.node
        for key in changed:
            old = self.pods.pop(key, None)
            if old is not None:
                self._unindex(old)
                if old.node == node:
                    self.changed_local_namespaces.add(old.namespace)
            pod = pod_of(key)
            if pod is not None and not _usable(pod):
                pod = None
            if pod is not None:
                self.pods[key] = pod
                self._index(pod)
                if pod.node == node:
                    self.changed_local_namespaces.add(pod.namespace)
            for peer, members in self._peers.items():
                was = key in members
                if pod is not None and self._peer_has(peer, pod):
                    members.add(key)
                elif was:
                    members.discard(key)
                else:
                    continue
                self.dirty_peers.add(peer)  # a member came, went or changed (its addresses may have)

    def _rebuild(self, node: str, namespaces: Mapping[str, Namespace], pods: dict[str, Pod]) -> None:
        self.node = node
        self.namespaces = dict(namespaces)
        self.pods = {}
        self._by_ns.clear()
        self._by_label.clear()
        self._local_by_ns.clear()
        self._peers.clear()
        self._family_count = {"v4": 0, "v6": 0}
        for key, pod in pods.items():
            self.pods[key] = pod
            self._index(pod)

    def _index(self, pod: Pod) -> None:
        self._by_ns.setdefault(pod.namespace, set()).add(pod.key)
        for pair in pod.labels:
            self._by_label.setdefault(pair, set()).add(pod.key)
        if pod.node == self.node:
            self._local_by_ns.setdefault(pod.namespace, set()).add(pod.key)
        for ip in pod.ips:
            self._family_count[ip_family(ip)] += 1

    def _unindex(self, pod: Pod) -> None:
        self._by_ns.get(pod.namespace, set()).discard(pod.key)
        for pair in pod.labels:
            self._by_label.get(pair, set()).discard(pod.key)
        self._local_by_ns.get(pod.namespace, set()).discard(pod.key)
        for ip in pod.ips:
            self._family_count[ip_family(ip)] -= 1

    # -- questions -------------------------------------------------------------------

    @property
    def families(self) -> tuple[Fam, ...]:
        """The address families some pod has: rules for the others would only cost the kernel."""
        return tuple(fam for fam in FAMILIES if self._family_count[fam] > 0)

    def ns_labels(self, namespace: str) -> Labels:
        # A namespace that has pods but no object yet still carries its name label.
        ns = self.namespaces.get(namespace)
        return ns.labels if ns is not None else (("kubernetes.io/metadata.name", namespace),)

    def selected(self, policy: NetworkPolicy) -> list[Pod]:
        """This node's pods the policy selects, in key order."""
        keys = sorted(self._local_by_ns.get(policy.namespace, ()))
        return [self.pods[k] for k in keys if selector_matches(policy.pod_selector, self.pods[k].labels)]

    def local_subjects(self, subject: AdminSubject) -> list[Pod]:
        """This node's pods an admin policy's subject selects, in key order."""
        out = []
        for namespace in sorted(self._local_by_ns):
            keys = self._local_by_ns[namespace]
            if keys and selector_matches(subject.namespace_selector, self.ns_labels(namespace)):
                out += [self.pods[k] for k in sorted(keys)
                        if subject.pod_selector is None or selector_matches(subject.pod_selector, self.pods[k].labels)]
        return out

    def peer_members(self, peer: PeerKey) -> set[str]:
        """Keys of the pods a peer selects (remembered, and kept current from then on)."""
        members = self._peers.get(peer)
        if members is None:
            members = self._compute(peer)
            self._peers[peer] = members
            self.dirty_peers.add(peer)  # new to us: whatever was built from it before is unknown
        return members

    def _compute(self, peer: PeerKey) -> set[str]:
        scope, pod_selector, namespace_selector = peer
        if namespace_selector is None:
            candidates = set(self._by_ns.get(scope, ()))
        else:
            candidates = set().union(*(
                keys for name, keys in self._by_ns.items() if selector_matches(namespace_selector, self.ns_labels(name))
            ))
        if pod_selector is not None:
            for pair in pod_selector.match_labels:
                candidates &= self._by_label.get(pair, set())
                if not candidates:
                    return candidates
            if pod_selector.match_expressions:
                candidates = {k for k in candidates if selector_matches(pod_selector, self.pods[k].labels)}
        return candidates

    def _peer_has(self, peer: PeerKey, pod: Pod) -> bool:
        scope, pod_selector, namespace_selector = peer
        if namespace_selector is None:
            if pod.namespace != scope:
                return False
        elif not selector_matches(namespace_selector, self.ns_labels(pod.namespace)):
            return False
        return pod_selector is None or selector_matches(pod_selector, pod.labels)

    def forget_peers_except(self, keep: set[PeerKey]) -> None:
        """Stop keeping peers no policy names any more."""
        for peer in [p for p in self._peers if p not in keep]:
            del self._peers[peer]
