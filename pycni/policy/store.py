"""Kubernetes objects (Namespace, Pod, NetworkPolicy) kept in the cluster's KV store.

Contract:

- Keys sit under the cluster prefix (``--etcd-prefix``, default ``/pycni``)::

      <prefix>/k8s/namespaces/<name>
      <prefix>/k8s/pods/<namespace>/<name>
      <prefix>/k8s/networkpolicies/<namespace>/<name>
      <prefix>/k8s/adminnetworkpolicies/<name>
      <prefix>/k8s/baselineadminnetworkpolicies/default

- A value is the normalised manifest (``to_manifest`` of the validated
  model) as JSON with sorted keys, plus ``metadata.creationTimestamp``, set
  when the object is first stored and kept when it is replaced.
  ``metadata.resourceVersion`` is not stored: reads fill it in from the
  key's ``mod_revision``.
- ``apply`` takes validated model objects and stores them all or none, in
  one KV transaction that checks every key (and the namespaces they need) at
  the revision it read; a concurrent change makes it read again and retry.
  Re-applying replaces the whole object, labels included; an object equal
  to the stored one is not written ("unchanged"). A namespaced object needs
  its Namespace, stored or in the same apply; ``default`` is created the
  first time something needs it, as the API server bootstraps it.
- ``get``, ``delete`` and ``label`` name an object as ``(kind, namespace,
  name)``, the kind as a ``Kind``, its name or its resource
  (``"NetworkPolicy"``, ``"networkpolicies"``); ``list(kind, namespace)``.
- ``delete`` of a Namespace deletes its pods and policies in the same
  transaction (Kubernetes does it asynchronously; here it is immediate);
  ``default`` cannot be deleted.
- ``label`` is a compare-and-swap on the key's ``mod_revision``, retried
  on conflict; the result is validated like an apply.
- ``snapshot`` reads every object and the store revision in one read; a
  watch of ``objects_prefix`` from ``revision + 1`` continues it, and
  ``decode`` / ``ref_of_key`` turn its events into objects.

Errors are ``StoreError``s whose text reads like the API server's
(``networkpolicies.networking.k8s.io "x" not found``); ``NotFound`` and
``Forbidden`` name the kubectl reason. Invalid objects never get here:
``apply`` takes models, and ``label`` re-validates (``ValidationError``).
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pycni.cluster.kv import KV, KeyValue, KVError, Put
from pycni.policy.admin_model import AdminNetworkPolicy, BaselineAdminNetworkPolicy
from pycni.policy.kinds import (
    ADMIN_NETWORK_POLICY,
    BASELINE_ADMIN_NETWORK_POLICY,
    KIND_BY_RESOURCE,
    KINDS,
    NAMESPACE,
    NETWORK_POLICY,
    POD,
    Kind,
    ObjectRef,
)
from pycni.policy.model import Namespace, NetworkPolicy, Pod

__all__ = [
    "ADMIN_NETWORK_POLICY",
    "BASELINE_ADMIN_NETWORK_POLICY",
    "KINDS",
    "NAMESPACE",
    "NETWORK_POLICY",
    "POD",
    "Applied",
    "Forbidden",
    "Kind",
    "LabelConflict",
    "Labeled",
    "Model",
    "NotFound",
    "ObjectRef",
    "ObjectStore",
    "Snapshot",
    "StoreError",
    "StoredObject",
    "kind_of",
    "object_ref",
    "ref_of",
]

Model = Namespace | Pod | NetworkPolicy | AdminNetworkPolicy | BaselineAdminNetworkPolicy
Outcome = Literal["created", "configured", "unchanged"]

DEFAULT_PREFIX = "/pycni"  # the cluster's, as ``--etcd-prefix`` defaults it
_ATTEMPTS = 20  # conflicting writers are people typing commands: a few retries always suffice
_FEW_KEYS = 16  # up to this many objects are read key by key; more in one range read


def kind_of(kind: Kind | str) -> Kind:
    """A Kind from itself, its name (``NetworkPolicy``) or its resource (``networkpolicies``)."""
    if isinstance(kind, Kind):
        return kind
    found = KINDS.get(kind) or KIND_BY_RESOURCE.get(kind)
    if found is None:
        raise StoreError(f"unknown kind {kind!r} (pycni stores {', '.join(KINDS)})")
    return found


def object_ref(kind: Kind | str, namespace: str, name: str) -> ObjectRef:
    """The ref of an object; a Namespace's ``namespace`` is ignored (it has none)."""
    found = kind_of(kind)
    return ObjectRef(found, namespace if found.namespaced else "", name)


