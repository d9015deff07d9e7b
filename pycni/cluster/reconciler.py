"""Make the node's kernel and files match the leases: on every change, and every few seconds anyway.

``Reconciler.reconcile_once()`` writes the conflist and ``subnet.env`` when
their content changed, keeps the masquerade table in place, and asks the
backend to converge its routes / FDB / neighbours to the plan for the
current peers. Before the backend, ``stranded.LeftBehind`` takes the
gateway of a subnet the node no longer holds off the bridge and reports the
pods left on it. It does nothing before the node holds a lease and the peers
have been listed once: a restarted agent never sweeps a peer's entries just
because it has not heard of that peer yet. The periodic pass repairs what
someone deleted by hand and removes what the agent owns but no longer wants.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from typing import TYPE_CHECKING

from pycni.cluster.agent_metrics import AgentMetrics
from pycni.cluster.backends.base import Backend, Changes, Peer
from pycni.cluster.conflist import (
    CONFLIST_NAME,
    SUBNET_ENV,
    NodeNetwork,
    render_conflist,
    render_subnet_env,
    write_if_changed,
)
from pycni.cluster.stranded import LeftBehind

if TYPE_CHECKING:
    from pycni.cluster.lease import Lease

__all__ = ["NodeFiles", "Reconciler", "lease_to_peer"]

#: The longest the reconciler waits before it looks at its stop event again.
_STOP_POLL = 0.5

log = logging.getLogger("pycni.agent")


@dataclass(frozen=True)
class NodeFiles:
    conf_dir: str
    run_dir: str
    network_name: str = "pycni"
    bridge: str = "cni0"
    ipam_data_dir: str | None = None
    policy_socket: str | None = None  # NetworkPolicy on: the conflist chains netpol to this agent socket
    policy_timeout: float = 10.0


def lease_to_peer(lease: Lease) -> Peer:
    v6 = lease.v6
    subnet = lease.subnet if isinstance(lease.subnet, IPv4Network) else None  # None: an IPv6-only lease
    public_ip = lease.public_ip if isinstance(lease.public_ip, IPv4Address) else None
    return Peer(node=lease.node, subnet=subnet, public_ip=public_ip,
                backend_type=lease.backend_type, backend_data=dict(lease.backend_data),
                ipv6_subnet=v6.subnet if v6 else None, public_ipv6=v6.public_ip if v6 else None,
                backend_v6_data=dict(v6.backend_data) if v6 else {})


class Reconciler:
    def __init__(self, backend: Backend, cluster: IPv4Network | None, files: NodeFiles, metrics: AgentMetrics, *,
                 masquerade: bool = True, cluster6: IPv6Network | None = None) -> None:
        self.backend = backend
        self.cluster = cluster  # None: IPv6-only
        self.cluster6 = cluster6  # dual stack: the IPv6 pod network
        self.files = files
        self.metrics = metrics
        self.masquerade = masquerade
        self.wake = threading.Event()
        self.settle = 0.1
        self._lock = threading.Lock()
        self._own: Lease | None = None
        self._peers: dict[str, Lease] | None = None
        self._refused: tuple[str, ...] = ()
        self.left_behind = LeftBehind(bridge=files.bridge, network=files.network_name, data_dir=files.ipam_data_dir,
                                      run_dir=files.run_dir, cluster=cluster, metrics=metrics, cluster6=cluster6)

    def set_own(self, lease: Lease) -> None:
        with self._lock:
            self._own = lease
        self.wake.set()

    def set_peers(self, peers: dict[str, Lease]) -> None:
        with self._lock:
            self._peers = peers
        self.wake.set()

    def write_files(self, own: Lease) -> None:
        mtu = self.backend.pod_mtu()
        subnet = own.subnet if isinstance(own.subnet, IPv4Network) else None  # None: IPv6-only
        net = NodeNetwork(name=self.files.network_name, cluster=self.cluster, subnet=subnet, mtu=mtu,
                          bridge=self.files.bridge, ipam_data_dir=self.files.ipam_data_dir,
                          policy_socket=self.files.policy_socket, policy_timeout=self.files.policy_timeout,
                          ipv6_subnet=own.v6.subnet if own.v6 else None)
        if write_if_changed(os.path.join(self.files.conf_dir, CONFLIST_NAME), render_conflist(net)):
            log.info("wrote %s", os.path.join(self.files.conf_dir, CONFLIST_NAME))
        ipv6 = (self.cluster6, own.v6.subnet) if self.cluster6 is not None and own.v6 is not None else None
        env = render_subnet_env(self.cluster, subnet, mtu, self.backend.type, self.masquerade, ipv6=ipv6)
        write_if_changed(os.path.join(self.files.run_dir, SUBNET_ENV), env)

    def reconcile_once(self) -> Changes | None:
        with self._lock:
            own, peers = self._own, self._peers
        if own is None or peers is None:
            return None
        self.write_files(own)
        # before the backend: the old gateway's route would shadow a peer's
        self.left_behind.check(own.subnet, own.v6.subnet if own.v6 else None)
        if self.masquerade:
            from pycni.cluster.masquerade import ensure_masquerade, masquerade_in_place

            if not masquerade_in_place(self.cluster, self.cluster6):
                ensure_masquerade(self.cluster, self.cluster6)
                log.info("masquerade for pods leaving %s in place", " and ".join(
                    str(n) for n in (self.cluster, self.cluster6) if n is not None))
        me = lease_to_peer(own)
        desired = self.backend.plan(me, [lease_to_peer(p) for p in peers.values() if p.node != me.node])
        if desired.refused != self._refused:
            for message in desired.refused:
                log.error("%s", message)
            self._refused = desired.refused
        self.metrics.set("pycni_agent_refused_peers", len(desired.refused))
        changes = self.backend.converge(me, desired)
        for line in changes.added:
            log.info("added %s", line)
        for line in changes.removed:
            log.info("removed %s", line)
        if changes.added:
            self.metrics.inc("pycni_agent_kernel_changes_total", len(changes.added), action="added")
        if changes.removed:
            self.metrics.inc("pycni_agent_kernel_changes_total", len(changes.removed), action="removed")
        return changes

    def run(self, stop: threading.Event, interval: float) -> None:
        """Reconcile when woken (a lease or peer change) and at least every ``interval`` seconds."""
        due = time.monotonic() + interval
        while not stop.is_set():
            # Looked at ``stop`` at least every _STOP_POLL s: the SIGTERM handler that sets it runs on this
            # (the main) thread, and a wait of the whole interval delayed it by up to ``interval``.
            if self.wake.wait(max(0.0, min(_STOP_POLL, due - time.monotonic()))):
                # A changed lease arrives as "removed" then "added": let such a burst settle
                # rather than removing a peer's entries for a moment.
                stop.wait(self.settle)
            elif time.monotonic() < due:
                continue
            self.wake.clear()
            if stop.is_set():
                break
            due = time.monotonic() + interval
            self.metrics.inc("pycni_agent_reconciles_total")
            try:
                self.reconcile_once()
            except Exception as exc:
                self.metrics.inc("pycni_agent_reconcile_errors_total")
                log.error("reconcile failed (retried in %.0fs): %s", interval, exc)
                continue
            self.metrics.set("pycni_agent_last_reconcile_timestamp_seconds", time.time())
            self._record_status(interval)

    def _record_status(self, interval: float) -> None:
        """``<run-dir>/agent.json`` for ``pycni doctor`` (best effort: a full disk must not stop reconciling)."""
        from pycni.cluster.status_file import AgentStatus, write_status

        with self._lock:
            own = self._own
        if own is None:
            return
        try:
            write_status(self.files.run_dir, AgentStatus(
                pid=os.getpid(), node=own.node, subnet=own.subnet, backend=self.backend.type,
                pod_mtu=self.backend.pod_mtu(), last_reconcile=time.time(), resync_seconds=interval))
        except OSError as exc:
            log.warning("cannot write the status file in %s: %s", self.files.run_dir, exc)
