"""The narrow, revisioned key-value seam the cluster code stands on.

Everything above this module (subnet leases, the lease watcher, the
agent) sees etcd only through ``KV``: a handful of operations with etcd's
semantics, so an in-memory fake (``pycni.testing.kv.MemoryKV``) and
the real client (``pycni.cluster.etcd.EtcdKV``) are interchangeable.

Semantics both implementations keep:

- Every write bumps one store-wide revision; ``KeyValue.mod_revision`` is
  the revision of the key's last write, ``create_revision`` of its
  creation. ``list_prefix`` returns the store revision it read at, so a
  watch from ``revision + 1`` misses nothing and repeats nothing.
- ``txn`` is the one atomic primitive: every check ``(key, revision)``
  must hold (revision 0 means "absent", otherwise the key's current
  ``mod_revision``), then all puts and deletes apply at one new revision;
  otherwise nothing happens and it returns 0. ``create``, ``update``
  and ``delete`` are the one-key cases.
- Leases expire on the server's clock; keys attached to one are deleted
  (with delete events) when it expires or is revoked. ``keepalive``
  returns the remaining TTL or raises ``LeaseExpired``.
- ``watch_prefix`` yields events from ``start_revision`` (inclusive) in
  revision order until ``stop`` is set. It rides out short outages itself
  and raises ``KVUnavailable`` after its deadline, or ``Compacted`` when
  the history it needs is gone; the caller then re-lists.
- Failures to reach the store are ``KVUnavailable`` (after retries);
  nothing else of a client library escapes. Every error of the seam is a
  ``KVError``: ``KVUnavailable``, ``Compacted``, ``LeaseExpired``, or a
  plain ``KVError`` for anything else the store refused.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from pycni.spec.errors import CniError, TryAgainLater

__all__ = [
    "KV",
    "Compacted",
    "KVError",
    "KVUnavailable",
    "KeyValue",
    "LeaseExpired",
    "Put",
    "WatchEvent",
    "prefix_end",
]


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int = 0


@dataclass(frozen=True)
class WatchEvent:
    """One change. A delete carries the key and the deleting revision (value empty)."""

    type: Literal["put", "delete"]
    kv: KeyValue


@dataclass(frozen=True)
class Put:
    """One write inside a ``txn``."""

    key: str
    value: bytes
    lease: int = 0


class KVError(CniError):
    """The store refused or failed an operation."""


class KVUnavailable(KVError, TryAgainLater):
    """The store could not be reached (after retries and failover)."""

    code = TryAgainLater.code


class Compacted(KVError):
    """The revision a watch asked for was compacted away; re-list and watch from the new revision."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"revision compacted; the oldest revision still available is {revision}")
        self.revision = revision


class LeaseExpired(KVError):
    """The lease does not exist any more (expired or revoked)."""

    def __init__(self, lease_id: int) -> None:
        super().__init__(f"lease {lease_id:x} has expired or was revoked")
        self.lease_id = lease_id


@runtime_checkable
class KV(Protocol):
    def get(self, key: str) -> KeyValue | None: ...

    def list_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Keys under ``prefix`` in key order, and the store revision of the read."""
        ...

    def list_prefixes(self, prefixes: Sequence[str], *, concurrently: bool = False) -> tuple[list[list[KeyValue]], int]:
        """``list_prefix`` of each of ``prefixes``, all read at one store revision (which it returns).

        ``concurrently``: for large prefixes, one request each, all at once (the store may build the
        answers in parallel) instead of one transaction; the same result.
        """
        ...

    def txn(self, checks: Sequence[tuple[str, int]], puts: Sequence[Put] = (), deletes: Sequence[str] = ()) -> int:
        """Atomically: if every ``(key, mod_revision)`` check holds (0 = absent), apply puts and deletes.

        Returns the store revision after the transaction, or 0 when a check failed (nothing written).
        A put on a lease that is gone raises ``LeaseExpired``.
        """
        ...

    def create(self, key: str, value: bytes, lease: int = 0) -> bool:
        """Write ``key`` only if it is absent."""
        ...

    def update(self, key: str, value: bytes, mod_revision: int, lease: int = 0) -> bool:
        """Write ``key`` only if its mod_revision is still ``mod_revision``."""
        ...

    def delete(self, key: str, mod_revision: int | None = None) -> bool:
        """Delete ``key`` (only at ``mod_revision`` if given); False if it was absent or changed."""
        ...

    def grant_lease(self, ttl: int) -> int: ...

    def keepalive(self, lease_id: int) -> int:
        """Refresh the lease; its TTL in seconds, or ``LeaseExpired``."""
        ...

    def time_to_live(self, lease_id: int) -> int:
        """Seconds the lease has left without refreshing it; -1 when it is gone."""
        ...

    def revoke(self, lease_id: int) -> None:
        """End the lease now (deleting its keys); a lease that is already gone is fine."""
        ...

    def watch_prefix(self, prefix: str, start_revision: int, stop: threading.Event) -> Iterator[WatchEvent]: ...

    def close(self) -> None: ...


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key starting with ``prefix`` (etcd's range_end for a prefix)."""
    data = bytearray(prefix)
    while data:
        if data[-1] < 0xFF:
            data[-1] += 1
            return bytes(data)
        data.pop()
    return b"\0"