def ref_of(obj: Model) -> ObjectRef:
    if isinstance(obj, Namespace):
        return ObjectRef(NAMESPACE, "", obj.name)
    if isinstance(obj, Pod):
        return ObjectRef(POD, obj.namespace, obj.name)
    if isinstance(obj, AdminNetworkPolicy):
        return ObjectRef(ADMIN_NETWORK_POLICY, "", obj.name)
    if isinstance(obj, BaselineAdminNetworkPolicy):
        return ObjectRef(BASELINE_ADMIN_NETWORK_POLICY, "", obj.name)
    return ObjectRef(NETWORK_POLICY, obj.namespace, obj.name)


class StoreError(Exception):
    """The store refused an operation; the text reads like the API server's."""

    reason = "BadRequest"


class NotFound(StoreError):
    reason = "NotFound"

    def __init__(self, ref: ObjectRef, context: str = "") -> None:
        super().__init__(f'{context}{ref.kind.qualified_resource} "{ref.name}" not found')
        self.ref = ref


class Forbidden(StoreError):
    reason = "Forbidden"


class LabelConflict(StoreError):
    """A label to set exists and overwriting was not asked for (kubectl's wording)."""

    def __init__(self, key: str, value: str) -> None:
        super().__init__(f"'{key}' already has a value ({value}), and --overwrite is false")


@dataclass(frozen=True)
class StoredObject:
    """An object as stored: its normalised manifest (with ``metadata.resourceVersion``) and revisions."""

    ref: ObjectRef
    manifest: dict[str, Any]
    mod_revision: int
    create_revision: int

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.manifest.get("metadata", {}).get("labels") or {})

    @property
    def created_at(self) -> float | None:
        """``metadata.creationTimestamp`` as a Unix time (None if absent or unreadable)."""
        stamp = self.manifest.get("metadata", {}).get("creationTimestamp")
        try:
            return datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return None

    def model(self) -> Model:
        """The validated model of this object (``ValidationError`` if the stored value was tampered with)."""
        from pycni.policy.validate import to_model

        return to_model(self.manifest)


@dataclass(frozen=True)
class Applied:
    ref: ObjectRef
    outcome: Outcome


