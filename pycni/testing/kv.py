"""An in-memory ``KV`` with etcd's semantics, for tests of the cluster code.

``MemoryKV`` keeps revisions, leases and a history of events like etcd
does, so the subnet manager, the lease watcher and the agent can be tested
in milliseconds without an etcd server::

    kv = MemoryKV()                       # a manual clock starting at 0
    sm = SubnetManager(kv, clock=kv.now)  # share the clock for quarantine
    lease = sm.acquire("node1", ip_address("192.0.2.1"), {})
    kv.advance(31)                        # the lease's TTL passes: its key is deleted

Test controls beyond the ``KV`` protocol:

- ``advance(seconds)`` moves the manual clock and expires leases (with
  delete events, as etcd does). Pass ``clock=time.monotonic`` to use real
  time instead; leases are then expired lazily on every call.
- ``compact(revision)`` drops history before ``revision``: watches that
  need it raise ``Compacted``.
- ``set_available(False)`` makes every call raise ``KVUnavailable`` and
  ends open watches with it, as an etcd outage past the client's deadline.
- ``calls`` counts operations by name.

Thread-safe: one lock; watches wait on a condition.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pycni.cluster.kv import Compacted, KeyValue, KVUnavailable, LeaseExpired, Put, WatchEvent

__all__ = ["MemoryKV"]


@dataclass
class _Lease:
    ttl: int
    expires_at: float
    keys: set[str] = field(default_factory=set)


class MemoryKV:
    """A single-member etcd in a dict."""

    def __init__(self, clock: Callable[[], float] | None = None, *, start: float = 0.0) -> None:
        self._manual = clock is None
        self._time = start
        self._clock: Callable[[], float] = clock if clock is not None else (lambda: self._time)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._data: dict[str, KeyValue] = {}
        self._revision = 1  # etcd's first revision of an empty store
        self._compacted = 0  # history before this revision is gone
        self._events: list[WatchEvent] = []  # every change since _compacted, in revision order
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(0x7E570001)
        self._available = True
        self._closed = False
        self.calls: Counter[str] = Counter()

    # -- test controls -----------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def advance(self, seconds: float) -> None:
        """Move the manual clock forward and expire the leases whose TTL passed."""
        if not self._manual:
            raise RuntimeError("advance() needs the manual clock (MemoryKV() without clock=)")
        with self._lock:
            self._time += seconds
            self._expire()

    def compact(self, revision: int) -> None:
        """Forget history before ``revision``, as etcd's compaction does."""
        with self._lock:
            if revision > self._revision:
                raise ValueError(f"cannot compact to {revision}: the store is at {self._revision}")
            self._compacted = max(self._compacted, revision)
            self._events = [e for e in self._events if e.kv.mod_revision >= revision]
            self._changed.notify_all()

    def set_available(self, available: bool) -> None:
        with self._lock:
            self._available = available
            self._changed.notify_all()

    @property
    def revision(self) -> int:
        return self._revision

    def lease_ids(self) -> list[int]:
        with self._lock:
            self._expire()
            return sorted(self._leases)

    # -- KV -------------------------------------------------------------------------

    def get(self, key: str) -> KeyValue | None:
        with self._enter("get"):
            return self._data.get(key)

    def list_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        with self._enter("list_prefix"):
            kvs = [self._data[k] for k in sorted(self._data) if k.startswith(prefix)]
            return kvs, self._revision

    def list_prefixes(self, prefixes: Sequence[str], *, concurrently: bool = False) -> tuple[list[list[KeyValue]], int]:
        with self._enter("list_prefixes"):
            keys = sorted(self._data)
            return [[self._data[k] for k in keys if k.startswith(prefix)] for prefix in prefixes], self._revision

    def txn(self, checks: Sequence[tuple[str, int]], puts: Sequence[Put] = (), deletes: Sequence[str] = ()) -> int:
        with self._enter("txn"):
            for key, revision in checks:
                current = self._data.get(key)
                if (current.mod_revision if current else 0) != revision:
                    return 0
            for put in puts:
                if put.lease and put.lease not in self._leases:
                    raise LeaseExpired(put.lease)
            touched = [p.key for p in puts] + list(deletes)
            if len(set(touched)) != len(touched):
                raise ValueError("a transaction may write each key once")
            if not puts and not any(k in self._data for k in deletes):
                return self._revision
            self._revision += 1
            for put in puts:
                self._put(put)
            for key in deletes:
                self._remove(key)
            self._changed.notify_all()
            return self._revision

    def create(self, key: str, value: bytes, lease: int = 0) -> bool:
        return self.txn([(key, 0)], [Put(key, value, lease)]) > 0

    def update(self, key: str, value: bytes, mod_revision: int, lease: int = 0) -> bool:
        if mod_revision <= 0:
            raise ValueError("update needs the mod_revision of an existing key")
        return self.txn([(key, mod_revision)], [Put(key, value, lease)]) > 0

    def delete(self, key: str, mod_revision: int | None = None) -> bool:
        with self._enter("delete"):
            current = self._data.get(key)
            if current is None or (mod_revision is not None and current.mod_revision != mod_revision):
                return False
            self._revision += 1
            self._remove(key)
            self._changed.notify_all()
            return True

    def grant_lease(self, ttl: int) -> int:
        if ttl <= 0:
            raise ValueError("a lease needs a positive TTL")
        with self._enter("grant_lease"):
            lease_id = next(self._lease_ids)
            self._leases[lease_id] = _Lease(ttl, self._clock() + ttl)
            return lease_id

    def keepalive(self, lease_id: int) -> int:
        with self._enter("keepalive"):
            lease = self._leases.get(lease_id)
            if lease is None:
                raise LeaseExpired(lease_id)
            lease.expires_at = self._clock() + lease.ttl
            return lease.ttl

    def time_to_live(self, lease_id: int) -> int:
        with self._enter("time_to_live"):
            lease = self._leases.get(lease_id)
            if lease is None:
                return -1
            return max(0, round(lease.expires_at - self._clock()))

    def revoke(self, lease_id: int) -> None:
        with self._enter("revoke"):
            if lease_id in self._leases:
                self._end_lease(lease_id)
                self._changed.notify_all()

    def watch_prefix(self, prefix: str, start_revision: int, stop: threading.Event) -> Iterator[WatchEvent]:
        with self._enter("watch_prefix"):
            position = max(start_revision, 1)
        while not stop.is_set():
            with self._lock:
                if not self._available:
                    raise KVUnavailable("memory KV is unavailable (set_available(False))")
                if self._closed:
                    return
                self._expire()
                if position < self._compacted:
                    raise Compacted(self._compacted)
                ready = [e for e in self._events if e.kv.mod_revision >= position and e.kv.key.startswith(prefix)]
                if not ready:
                    position = max(position, self._revision + 1)
                    # Wake up for changes, and now and then for stop or a real clock's expiries.
                    self._changed.wait(0.05)
                    continue
            for event in ready:
                if stop.is_set():
                    return
                position = event.kv.mod_revision + 1
                yield event

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    # -- internals (lock held) ----------------------------------------------------------

    @contextmanager
    def _enter(self, name: str) -> Iterator[None]:
        """Hold the lock for one operation: count it, refuse it when unavailable or closed, expire leases."""
        with self._lock:
            self.calls[name] += 1
            if not self._available:
                raise KVUnavailable(f"memory KV is unavailable (set_available(False)) during {name}")
            if self._closed:
                raise KVUnavailable(f"memory KV is closed ({name})")
            self._expire()
            yield

    def _put(self, put: Put) -> None:
        old = self._data.get(put.key)
        if old is not None and old.lease and old.lease in self._leases:
            self._leases[old.lease].keys.discard(put.key)
        kv = KeyValue(
            key=put.key,
            value=put.value,
            mod_revision=self._revision,
            create_revision=old.create_revision if old else self._revision,
            lease=put.lease,
        )
        self._data[put.key] = kv
        if put.lease:
            self._leases[put.lease].keys.add(put.key)
        self._events.append(WatchEvent("put", kv))

    def _remove(self, key: str) -> None:
        old = self._data.pop(key, None)
        if old is None:
            return
        if old.lease and old.lease in self._leases:
            self._leases[old.lease].keys.discard(key)
        self._events.append(WatchEvent("delete", KeyValue(key, b"", self._revision, 0)))

    def _end_lease(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id)
        live = sorted(k for k in lease.keys if k in self._data)
        if live:
            self._revision += 1  # etcd deletes a lease's keys in one revision
            for key in live:
                self._remove(key)

    def _expire(self) -> None:
        now = self._clock()
        expired = sorted((lease.expires_at, lid) for lid, lease in self._leases.items() if lease.expires_at <= now)
        for _, lease_id in expired:
            self._end_lease(lease_id)
        if expired:
            self._changed.notify_all()

