"""The lease watch: every lease under a prefix, followed until stopped, through outages and compaction.

``watch_leases(manager, stop, known=leases)`` yields ``LeaseEvent`` s (watch.py) until ``stop`` is
set. It starts from the caller's view, ``known`` (the leases the caller listed and acted on; by
default none), lists the leases and first yields what changed since (a snapshot diff), then follows
the store's watch from that listing's revision. Events are neither lost nor repeated:

- the store unreachable (``KVUnavailable``): retried with backoff (retry.py, 0.2 s doubling to 5 s,
  back to 0.2 s after every event) and resumed from the last revision seen;
- the revision compacted away (``Compacted``): listed again at once, and the listing diffed;
- the server ending the watch (any other ``KVError``): listed again after the backoff, and diffed.

A changed lease (same subnet, new public IP or backend data) comes as ``removed`` (old) then
``added`` (new). Seeing a lease removed and not replaced, it has the manager stamp the expiry that
starts the subnet's quarantine (``SubnetManager.note_expiry``) on a timer thread a random 0.1-1 s
later: off the watch's path, and a little later on each node, so the nodes don't all read at once.

This is the one loop that follows leases: the agent's ``PeerWatcher`` runs it, and so do the tests
and the convergence benchmark. The diffing itself is the pure ``LeaseWatcher``'s.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterable, Iterator

from pycni.cluster.kv import Compacted, KVError, KVUnavailable
from pycni.cluster.lease import Lease
from pycni.cluster.retry import Backoff
from pycni.cluster.subnets import SubnetManager
from pycni.cluster.watch import LeaseEvent, LeaseWatcher

__all__ = ["watch_leases"]

log = logging.getLogger("pycni.cluster")


def watch_leases(manager: SubnetManager, stop: threading.Event, *, known: Iterable[Lease] = ()) -> Iterator[LeaseEvent]:
    """Lease changes as ``added`` / ``removed`` events, from ``known`` on, until ``stop`` is set."""
    watcher = LeaseWatcher(manager.prefix)
    watcher.apply_snapshot(known)
    backoff = Backoff(0.2, 5.0)
    next_revision = 0  # 0: list first
    while not stop.is_set():
        try:
            if not next_revision:
                leases, revision = manager.list_leases()
                yield from _noticing(manager, watcher.apply_snapshot(leases), watcher)
                next_revision = revision + 1
            for event in manager.kv.watch_prefix(manager.subnets_prefix, next_revision, stop):
                next_revision = event.kv.mod_revision  # inclusive: a replay is dropped by the watcher
                yield from _noticing(manager, watcher.apply_events([event]), watcher)
                backoff.reset()
        except Compacted as exc:
            log.info("lease watch fell behind compaction (%s); re-listing", exc)
            next_revision = 0
        except KVError as exc:  # unreachable (resume from the last revision), or the server ended it
            if not isinstance(exc, KVUnavailable):
                next_revision = 0  # start over from a listing
            log.warning("lease watch: %s; retrying in %.1fs", exc, backoff.delay)
            backoff.wait(stop)


def _noticing(manager: SubnetManager, events: list[LeaseEvent], watcher: LeaseWatcher) -> Iterator[LeaseEvent]:
    for event in events:
        if event.type == "removed" and event.lease.key not in watcher.known:
            timer = threading.Timer(random.uniform(0.1, 1.0), manager.note_expiry, args=(event.lease,))
            timer.daemon = True
            timer.start()
        yield event