@dataclass(frozen=True)
class Labeled:
    """What ``label`` did: the object after it, whether it changed, and the keys to remove that were absent."""

    object: StoredObject
    changed: bool
    absent: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Every object at one store revision; ``unreadable`` keys held values that did not decode."""

    revision: int
    objects: tuple[StoredObject, ...]
    unreadable: tuple[str, ...] = ()


class ObjectStore:
    """Kubernetes objects under one cluster prefix of a ``KV`` store."""

    def __init__(self, kv: KV, prefix: str = DEFAULT_PREFIX, *, clock: Callable[[], float] = time.time) -> None:
        self.kv = kv
        self.prefix = "/" + prefix.strip().strip("/")  # as the subnet manager normalises it
        if self.prefix == "/":
            raise StoreError("etcd prefix: must not be '/' (use e.g. /pycni)")
        self.clock = clock

    # -- keys ---------------------------------------------------------------------------

    @property
    def objects_prefix(self) -> str:
        return f"{self.prefix}/k8s/"

    def kind_prefix(self, kind: Kind, namespace: str | None = None) -> str:
        base = f"{self.objects_prefix}{kind.resource}/"
        return f"{base}{namespace}/" if kind.namespaced and namespace else base

    def key(self, ref: ObjectRef) -> str:
        if ref.kind.namespaced:
            return f"{self.kind_prefix(ref.kind, ref.namespace)}{ref.name}"
        return f"{self.kind_prefix(ref.kind)}{ref.name}"

    def ref_of_key(self, key: str) -> ObjectRef | None:
        """The object a key holds, or None for a key outside the layout."""
        if not key.startswith(self.objects_prefix):
            return None
        parts = key[len(self.objects_prefix):].split("/")
        kind = KIND_BY_RESOURCE.get(parts[0])
        if kind is None or len(parts) != (3 if kind.namespaced else 2) or not all(parts[1:]):
            return None
        return ObjectRef(kind, parts[1], parts[2]) if kind.namespaced else ObjectRef(kind, "", parts[1])

    def decode(self, kv: KeyValue, ref: ObjectRef | None = None) -> StoredObject:
        """The object a key holds (``ref``: its ``ref_of_key``, when the caller has it already)."""
        ref = ref or self.ref_of_key(kv.key)
        if ref is None:
            raise StoreError(f"{kv.key}: not an object key")
        try:
            manifest = json.loads(kv.value)
        except ValueError as exc:
            raise StoreError(f"{kv.key}: stored value is not JSON: {exc}") from None
        if not isinstance(manifest, dict):
            raise StoreError(f"{kv.key}: stored value is not an object")
        metadata = manifest.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise StoreError(f"{kv.key}: stored metadata is not an object")
        metadata["resourceVersion"] = str(kv.mod_revision)
        return StoredObject(ref, manifest, kv.mod_revision, kv.create_revision)

    # -- reads ------------------------------------------------------------------------------

    def get(self, kind: Kind | str, namespace: str, name: str) -> StoredObject:
        ref = object_ref(kind, namespace, name)
        kv = self.kv.get(self.key(ref))
        if kv is None:
            raise NotFound(ref)
        return self.decode(kv)

    def list(self, kind: Kind | str, namespace: str | None = None) -> list[StoredObject]:
        """Objects of ``kind`` in key order (namespace, then name); ``namespace`` None means all."""
        kvs, _ = self.kv.list_prefix(self.kind_prefix(kind_of(kind), namespace))
        out = []
        for kv in kvs:
            if self.ref_of_key(kv.key) is not None:
                out.append(self.decode(kv))
        return out

    def snapshot(self) -> Snapshot:
        kvs, revision = self.kv.list_prefix(self.objects_prefix)
        objects, unreadable = [], []
        for kv in kvs:
            try:
                objects.append(self.decode(kv))
            except StoreError:
                unreadable.append(kv.key)
        return Snapshot(revision, tuple(objects), tuple(unreadable))

    # -- writes -----------------------------------------------------------------------------

    def apply(self, objects: Iterable[Model], *, dry_run: bool = False) -> builtins.list[Applied]:
        """Store ``objects`` all or none; what happened to each, in first-seen order (a repeat replaces).

        ``dry_run`` reads and reports but writes nothing."""
        from pycni.policy.validate import to_manifest

        batch: dict[ObjectRef, dict[str, Any]] = {}
        for obj in objects:
            batch[ref_of(obj)] = to_manifest(obj)
        if not batch:
            return []
        for _ in range(_ATTEMPTS):
            current = self._read([*batch, *self._namespaces_needed(batch)])
            checks: list[tuple[str, int]] = []
            puts: list[Put] = []
            for ref in self._namespaces_needed(batch):
                kv = current.get(ref)
                if kv is not None:
                    checks.append((kv.key, kv.mod_revision))
                elif ref.name == "default":
                    checks.append((self.key(ref), 0))
                    puts.append(Put(self.key(ref), self._encode(self._default_namespace(), None)))
                else:
                    needer = next(r for r in batch if r.kind.namespaced and r.namespace == ref.name)
                    raise NotFound(ref, f"error when creating {needer}: ")
            applied = []
            for ref, manifest in batch.items():
                kv = current.get(ref)
                key = self.key(ref)
                checks.append((key, kv.mod_revision if kv else 0))
                old = _readable(kv.value) if kv else None  # an unreadable value is replaced ("configured")
                if old is not None and _same(old, manifest):
                    applied.append(Applied(ref, "unchanged"))
                    continue
                puts.append(Put(key, self._encode(manifest, old)))
                applied.append(Applied(ref, "configured" if kv else "created"))
            if dry_run or not puts:
                return applied
            if self._txn(checks, puts) > 0:
                return applied
        raise StoreError(f"apply: the objects kept changing under it ({_ATTEMPTS} attempts); try again")

    def delete(self, kind: Kind | str, namespace: str, name: str) -> StoredObject:
        """Delete one object (a Namespace with everything in it); the object as it was, or ``NotFound``."""
        ref = object_ref(kind, namespace, name)
        if ref.kind is NAMESPACE and ref.name == "default":
            raise Forbidden('namespaces "default" is forbidden: this namespace may not be deleted')
        for _ in range(_ATTEMPTS):
            kv = self.kv.get(self.key(ref))
            if kv is None:
                raise NotFound(ref)
            deletes = [kv.key]
            if ref.kind is NAMESPACE:
                deletes += self._contents(ref.name)
            if self._txn([(kv.key, kv.mod_revision)], (), deletes) > 0:
                if ref.kind is NAMESPACE:
                    self._sweep(ref.name)
                return self.decode(kv)
        raise StoreError(f"delete {ref}: it kept changing under it ({_ATTEMPTS} attempts); try again")

    def label(self, kind: Kind | str, namespace: str, name: str, set: Mapping[str, str] | None = None,
              remove: Sequence[str] = (), *, overwrite: bool = False) -> Labeled:
        """Set and remove labels of one object as a compare-and-swap; ``LabelConflict`` when a key to set
        exists and not ``overwrite`` (even with the same value, as kubectl)."""
        from pycni.policy.validate import to_manifest, to_model

        ref = object_ref(kind, namespace, name)
        to_set = dict(set or {})
        for _ in range(_ATTEMPTS):
            kv = self.kv.get(self.key(ref))
            if kv is None:
                raise NotFound(ref)
            old = self.decode(kv).manifest  # StoreError if someone stored garbage there
            labels = dict(old["metadata"].get("labels") or {})
            if not overwrite:
                for key in to_set:
                    if key in labels:
                        raise LabelConflict(key, labels[key])
            absent = tuple(key for key in remove if key not in labels)
            labels.update(to_set)
            for key in remove:
                labels.pop(key, None)
            wanted = json.loads(json.dumps(old))
            wanted["metadata"]["labels"] = labels
            manifest = to_manifest(to_model(wanted))
            kept = manifest.get("metadata", {}).get("labels") or {}
            if to_set and not kept:  # Kubernetes itself may override a label (a namespace's name), not drop all
                raise StoreError(f"{ref}: pycni keeps no labels on a {ref.kind.name} (its model has none)")
            if _same(old, manifest):
                return Labeled(self.decode(kv), changed=False, absent=absent)
            value = self._encode(manifest, old)
            revision = self._txn([(kv.key, kv.mod_revision)], [Put(kv.key, value)])
            if revision > 0:
                stored = KeyValue(kv.key, value, revision, kv.create_revision)
                return Labeled(self.decode(stored), changed=True, absent=absent)
        raise StoreError(f"label {ref}: it kept changing under it ({_ATTEMPTS} attempts); try again")

    # -- internals ------------------------------------------------------------------------------

    def _namespaces_needed(self, batch: Mapping[ObjectRef, Any]) -> builtins.list[ObjectRef]:
        """Namespaces the batch's objects live in that the batch does not itself apply."""
        applied = {ref.name for ref in batch if ref.kind is NAMESPACE}
        needed = {ref.namespace for ref in batch if ref.kind.namespaced} - applied
        return [ObjectRef(NAMESPACE, "", name) for name in sorted(needed)]

    def _read(self, refs: Sequence[ObjectRef]) -> dict[ObjectRef, KeyValue]:
        """The stored key-values of ``refs`` (absent ones left out). Per kind and namespace: key by key when
        few, else one range read of that kind in that namespace (not of every object in the cluster)."""
        groups: dict[tuple[Kind, str], builtins.list[ObjectRef]] = {}
        for ref in refs:
            groups.setdefault((ref.kind, ref.namespace), []).append(ref)
        found: dict[ObjectRef, KeyValue] = {}
        for (kind, namespace), members in groups.items():
            if len(members) <= _FEW_KEYS:
                for ref in members:
                    kv = self.kv.get(self.key(ref))
                    if kv is not None:
                        found[ref] = kv
                continue
            kvs, _ = self.kv.list_prefix(self.kind_prefix(kind, namespace))
            by_key = {kv.key: kv for kv in kvs}
            found.update({ref: by_key[self.key(ref)] for ref in members if self.key(ref) in by_key})
        return found

    def _contents(self, namespace: str) -> builtins.list[str]:
        keys = []
        for kind in KINDS.values():
            if kind.namespaced:
                kvs, _ = self.kv.list_prefix(self.kind_prefix(kind, namespace))
                keys += [kv.key for kv in kvs]
        return keys

    def _sweep(self, namespace: str) -> None:
        """Delete what an apply racing the namespace's deletion stored in it (between our list and txn)."""
        leftovers = self._contents(namespace)
        if leftovers and self.kv.get(self.key(ObjectRef(NAMESPACE, "", namespace))) is None:
            self._txn([(self.key(ObjectRef(NAMESPACE, "", namespace)), 0)], (), leftovers)

    def _default_namespace(self) -> dict[str, Any]:
        from pycni.policy.validate import to_manifest, to_model

        default = to_model({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
        return to_manifest(default)

    def _encode(self, manifest: dict[str, Any], old: dict[str, Any] | None) -> bytes:
        """The value to store: the manifest with the first creation time, without a resourceVersion."""
        out = json.loads(json.dumps(manifest))  # a deep copy we may change
        metadata = out.setdefault("metadata", {})
        metadata.pop("resourceVersion", None)
        created = (old or {}).get("metadata", {}).get("creationTimestamp")
        metadata["creationTimestamp"] = created or datetime.fromtimestamp(self.clock(), UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        return json.dumps(out, sort_keys=True, separators=(",", ":")).encode()

    def _txn(self, checks: Sequence[tuple[str, int]], puts: Sequence[Put] = (), deletes: Sequence[str] = ()) -> int:
        try:
            return self.kv.txn(checks, puts, deletes)
        except KVError as exc:
            if "too many operations" in str(exc):
                raise StoreError(
                    f"{len(puts) + len(deletes)} objects are more than etcd takes in one transaction "
                    "(its --max-txn-ops, 128 by default): apply fewer at once, or raise the limit"
                ) from None
            raise


def _readable(value: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(value)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("metadata", {}), dict) else None


def _same(stored: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    """Whether a stored value and a new manifest are the same object (the store's own metadata aside)."""

    def bare(doc: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(doc)
        metadata = {k: v for k, v in dict(out.get("metadata") or {}).items()
                    if k not in ("creationTimestamp", "resourceVersion")}
        out["metadata"] = metadata
        return out

    return bare(stored) == bare(manifest)
