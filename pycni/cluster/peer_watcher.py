"""Follow every node's lease: a snapshot, then the lease watch from that snapshot.

``PeerWatcher.run(stop)`` is a thread body. It lists the leases, hands the
whole set to ``on_peers`` (node name -> lease), then applies the events of
``watch_loop.watch_leases`` as they come and hands the new set over after
each. The watch rides out datastore outages, restarts and compaction itself
(a missed event is just a difference between two snapshots); anything else
that breaks the loop, and a first listing that fails, is retried with
retry.py's helper, listing again after ``retry_delay``. The last known set
is kept while the datastore is unreachable, so the kernel state built on it
stays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pycni.cluster.agent_metrics import AgentMetrics
from pycni.cluster.retry import Backoff, retry_until_stopped
from pycni.cluster.watch_loop import watch_leases

if TYPE_CHECKING:
    from pycni.cluster.lease import Lease
    from pycni.cluster.subnets import SubnetManager

__all__ = ["PeerWatcher"]

log = logging.getLogger("pycni.agent")

Peers = dict[str, "Lease"]


def describe_changes(old: Peers, new: Peers) -> list[str]:
    """Human-readable differences between two peer sets (for the log)."""
    out = []
    for node in sorted(new.keys() - old.keys()):
        out.append(f"peer {node} appeared: {new[node].subnet} at {new[node].public_ip}")
    for node in sorted(old.keys() - new.keys()):
        out.append(f"peer {node} left: {old[node].subnet}")
    for node in sorted(old.keys() & new.keys()):
        a, b = old[node], new[node]
        if (a.subnet, a.public_ip, dict(a.backend_data)) != (b.subnet, b.public_ip, dict(b.backend_data)):
            out.append(f"peer {node} changed: {a.subnet} at {a.public_ip} -> {b.subnet} at {b.public_ip}")
    return out


class PeerWatcher:
    def __init__(self, manager: SubnetManager, *, on_peers: Callable[[Peers], None], metrics: AgentMetrics,
                 retry_delay: float = 1.0) -> None:
        self.manager = manager
        self.on_peers = on_peers
        self.metrics = metrics
        self.retry_delay = retry_delay
        self.peers: Peers = {}
        self.synced = threading.Event()

    def _publish(self, peers: Peers) -> None:
        for line in describe_changes(self.peers, peers):
            log.info("%s", line)
        self.peers = peers
        self.metrics.set("pycni_agent_peers", len(peers))
        self.on_peers(dict(peers))

    def sync_once(self, stop: threading.Event) -> None:
        """One snapshot and the watch that follows it, until the watch ends or fails."""
        leases, _ = self.manager.list_leases()
        self._publish({lease.node: lease for lease in leases})
        self.synced.set()
        for event in watch_leases(self.manager, stop, known=leases):
            peers = dict(self.peers)
            if event.type == "removed":
                current = peers.get(event.lease.node)
                if current is not None and current.key == event.lease.key:
                    del peers[event.lease.node]
            else:
                peers[event.lease.node] = event.lease
            self._publish(peers)

    def run(self, stop: threading.Event) -> None:
        def interrupted(exc: Exception, delay: float) -> None:
            if not stop.is_set():
                self.metrics.inc("pycni_agent_datastore_errors_total", component="watch")
                log.warning("lease watch interrupted, listing again: %s", exc)

        # sync_once returns only once stop is set: the lease watch runs until then
        retry_until_stopped(lambda: self.sync_once(stop), stop, Backoff(self.retry_delay, self.retry_delay),
                            on_error=interrupted)
