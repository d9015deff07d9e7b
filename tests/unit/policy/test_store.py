"""The object store over the in-memory KV: key layout, one-transaction apply, cascades, CAS labels, snapshots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from pycni.cluster.kv import KVError, Put
from pycni.policy.model import Namespace, NetworkPolicy, Pod
from pycni.policy.store import (
    NAMESPACE,
    NETWORK_POLICY,
    POD,
    Applied,
    Forbidden,
    LabelConflict,
    NotFound,
    ObjectRef,
    ObjectStore,
    StoreError,
)
from pycni.policy.validate import ValidationError, to_model
from pycni.testing.kv import MemoryKV

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def ns(name: str, **labels: str) -> Namespace:
    model = to_model({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    assert isinstance(model, Namespace)
    return model


def pod(namespace: str, name: str, **labels: str) -> Pod:
    model = to_model({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": name, "namespace": namespace, "labels": labels}})
    assert isinstance(model, Pod)
    return model


def policy(namespace: str, name: str, port: int = 80) -> NetworkPolicy:
    model = to_model({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                      "metadata": {"name": name, "namespace": namespace},
                      "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": port}]}]}})
    assert isinstance(model, NetworkPolicy)
    return model


def ref(kind: Any, namespace: str, name: str) -> ObjectRef:
    return ObjectRef(kind, namespace, name)


@pytest.fixture
def kv() -> MemoryKV:
    return MemoryKV()


@pytest.fixture
def store(kv: MemoryKV) -> ObjectStore:
    return ObjectStore(kv, "/pycni/", clock=lambda: T0)


def stored(kv: MemoryKV, key: str) -> dict[str, Any]:
    value = kv.get(key)
    assert value is not None, key
    return dict(json.loads(value.value))


def test_keys_follow_the_layout_and_values_are_the_normalised_manifest(store: ObjectStore, kv: MemoryKV) -> None:
    store.apply([ns("x"), pod("x", "a", app="web"), policy("x", "deny")])
    keys = [item.key for item in kv.list_prefix("/pycni/")[0]]
    assert keys == ["/pycni/k8s/namespaces/x", "/pycni/k8s/networkpolicies/x/deny", "/pycni/k8s/pods/x/a"]
    value = stored(kv, "/pycni/k8s/networkpolicies/x/deny")
    assert value["metadata"] == {"name": "deny", "namespace": "x", "creationTimestamp": "2023-11-14T22:13:20Z"}
    assert value["spec"]["policyTypes"] == ["Ingress"]  # defaulted by to_manifest
    assert value["spec"]["ingress"] == [{"ports": [{"port": 80, "protocol": "TCP"}]}]
    raw = kv.get("/pycni/k8s/pods/x/a")
    assert raw is not None and raw.value == json.dumps(json.loads(raw.value), sort_keys=True,
                                                       separators=(",", ":")).encode()


def test_reads_fill_in_resource_version_from_the_mod_revision(store: ObjectStore, kv: MemoryKV) -> None:
    store.apply([ns("x"), pod("x", "a")])
    got = store.get(POD, "x", "a")
    assert got.manifest["metadata"]["resourceVersion"] == str(kv.revision) == str(got.mod_revision)
    assert got.created_at == T0
    assert got.model() == pod("x", "a")
    assert "resourceVersion" not in stored(kv, "/pycni/k8s/pods/x/a")["metadata"]


def test_apply_is_one_transaction_at_one_revision(store: ObjectStore, kv: MemoryKV) -> None:
    before = kv.revision
    result = store.apply([ns("x"), pod("x", "a"), pod("x", "b"), policy("x", "deny")])
    assert [str(a.ref) for a in result] == ["namespace/x", "pod/a", "pod/b", "networkpolicy.networking.k8s.io/deny"]
    assert {a.outcome for a in result} == {"created"}
    assert kv.calls["txn"] == 1
    assert kv.revision == before + 1
    assert {o.mod_revision for o in store.snapshot().objects} == {before + 1}


def test_reapply_reports_unchanged_and_configured_and_replaces_labels(store: ObjectStore, kv: MemoryKV) -> None:
    store.apply([ns("x"), pod("x", "a", app="web", tier="front")])
    revision = kv.revision
    assert store.apply([ns("x"), pod("x", "a", app="web", tier="front")]) == [
        Applied(ref(NAMESPACE, "", "x"), "unchanged"), Applied(ref(POD, "x", "a"), "unchanged")]
    assert kv.revision == revision  # nothing written
    later = ObjectStore(kv, "/pycni", clock=lambda: T0 + 60)
    assert later.apply([pod("x", "a", app="api")]) == [Applied(ref(POD, "x", "a"), "configured")]
    got = store.get(POD, "x", "a")
    assert got.labels == {"app": "api"}  # tier is gone: apply replaces the object
    assert got.created_at == T0  # the first creation time stays


def test_a_repeated_object_in_one_apply_is_written_once_last_wins(store: ObjectStore) -> None:
    result = store.apply([pod("default", "a", v="1"), pod("default", "a", v="2")])
    assert result == [Applied(ref(POD, "default", "a"), "created")]
    assert store.get(POD, "default", "a").labels == {"v": "2"}


def test_namespaced_objects_need_their_namespace_and_nothing_is_stored_without_it(
    store: ObjectStore, kv: MemoryKV
) -> None:
    with pytest.raises(NotFound) as caught:
        store.apply([policy("y", "deny"), pod("x", "a"), ns("x")])
    assert str(caught.value) == 'error when creating networkpolicy.networking.k8s.io/deny: namespaces "y" not found'
    assert kv.list_prefix("/pycni/")[0] == []
    store.apply([pod("x", "a"), ns("x")])  # the namespace in the same apply is enough, in any order
    store.apply([policy("x", "deny")])  # and a stored one


def test_default_namespace_is_created_when_first_needed(store: ObjectStore) -> None:
    assert store.apply([pod("default", "a")]) == [Applied(ref(POD, "default", "a"), "created")]
    default = store.get(NAMESPACE, "", "default")
    assert default.labels == {"kubernetes.io/metadata.name": "default"}
    with pytest.raises(Forbidden, match='namespaces "default" is forbidden: this namespace may not be deleted'):
        store.delete(NAMESPACE, "", "default")


def test_dry_run_reports_and_writes_nothing(store: ObjectStore, kv: MemoryKV) -> None:
    store.apply([ns("x")])
    revision = kv.revision
    result = store.apply([ns("x"), pod("x", "a")], dry_run=True)
    assert [a.outcome for a in result] == ["unchanged", "created"]
    assert kv.revision == revision
    with pytest.raises(NotFound):
        store.get(POD, "x", "a")


def test_many_objects_of_a_namespace_are_read_in_one_range_read(store: ObjectStore, kv: MemoryKV) -> None:
    store.apply([ns("x"), *[pod("x", f"p{i}") for i in range(40)]])
    store.apply([ns("y"), *[pod("y", f"p{i}") for i in range(40)]])
    gets, lists = kv.calls["get"], kv.calls["list_prefix"]
    result = store.apply([ns("x"), *[pod("x", f"p{i}", v="2") for i in range(40)]])
    assert {a.outcome for a in result} == {"unchanged", "configured"}
    assert (kv.calls["get"], kv.calls["list_prefix"]) == (gets + 1, lists + 1)  # the namespace; x's pods
    assert store.get(POD, "y", "p0").labels == {}


class RacingKV(MemoryKV):
    """Lets another writer change a key just before the store's first ``txn``, as a concurrent command would."""

    def __init__(self) -> None:
        super().__init__()
        self.race: Put | None = None

    def txn(self, checks: Sequence[tuple[str, int]], puts: Sequence[Put] = (), deletes: Sequence[str] = ()) -> int:
        if self.race is not None:
            race, self.race = self.race, None
            super().txn([], [race])
        return super().txn(checks, puts, deletes)


