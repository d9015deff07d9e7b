"""The lease watcher: snapshots and watch events in, ``added`` / ``removed`` lease events out.

Pure, as in Flannel: ``LeaseWatcher`` remembers the leases it has
reported. ``apply_snapshot(leases)`` diffs a full listing against them, so
a watcher that fell behind (a compacted revision, a long outage) catches
up with one listing; ``apply_events(events)`` turns KV watch events into
lease events. Both are idempotent: an event at or before the revision of
the lease it touches is a replay and is dropped, and a delete of a key the
watcher never reported yields nothing.

A changed lease (same subnet, new public IP or backend data, e.g. a node
that came back with another address) is reported as ``removed`` with the
old lease, then ``added`` with the new one, so a consumer only ever needs
"program routes for this lease" and "remove them". A renewal or takeover
that changes nothing a peer programs yields nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pycni.cluster.kv import WatchEvent
from pycni.cluster.lease import DEFAULT_PREFIX, Lease, decode_lease, normalize_prefix

__all__ = ["LeaseEvent", "LeaseWatcher"]


@dataclass(frozen=True)
class LeaseEvent:
    type: Literal["added", "removed"]
    lease: Lease


class LeaseWatcher:
    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self._subnets_prefix = normalize_prefix(prefix) + "/subnets/"
        self._known: dict[str, Lease] = {}
        self.malformed: list[str] = []  # why keys were skipped, newest last (for logs)

    @property
    def known(self) -> Mapping[str, Lease]:
        """The leases reported and not yet removed, by key."""
        return self._known

    @property
    def leases(self) -> list[Lease]:
        return sorted(self._known.values(), key=lambda lease: lease.subnet)

    def apply_snapshot(self, leases: Iterable[Lease]) -> list[LeaseEvent]:
        """Everything that changed between what was known and ``leases`` (a complete listing)."""
        current = {lease.key: lease for lease in leases}
        events = [
            LeaseEvent("removed", old)
            for key, old in sorted(self._known.items())
            if key not in current or not current[key].same_endpoint(old)
        ]
        events += [
            LeaseEvent("added", new)
            for key, new in sorted(current.items())
            if key not in self._known or not self._known[key].same_endpoint(new)
        ]
        self._known = current
        return events

    def apply_events(self, events: Iterable[WatchEvent]) -> list[LeaseEvent]:
        out: list[LeaseEvent] = []
        for event in events:
            key = event.kv.key
            if not key.startswith(self._subnets_prefix):
                continue
            old = self._known.get(key)
            if old is not None and event.kv.mod_revision <= old.mod_revision:
                continue  # a replay of what the snapshot or an earlier event already said
            if event.type == "delete":
                if old is not None:
                    del self._known[key]
                    out.append(LeaseEvent("removed", old))
                continue
            try:
                new = decode_lease(event.kv)
            except ValueError as exc:
                self.malformed = [*self.malformed[-99:], str(exc)]
                if old is not None:  # whatever it was, peers cannot use it any more
                    del self._known[key]
                    out.append(LeaseEvent("removed", old))
                continue
            self._known[key] = new
            if old is None:
                out.append(LeaseEvent("added", new))
            elif not old.same_endpoint(new):
                out += [LeaseEvent("removed", old), LeaseEvent("added", new)]
        return out
