"""The lease watch loop on the in-memory KV: snapshot diffs, expiry stamping, compaction, outages."""

from __future__ import annotations

import threading
import time

import pytest

from pycni.cluster.kv import KVUnavailable
from pycni.cluster.watch import LeaseEvent
from pycni.cluster.watch_loop import watch_leases
from pycni.testing.kv import MemoryKV
from tests.support.subnet_manager import QUARANTINE, TTL, config, ip, manager, memory_kv

kv = pytest.fixture(memory_kv)


def events_of(items: list[LeaseEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.lease.node) for e in items]


def test_watch_follows_leases_and_stamps_expiry(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    sm.acquire("a", ip(1), {})
    leases, _ = sm.list_leases()
    stop = threading.Event()
    gen = watch_leases(sm, stop, known=leases)
    b = sm.acquire("b", ip(2), {})
    assert events_of([next(gen)]) == [("added", "b")]
    kv.advance(TTL + 1)  # both expire
    assert sorted(events_of([next(gen), next(gen)])) == [("removed", "a"), ("removed", "b")]
    # seeing the delete, the watcher stamps the expiry (within a second): quarantine runs from then
    deadline = time.monotonic() + 5
    while {s.free_at for s in sm.subnet_states()[1]} != {kv.now() + QUARANTINE}:
        assert time.monotonic() < deadline, sm.subnet_states()[1]
        time.sleep(0.05)
    assert {s.status for s in sm.subnet_states()[1]} == {"quarantined"}
    sm.acquire("b", ip(22), {})
    added = next(gen)
    assert events_of([added]) == [("added", "b")] and added.lease.subnet == b.subnet
    stop.set()
    assert list(gen) == []


def test_watch_reports_what_changed_since_the_callers_listing(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    sm.acquire("a", ip(1), {})
    leases, _ = sm.list_leases()
    sm.release("a")  # between the listing and the watch
    sm.acquire("b", ip(2), {})
    gen = watch_leases(sm, threading.Event(), known=leases)
    assert events_of([next(gen), next(gen)]) == [("removed", "a"), ("added", "b")]


def test_watch_with_known_leases_and_a_changed_one(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    a = sm.acquire("a", ip(1), {})
    gen = watch_leases(sm, threading.Event(), known=[a])
    sm.acquire("a", ip(9), {})  # same subnet, new public IP
    changed = [next(gen), next(gen)]
    assert [(e.type, str(e.lease.public_ip)) for e in changed] == [("removed", "192.0.2.1"), ("added", "192.0.2.9")]


def test_watch_catches_up_after_compaction_with_a_snapshot_diff(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    leases, _ = sm.list_leases()
    gen = watch_leases(sm, threading.Event(), known=leases)
    sm.acquire("a", ip(1), {})
    assert events_of([next(gen)]) == [("added", "a")]
    sm.acquire("b", ip(2), {})
    sm.acquire("c", ip(3), {})
    sm.release("a")
    kv.compact(kv.revision)  # the watch has not read b, c and a's release: they are gone from history
    got = events_of([next(gen), next(gen), next(gen)])
    assert got == [("removed", "a"), ("added", "b"), ("added", "c")]


def test_watch_rides_out_an_outage(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    leases, _ = sm.list_leases()
    stop = threading.Event()
    got: list[tuple[str, str]] = []
    seen = threading.Condition()

    def run() -> None:
        for event in watch_leases(sm, stop, known=leases):
            with seen:
                got.append((event.type, event.lease.node))
                seen.notify_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    sm.acquire("a", ip(1), {})
    with seen:
        assert seen.wait_for(lambda: len(got) == 1, 5)
    kv.set_available(False)
    with pytest.raises(KVUnavailable):
        sm.acquire("b", ip(2), {})
    threading.Event().wait(0.5)  # the watch retries meanwhile
    assert kv.calls["watch_prefix"] >= 2  # it did retry: the first watch ended with the outage
    kv.set_available(True)
    sm.acquire("b", ip(2), {})
    with seen:
        assert seen.wait_for(lambda: len(got) == 2, 5)
    stop.set()
    thread.join(5)
    assert got == [("added", "a"), ("added", "b")]
