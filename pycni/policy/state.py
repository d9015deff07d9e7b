"""What a node's policy agent knows, built from the store's keys and kept current by their events.

Contract: pure bookkeeping, no I/O. ``PolicyState`` is fed key/value pairs
from a snapshot (``load``) and watch events (``put`` / ``delete``) under the
cluster prefix; keys outside the object and endpoint layouts are ignored,
and a value that does not decode drops the key (as if deleted) and is
reported by ``put``'s return value, never raised: one bad record must not
stop enforcement for everyone else. ``view(node)`` is the compiler's input.

The pods it gives are kept merged (Pod object + endpoints) as keys change:
a pod nothing touched stays the very same object, which is how the
incremental ``Compiler`` knows what it may keep. Each view is numbered and
names the pods changed since the one before (``PodChanges``), so the
compiler's cost of one label change does not grow with the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from pycni.cluster.kv import KeyValue
from pycni.policy.admin_model import AdminNetworkPolicy, BaselineAdminNetworkPolicy
from pycni.policy.compile import NodeView
from pycni.policy.endpoints import Endpoint, EndpointError, endpoints_prefix
from pycni.policy.endpoints import decode as decode_endpoint
from pycni.policy.membership import PodChanges
from pycni.policy.model import Namespace, NetworkPolicy, Pod
from pycni.policy.store import ObjectStore, StoreError
from pycni.policy.validate import ValidationError

__all__ = ["PolicyState"]


class PolicyState:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.endpoint_prefix = endpoints_prefix(store.prefix)
        self.namespaces: dict[str, Namespace] = {}
        self.pod_objects: dict[str, Pod] = {}
        self.policies: dict[str, NetworkPolicy] = {}
        self.admin_policies: dict[str, AdminNetworkPolicy] = {}
        self.baseline: BaselineAdminNetworkPolicy | None = None
        self.endpoints: dict[str, Endpoint] = {}  # by key
        self.revision = 0
        self._endpoint_keys: dict[str, set[str]] = {}  # pod key -> its endpoints' keys
        self._merged: dict[str, Pod] = {}  # pod key -> the pod with its endpoints' addresses
        self._view_number = 0
        self._changed: set[str] | None = None  # pod keys changed since the last view; None: not known

    def load(self, kvs: Iterable[KeyValue], revision: int) -> list[str]:
        """Replace everything with a snapshot; returns the keys that did not decode.

        All or nothing: the snapshot is decoded aside, so when its iterator raises (a page that did
        not arrive) the state is the one before, never half of each.
        """
        fresh = PolicyState(self.store)
        bad = [kv.key for kv in kvs if not fresh.put(kv, remerge=False)]
        for pod_key in {*fresh.pod_objects, *fresh._endpoint_keys}:  # once per pod, not once per key
            fresh._remerge(pod_key)
        self.namespaces, self.pod_objects, self.policies = fresh.namespaces, fresh.pod_objects, fresh.policies
        self.admin_policies, self.baseline = fresh.admin_policies, fresh.baseline
        self.endpoints, self._endpoint_keys, self._merged = fresh.endpoints, fresh._endpoint_keys, fresh._merged
        self.revision = revision
        self._changed = None  # everything may have changed
        return bad

    def put(self, kv: KeyValue, *, remerge: bool = True) -> bool:
        """Take one key's new value; False when it did not decode (the key is then dropped)."""
        self.revision = max(self.revision, kv.mod_revision)
        if kv.key.startswith(self.endpoint_prefix):
            try:
                endpoint = decode_endpoint(kv.value)
            except EndpointError:
                self._drop(kv.key)
                return False
            old = self.endpoints.get(kv.key)
            if old is not None and old.pod_key != endpoint.pod_key:
                self._drop(kv.key)
            self.endpoints[kv.key] = endpoint
            self._endpoint_keys.setdefault(endpoint.pod_key, set()).add(kv.key)
            if remerge:
                self._remerge(endpoint.pod_key)
            return True
        ref = self.store.ref_of_key(kv.key)
        if ref is None:
            return True
        try:
            model = self.store.decode(kv, ref).model()
        except (StoreError, ValidationError):
            self._drop(kv.key)
            return False
        if isinstance(model, Namespace):
            self.namespaces[model.name] = model
        elif isinstance(model, Pod):
            self.pod_objects[model.key] = model
            if remerge:
                self._remerge(model.key)
        elif isinstance(model, AdminNetworkPolicy):
            self.admin_policies[model.name] = model
        elif isinstance(model, BaselineAdminNetworkPolicy):
            self.baseline = model
        else:
            self.policies[model.key] = model
        return True

    def delete(self, key: str, revision: int = 0) -> None:
        self.revision = max(self.revision, revision)
        self._drop(key)

    def _drop(self, key: str) -> None:
        if key.startswith(self.endpoint_prefix):
            endpoint = self.endpoints.pop(key, None)
            if endpoint is not None:
                self._endpoint_keys.get(endpoint.pod_key, set()).discard(key)
                self._remerge(endpoint.pod_key)
            return
        ref = self.store.ref_of_key(key)
        if ref is None:
            return
        if ref.kind.name == "Namespace":
            self.namespaces.pop(ref.name, None)
        elif ref.kind.name == "Pod":
            self.pod_objects.pop(f"{ref.namespace}/{ref.name}", None)
            self._remerge(f"{ref.namespace}/{ref.name}")
        elif ref.kind.name == "AdminNetworkPolicy":
            self.admin_policies.pop(ref.name, None)
        elif ref.kind.name == "BaselineAdminNetworkPolicy":
            if self.baseline is not None and self.baseline.name == ref.name:
                self.baseline = None
        else:
            self.policies.pop(f"{ref.namespace}/{ref.name}", None)

    def _remerge(self, pod_key: str) -> None:
        """Recompute one pod from its Pod object and endpoints (the same rule as ``pods_with_endpoints``)."""
        keys = self._endpoint_keys.get(pod_key, ())
        endpoints = [self.endpoints[k] for k in keys] if len(keys) < 2 else sorted(
            (self.endpoints[k] for k in keys), key=lambda e: (e.container_id, e.ifname))
        if not endpoints:
            if self._merged.pop(pod_key, None) is not None and self._changed is not None:
                self._changed.add(pod_key)
            self._endpoint_keys.pop(pod_key, None)
            return
        first = endpoints[0]
        base = self.pod_objects.get(pod_key) or Pod(first.namespace, first.name)
        ips = first.ips if len(endpoints) == 1 else tuple(dict.fromkeys(ip for e in endpoints for ip in e.ips))
        merged = replace(base, ips=ips, node=first.node)
        if self._merged.get(pod_key) != merged:
            self._merged[pod_key] = merged
            if self._changed is not None:
                self._changed.add(pod_key)

    def pods(self) -> list[Pod]:
        return list(self._merged.values())

    def view(self, node: str) -> NodeView:
        """The compiler's input, numbered, with the pods changed since the previous view."""
        since, self._view_number = self._view_number, self._view_number + 1
        by_key = dict(self._merged)
        changes = None if self._changed is None else PodChanges(since, self._view_number,
                                                                frozenset(self._changed), by_key)
        self._changed = set()
        return NodeView(node, dict(self.namespaces), list(by_key.values()), list(self.policies.values()),
                        list(self.admin_policies.values()), self.baseline, changes)
