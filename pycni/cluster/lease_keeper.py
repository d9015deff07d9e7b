"""Hold the node's subnet lease: acquire it, renew it well before its TTL, take it again if lost.

``LeaseKeeper.run(stop)`` is a thread body. It renews every ``ttl / 3``
seconds; while the datastore is unreachable it retries every second or so
and keeps the last lease it had (the kernel state built on it stays). A
renewal refused for another reason (the lease expired during a long
outage, someone removed it) is followed by a fresh ``acquire``, which gives
a node back its previous subnet when that is still free. Every acquire asks
for ``prefer()`` first (the subnet the node's pods are addressed in, read
from the subnet.env it wrote: docs/DESIGN.md "A node that loses its
lease"), so a node whose record the store lost still gets its subnet back.
Every lease taken or changed is handed to ``on_lease``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any

from pycni.cluster.agent_metrics import AgentMetrics

if TYPE_CHECKING:
    from pycni.cluster.lease import Lease, V6Attrs
    from pycni.cluster.subnets import SubnetManager

__all__ = ["LeaseKeeper"]

log = logging.getLogger("pycni.agent")


class LeaseKeeper:
    def __init__(self, manager: SubnetManager, node: str, public_ip: IPv4Address | IPv6Address,
                 backend_data: dict[str, Any], *, ttl: float, on_lease: Callable[[Lease], None], metrics: AgentMetrics,
                 prefer: Callable[[], IPv4Network | IPv6Network | None] = lambda: None,
                 v6: V6Attrs | None = None) -> None:
        self.manager = manager
        self.node = node
        self.public_ip = public_ip
        self.backend_data = backend_data
        self.renew_every = max(ttl / 3, 0.5)
        self.on_lease = on_lease
        self.metrics = metrics
        self.prefer = prefer
        self.v6 = v6  # dual stack: the IPv6 side's underlay address and backend data
        self.lease: Lease | None = None
        self.acquired = threading.Event()

    def step(self) -> float:
        """One acquire or renew; returns how long to wait before the next."""
        from pycni.cluster.kv import KVUnavailable

        try:
            if self.lease is None:
                lease = self.manager.acquire(self.node, self.public_ip, self.backend_data, prefer=self.prefer(),
                                             v6=self.v6)
                self.metrics.inc("pycni_agent_lease_acquisitions_total")
                log.info("lease acquired: %s -> %s (public ip %s)", self.node, lease.subnet, lease.public_ip)
            else:
                lease = self.manager.renew(self.lease)
                self.metrics.inc("pycni_agent_lease_renewals_total")
        except KVUnavailable as exc:
            self.metrics.inc("pycni_agent_datastore_errors_total", component="lease")
            log.warning("datastore unavailable, lease kept and retried: %s", exc)
            return 1.0
        except Exception as exc:
            self.metrics.inc("pycni_agent_datastore_errors_total", component="lease")
            if self.lease is not None:
                log.warning("lease renewal refused (%s); acquiring again", exc)
                self.lease = None
                return 0.2
            log.error("failed to acquire a subnet lease: %s", exc)
            return 2.0
        changed = self.lease is None or self.lease.subnet != lease.subnet or self.lease.public_ip != lease.public_ip
        self.lease = lease
        self.metrics.set("pycni_agent_lease_valid", 1)
        if changed:
            self.on_lease(lease)
        self.acquired.set()
        return self.renew_every

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            stop.wait(self.step())
