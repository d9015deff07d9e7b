"""The KV contract (pycni/cluster/kv.py), held by MemoryKV and by EtcdKV against a real etcd alike.

Every test runs three times: on the in-memory fake (its clock advanced by
hand), and on etcd (real time, TTLs of a few seconds) through its JSON
gateway (``EtcdGatewayKV``) and through gRPC (``EtcdGrpcKV``, the
``EtcdKV`` users get), so the fake the unit tests trust is checked against
the real thing, and both clients hold the same contract.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from pycni.cluster.etcd_gateway import EtcdGatewayKV
from pycni.cluster.etcd_grpc import EtcdGrpcKV
from pycni.cluster.kv import KV, Compacted, KeyValue, KVUnavailable, LeaseExpired, Put, WatchEvent
from pycni.testing.kv import MemoryKV
from tests.cluster_etcd.etcd_server import EtcdServer
from tests.support.wait import wait_until


@dataclass
class Store:
    kv: KV
    prefix: str
    let_expire: Callable[[int, int, str], None]  # (lease, ttl, key): return once the lease expired and took key
    compact: Callable[[int], None]


@pytest.fixture(params=["memory", "etcd-gateway", "etcd-grpc"])
def store(request: pytest.FixtureRequest, prefix: str) -> Iterator[Store]:
    if request.param == "memory":
        memory = MemoryKV()
        yield Store(memory, prefix, lambda lease, ttl, key: memory.advance(ttl + 1), memory.compact)
        memory.close()
        return
    server: EtcdServer = request.getfixturevalue("etcd_server")
    kind = EtcdGatewayKV if request.param == "etcd-gateway" else EtcdGrpcKV
    etcd: EtcdGatewayKV | EtcdGrpcKV = kind([server.endpoint], retry_for=5)

    def let_expire(lease: int, ttl: int, key: str) -> None:
        # etcd reports the TTL as gone first, then deletes the keys (its lessor checks every 500 ms)
        wait_until(lambda: etcd.time_to_live(lease) == -1 and etcd.get(key) is None, ttl + 5,
                   f"lease {lease:x} to expire")

    yield Store(etcd, prefix, let_expire, etcd.compact)
    etcd.close()


def collect(kv: KV, prefix: str, start: int, count: int, timeout: float = 10.0) -> list[WatchEvent]:
    """The first ``count`` events of a watch from ``start`` (fails after ``timeout``)."""
    stop = threading.Event()
    got: list[WatchEvent] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            for event in kv.watch_prefix(prefix, start, stop):
                got.append(event)
                if len(got) >= count:
                    stop.set()
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    stop.set()
    thread.join(5)
    if error:
        raise error[0]
    assert len(got) == count, f"got {len(got)} of {count} events: {got}"
    return got


def test_create_get_update_delete(store: Store) -> None:
    kv, key = store.kv, f"{store.prefix}/a"
    assert kv.get(key) is None
    assert kv.create(key, b"one")
    assert not kv.create(key, b"two"), "create must not overwrite"
    first = kv.get(key)
    assert first is not None and first.value == b"one" and first.create_revision == first.mod_revision
    assert kv.update(key, b"three", first.mod_revision)
    assert not kv.update(key, b"four", first.mod_revision), "update must compare the mod_revision"
    second = kv.get(key)
    assert second is not None and second.value == b"three"
    assert second.mod_revision > first.mod_revision and second.create_revision == first.create_revision
    assert not kv.delete(key, first.mod_revision)
    assert kv.delete(key, second.mod_revision)
    assert kv.get(key) is None
    assert not kv.delete(key)


def test_list_prefix_is_sorted_scoped_and_revisioned(store: Store) -> None:
    kv, p = store.kv, store.prefix
    for name in ("b", "a", "c/d"):
        assert kv.create(f"{p}/x/{name}", name.encode())
    assert kv.create(f"{p}/xy", b"other")  # shares the string prefix "/x" but not "/x/"
    kvs, revision = kv.list_prefix(f"{p}/x/")
    assert [k.key for k in kvs] == [f"{p}/x/a", f"{p}/x/b", f"{p}/x/c/d"]
    assert revision >= max(k.mod_revision for k in kvs)
    assert kv.list_prefix(f"{p}/nothing/") == ([], kv.list_prefix(f"{p}/nothing/")[1])


def test_list_prefixes_reads_each_prefix_sorted_at_one_revision(store: Store) -> None:
    kv, p = store.kv, store.prefix
    for key in ("x/b", "x/a", "y/c", "z/d"):
        assert kv.create(f"{p}/{key}", key.encode())
    (xs, ys, none, exact), revision = kv.list_prefixes([f"{p}/x/", f"{p}/y/", f"{p}/w/", f"{p}/z/d"])
    assert [k.key for k in xs] == [f"{p}/x/a", f"{p}/x/b"]
    assert [(k.key, k.value) for k in ys] == [(f"{p}/y/c", b"y/c")]
    assert none == [] and [k.key for k in exact] == [f"{p}/z/d"]
    assert revision == kv.list_prefix(f"{p}/")[1]


def test_list_prefixes_concurrently_reads_at_one_revision(store: Store) -> None:
    kv, p = store.kv, store.prefix
    for key in ("x/b", "x/a", "y/c"):
        assert kv.create(f"{p}/{key}", key.encode())
    (xs, ys, none), revision = kv.list_prefixes([f"{p}/x/", f"{p}/y/", f"{p}/w/"], concurrently=True)
    assert [k.key for k in xs] == [f"{p}/x/a", f"{p}/x/b"] and [k.key for k in ys] == [f"{p}/y/c"]
    assert none == [] and revision == kv.list_prefix(f"{p}/")[1]


@pytest.mark.parametrize("client", [EtcdGatewayKV, EtcdGrpcKV])
def test_concurrent_reads_that_straddle_a_write_are_read_again_at_the_later_revision(
        etcd_server: EtcdServer, prefix: str, client: type[EtcdGatewayKV | EtcdGrpcKV]) -> None:
    # x is read, then a key is written under x, then y is read: x's answer is one revision behind
    # y's, so x is read again at y's revision and the late key is in it.
    kv = client([etcd_server.endpoint], retry_for=5)
    assert kv.create(f"{prefix}/x/a", b"a")
    x_read, reads = threading.Event(), []
    plain = kv.list_prefix

    def racing(key: str, revision: int = 0) -> tuple[list[KeyValue], int]:
        reads.append((key, revision))
        if key.endswith("/y/") and not revision:
            assert x_read.wait(5)
            assert kv.create(f"{prefix}/x/late", b"late")
        answer = plain(key, revision)
        if key.endswith("/x/"):
            x_read.set()
        return answer

    kv.list_prefix = racing  # type: ignore[method-assign,assignment]
    try:
        (xs, ys), revision = kv.list_prefixes([f"{prefix}/x/", f"{prefix}/y/"], concurrently=True)
    finally:
        kv.close()
    assert [k.key for k in xs] == [f"{prefix}/x/a", f"{prefix}/x/late"] and ys == []
    assert (f"{prefix}/x/", revision) in reads and revision == max(k.mod_revision for k in xs)


def test_txn_is_all_or_nothing(store: Store) -> None:
    kv, p = store.kv, store.prefix
    assert kv.create(f"{p}/a", b"1")
    a = kv.get(f"{p}/a")
    assert a is not None
    # one failing check: nothing written
    assert kv.txn([(f"{p}/a", a.mod_revision), (f"{p}/b", a.mod_revision)], [Put(f"{p}/c", b"x")]) == 0
    assert kv.get(f"{p}/c") is None
    revision = kv.txn([(f"{p}/a", a.mod_revision), (f"{p}/b", 0)], [Put(f"{p}/b", b"2"), Put(f"{p}/c", b"3")],
                      [f"{p}/a"])
    assert revision > a.mod_revision
    b, c = kv.get(f"{p}/b"), kv.get(f"{p}/c")
    assert b is not None and c is not None and b.mod_revision == c.mod_revision == revision
    assert kv.get(f"{p}/a") is None


def test_only_one_of_racing_creates_wins(store: Store) -> None:
    kv, key = store.kv, f"{store.prefix}/race"
    barrier = threading.Barrier(8)
    wins: list[int] = []

    def racer(i: int) -> None:
        barrier.wait()
        if kv.create(key, str(i).encode()):
            wins.append(i)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    stored = kv.get(key)
    assert stored is not None and stored.value == str(wins[0]).encode()


def test_racing_updates_of_one_revision_let_one_through(store: Store) -> None:
    kv, key = store.kv, f"{store.prefix}/cas"
    assert kv.create(key, b"0")
    start = kv.get(key)
    assert start is not None
    barrier = threading.Barrier(6)
    wins: list[int] = []

    def racer(i: int) -> None:
        barrier.wait()
        if kv.update(key, str(i).encode(), start.mod_revision):
            wins.append(i)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_lease_keeps_keys_while_alive_and_deletes_them_on_expiry(store: Store) -> None:
    kv, key = store.kv, f"{store.prefix}/leased"
    lease = kv.grant_lease(2)
    assert kv.create(key, b"v", lease)
    stored = kv.get(key)
    assert stored is not None and stored.lease == lease
    assert 0 <= kv.time_to_live(lease) <= 2
    assert kv.keepalive(lease) == 2
    store.let_expire(lease, 2, key)
    assert kv.get(key) is None
    assert kv.time_to_live(lease) == -1
    with pytest.raises(LeaseExpired):
        kv.keepalive(lease)
    with pytest.raises(LeaseExpired):
        kv.txn([(key, 0)], [Put(key, b"again", lease)])


def test_revoke_deletes_the_keys_and_is_idempotent(store: Store) -> None:
    kv, key = store.kv, f"{store.prefix}/revoked"
    lease = kv.grant_lease(60)
    assert kv.create(key, b"v", lease)
    kv.revoke(lease)
    assert kv.get(key) is None
    kv.revoke(lease)  # gone already: fine
    with pytest.raises(LeaseExpired):
        kv.keepalive(lease)


def test_moving_a_key_to_another_lease_detaches_it_from_the_first(store: Store) -> None:
    kv, key = store.kv, f"{store.prefix}/moved"
    old, new = kv.grant_lease(60), kv.grant_lease(60)
    assert kv.create(key, b"v", old)
    current = kv.get(key)
    assert current is not None
    assert kv.update(key, b"w", current.mod_revision, new)
    kv.revoke(old)
    moved = kv.get(key)
    assert moved is not None and moved.lease == new
    kv.revoke(new)


def test_watch_replays_from_the_start_revision_then_follows(store: Store) -> None:
    kv, p = store.kv, store.prefix
    assert kv.create(f"{p}/w/a", b"1")
    first = kv.get(f"{p}/w/a")
    assert first is not None
    assert kv.update(f"{p}/w/a", b"2", first.mod_revision)
    assert kv.create(f"{p}/other", b"not watched")
    assert kv.delete(f"{p}/w/a")
    events = collect(kv, f"{p}/w/", first.mod_revision, 3)
    assert [(e.type, e.kv.key, e.kv.value) for e in events] == [
        ("put", f"{p}/w/a", b"1"), ("put", f"{p}/w/a", b"2"), ("delete", f"{p}/w/a", b"")]
    assert events[0].kv.mod_revision == first.mod_revision  # inclusive start
    revisions = [e.kv.mod_revision for e in events]
    assert revisions == sorted(revisions)

    # live: a watch from "now" sees only what comes after
    _, revision = kv.list_prefix(f"{p}/w/")
    result: list[WatchEvent] = []
    watcher = threading.Thread(target=lambda: result.extend(collect(kv, f"{p}/w/", revision + 1, 1)))
    watcher.start()
    time.sleep(0.3)
    assert kv.create(f"{p}/w/b", b"3")
    watcher.join(15)
    assert [(e.type, e.kv.key) for e in result] == [("put", f"{p}/w/b")]


def test_lease_expiry_is_a_delete_event(store: Store) -> None:
    kv, key = store.kv, f"{store.prefix}/e/k"
    lease = kv.grant_lease(2)
    assert kv.create(key, b"v", lease)
    created = kv.get(key)
    assert created is not None
    store.let_expire(lease, 2, key)
    events = collect(kv, f"{store.prefix}/e/", created.mod_revision, 2)
    assert [e.type for e in events] == ["put", "delete"]
    assert events[1].kv.mod_revision > created.mod_revision


def test_watch_returns_soon_after_stop(store: Store) -> None:
    stop = threading.Event()
    done = threading.Event()

    def run() -> None:
        for _ in store.kv.watch_prefix(f"{store.prefix}/quiet/", 0, stop):
            pass
        done.set()

    threading.Thread(target=run, daemon=True).start()
    time.sleep(0.3)
    stop.set()
    assert done.wait(3), "watch_prefix did not return after stop was set"


def test_watching_a_compacted_revision_raises_compacted(store: Store) -> None:
    kv, p = store.kv, store.prefix
    assert kv.create(f"{p}/c/a", b"1")
    old = kv.get(f"{p}/c/a")
    assert old is not None
    assert kv.create(f"{p}/c/b", b"2")
    _, revision = kv.list_prefix(f"{p}/c/")
    store.compact(revision)
    with pytest.raises(Compacted) as info:
        for _ in kv.watch_prefix(f"{p}/c/", old.mod_revision, threading.Event()):
            pass
    assert info.value.revision >= revision
    # from the compaction revision on, history is still there
    events = collect(kv, f"{p}/c/", revision, 1)
    assert events[0].kv.key == f"{p}/c/b"


def test_memory_kv_outage_raises_unavailable() -> None:
    kv = MemoryKV()
    kv.set_available(False)
    with pytest.raises(KVUnavailable):
        kv.get("/x")
    with pytest.raises(KVUnavailable):
        next(iter(kv.watch_prefix("/x", 1, threading.Event())))
    kv.set_available(True)
    assert kv.get("/x") is None