def test_apply_retries_when_a_key_changes_under_it() -> None:
    kv = RacingKV()
    store = ObjectStore(kv, clock=lambda: T0)
    store.apply([ns("x"), pod("x", "a", v="1")])
    kv.race = Put("/pycni/k8s/pods/x/a", b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","namespace":"x"}}')
    assert store.apply([pod("x", "a", v="2")]) == [Applied(ref(POD, "x", "a"), "configured")]
    assert kv.calls["txn"] == 4  # first apply, the race, the failed check, the retry
    assert store.get(POD, "x", "a").labels == {"v": "2"}


def test_apply_notices_its_namespace_deleted_under_it() -> None:
    kv = RacingKV()
    store = ObjectStore(kv, clock=lambda: T0)
    store.apply([ns("x")])
    kv.race = Put("/pycni/k8s/namespaces/x", b'{"kind":"Namespace","metadata":{"name":"x"}}')  # changed: recheck
    store.apply([pod("x", "a")])
    store.delete(NAMESPACE, "", "x")
    with pytest.raises(NotFound, match='namespaces "x" not found'):
        store.apply([pod("x", "b")])


def test_deleting_a_namespace_deletes_its_contents_in_one_transaction(store: ObjectStore, kv: MemoryKV) -> None:
    store.apply([ns("x"), ns("xy"), pod("x", "a"), policy("x", "deny"), pod("xy", "a"), policy("xy", "deny")])
    before = kv.revision
    gone = store.delete(NAMESPACE, "", "x")
    assert gone.ref == ref(NAMESPACE, "", "x")
    assert kv.revision == before + 1
    assert [str(o.ref) for o in store.snapshot().objects] == [
        "namespace/xy", "networkpolicy.networking.k8s.io/deny", "pod/a"]
    assert [o.ref.namespace for o in store.list(POD)] == ["xy"]


def test_delete_one_object_and_not_found(store: ObjectStore) -> None:
    store.apply([ns("x"), pod("x", "a"), policy("x", "deny")])
    store.delete(NETWORK_POLICY, "x", "deny")
    with pytest.raises(NotFound) as caught:
        store.delete(NETWORK_POLICY, "x", "deny")
    assert str(caught.value) == 'networkpolicies.networking.k8s.io "deny" not found'
    with pytest.raises(NotFound, match=r'^pods "b" not found$'):
        store.get(POD, "x", "b")
    assert [o.ref.name for o in store.list(POD, "x")] == ["a"]


def test_label_sets_removes_and_keeps_the_rest(store: ObjectStore, kv: MemoryKV) -> None:
    store.apply([ns("x"), pod("x", "a", app="web", tier="front")])
    done = store.label(POD, "x", "a", {"env": "prod"}, ["tier", "missing"])
    assert done.changed and done.absent == ("missing",)
    assert done.object.labels == {"app": "web", "env": "prod"}
    assert done.object.mod_revision == kv.revision
    assert store.get(POD, "x", "a").labels == {"app": "web", "env": "prod"}
    assert store.get(POD, "x", "a").created_at == T0
    again = store.label(POD, "x", "a", {}, ["missing"])
    assert not again.changed and again.absent == ("missing",)


def test_label_refuses_to_overwrite_without_overwrite(store: ObjectStore) -> None:
    store.apply([ns("x"), pod("x", "a", app="web")])
    with pytest.raises(LabelConflict) as caught:
        store.label(POD, "x", "a", {"app": "web"})  # even the same value, as kubectl
    assert str(caught.value) == "'app' already has a value (web), and --overwrite is false"
    assert store.label(POD, "x", "a", {"app": "api"}, overwrite=True).object.labels == {"app": "api"}


def test_label_validates_like_apply(store: ObjectStore) -> None:
    store.apply([ns("x"), pod("x", "a")])
    with pytest.raises(ValidationError, match=r'Pod "x/a" is invalid: metadata.labels: Invalid value: "no good"'):
        store.label(POD, "x", "a", {"app": "no good"})
    with pytest.raises(NotFound):
        store.label(POD, "x", "b", {"app": "web"})


def test_label_is_a_compare_and_swap_retried_on_conflict() -> None:
    kv = RacingKV()
    store = ObjectStore(kv, clock=lambda: T0)
    store.apply([ns("x"), pod("x", "a", app="web")])
    racer = json.dumps({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": "a", "namespace": "x", "labels": {"app": "web", "new": "1"}}})
    kv.race = Put("/pycni/k8s/pods/x/a", racer.encode())
    done = store.label(POD, "x", "a", {"env": "prod"})
    assert done.object.labels == {"app": "web", "new": "1", "env": "prod"}  # the racer's label survives


def test_namespace_labels_keep_the_metadata_name_label(store: ObjectStore) -> None:
    store.apply([ns("x", team="a")])
    done = store.label(NAMESPACE, "", "x", {}, ["team", "kubernetes.io/metadata.name"])
    assert done.object.labels == {"kubernetes.io/metadata.name": "x"}  # Kubernetes sets it back


def test_snapshot_and_decoding_watch_events(store: ObjectStore, kv: MemoryKV) -> None:
    store.apply([ns("x"), pod("x", "a")])
    kv.create("/pycni/k8s/pods/x/broken", b"not json")
    kv.create("/pycni/k8s/other/thing", b"{}")
    snap = store.snapshot()
    assert snap.revision == kv.revision
    assert [str(o.ref) for o in snap.objects] == ["namespace/x", "pod/a"]
    assert snap.unreadable == ("/pycni/k8s/other/thing", "/pycni/k8s/pods/x/broken")
    assert store.ref_of_key("/pycni/k8s/pods/x/a") == ref(POD, "x", "a")
    assert store.ref_of_key("/pycni/k8s/namespaces/x") == ref(NAMESPACE, "", "x")
    assert store.ref_of_key("/pycni/k8s/namespaces/x/y") is None
    assert store.ref_of_key("/pycni/subnets/10.0.0.0-24") is None
    assert store.objects_prefix == "/pycni/k8s/"


class RefusingKV(MemoryKV):
    def txn(self, checks: Sequence[tuple[str, int]], puts: Sequence[Put] = (), deletes: Sequence[str] = ()) -> int:
        raise KVError("etcd refused to txn: etcdserver: too many operations in txn request")


def test_an_apply_larger_than_etcd_takes_says_so() -> None:
    store = ObjectStore(RefusingKV(), clock=lambda: T0)
    with pytest.raises(StoreError, match=r"2 objects are more than etcd takes in one transaction"):
        store.apply([pod("default", "a")])  # the default namespace and the pod


def test_prefix_must_not_be_the_root() -> None:
    with pytest.raises(StoreError, match="must not be '/'"):
        ObjectStore(MemoryKV(), "/")


def test_a_garbled_value_is_replaced_by_apply_and_refused_by_label(store: ObjectStore, kv: MemoryKV) -> None:
    store.apply([ns("x")])
    kv.create("/pycni/k8s/pods/x/a", b"{not json")
    with pytest.raises(StoreError, match="/pycni/k8s/pods/x/a: stored value is not JSON"):
        store.label(POD, "x", "a", {"app": "web"})
    assert store.apply([pod("x", "a")]) == [Applied(ref(POD, "x", "a"), "configured")]
    assert store.get(POD, "x", "a").created_at == T0


def test_kinds_by_name_or_resource(store: ObjectStore) -> None:
    store.apply([ns("x"), policy("x", "deny")])
    assert store.get("NetworkPolicy", "x", "deny").ref == ref(NETWORK_POLICY, "x", "deny")
    assert [o.ref.name for o in store.list("networkpolicies")] == ["deny"]
    assert store.get("Namespace", "ignored", "x").ref == ref(NAMESPACE, "", "x")
    with pytest.raises(StoreError, match="unknown kind 'Service'"):
        store.get("Service", "x", "s")
