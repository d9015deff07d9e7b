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
starts the subnet's quarantine (``SubnetManager.note_expiry``) a random 0.1-1 s later, on one
daemon thread per process (``_Later``): off the watch's path, and a little later on each node, so
the nodes don't all read at once. (A ``threading.Timer`` per removal made the watch wait for a thread
to start before passing the removal on: with 200 simulated nodes in one process, 200 thread starts
queued on the interpreter lock.)

This is the one loop that follows leases: the agent's ``PeerWatcher`` runs it, and so do the tests
and the convergence benchmark. The diffing itself is the pure ``LeaseWatcher``'s.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator

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
            _later.call(random.uniform(0.1, 1.0), manager.note_expiry, event.lease)
        yield event


class _Later:
    """Calls run a given delay from now, in order, on one daemon thread started on first use."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Callable[[Lease], None], Lease]] = []
        self._order = itertools.count()  # ties in time keep their order (and never compare callables)
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def call(self, delay: float, function: Callable[[Lease], None], lease: Lease) -> None:
        with self._changed:
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._order), function, lease))
            if self._thread is None or not self._thread.is_alive():  # (a forked child has no thread)
                self._thread = threading.Thread(target=self._run, name="pycni-lease-expiries", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._changed.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, function, lease = heapq.heappop(self._due)
            try:
                function(lease)
            except Exception:  # best effort, as note_expiry is: the thread must outlive a failed call
                log.exception("noting the expiry of %s failed", lease.subnet)


_later = _Later()
