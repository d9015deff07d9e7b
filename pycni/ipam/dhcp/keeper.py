"""One lease kept alive: a thread that renews at T1, rebinds at T2 and starts over when the lease ran out.

Contract:

- ``acquire_lease`` runs DISCOVER..ACK on the pod's interface and returns
  the bound ``Lease``; ``release_lease`` sends DHCPRELEASE. Both open the
  link for the exchange only (``LinkOpener``, the seam tests replace).
- A ``Keeper`` follows ``lease.next_step`` with the clock it is given,
  saving every renewed lease to the store. A NAK drops straight to a new
  acquisition. When the pod's netns is gone (a pod removed without DEL),
  the keeper forgets the lease and ends.
- ``wake()`` makes it look at the timers again at once. ``stop()`` wakes
  it and waits for it to end; an exchange already under way finishes
  first (at most the client timeout). It never releases: the daemon
  releases after stopping, and a daemon shutting down keeps its leases on
  disk for the next one to resume.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from pycni.ipam.dhcp.client import Client, DhcpError, Link, Refused, Timing
from pycni.ipam.dhcp.conf import LeaseRequest
from pycni.ipam.dhcp.lease import Lease, Step, next_step, renewed
from pycni.ipam.dhcp.link import LinkUnavailable, open_link
from pycni.ipam.dhcp.options import describe_client, grant
from pycni.ipam.dhcp.store import LeaseStore

__all__ = ["Keeper", "LinkOpener", "acquire_lease", "release_lease"]

log = logging.getLogger("pycni.dhcp")


LinkOpener = Callable[[str, str], AbstractContextManager[Link]]  # (netns, ifname) -> an open link


def _client(
    link: Link,
    lease_options: LeaseRequest | Lease,
    broadcast: bool,
    timing: Timing,
    monotonic: Callable[[], float] = time.monotonic,
) -> Client:
    return Client(link, lease_options.options, broadcast=broadcast, timing=timing, monotonic=monotonic)


def acquire_lease(
    request: LeaseRequest,
    *,
    broadcast: bool,
    timing: Timing,
    opener: LinkOpener = open_link,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> Lease:
    """A new lease for ``request`` (DhcpError, LinkUnavailable or ValueError for a bad ACK when none)."""
    with opener(request.netns, request.ifname) as link:
        reply = _client(link, request, broadcast, timing, monotonic).acquire()
    return Lease(
        client_id=request.client_id,
        container_id=request.container_id,
        network=request.network,
        netns=request.netns,
        ifname=request.ifname,
        options=request.options,
        grant=grant(reply.message),
        bound_at=clock(),
        server_mac=reply.server_mac,
        broadcast=broadcast,
    )


def release_lease(lease: Lease, *, timing: Timing, opener: LinkOpener = open_link) -> None:
    """Send DHCPRELEASE for ``lease`` on its interface (LinkUnavailable when the interface is gone)."""
    with opener(lease.netns, lease.ifname) as link:
        _client(link, lease, lease.broadcast, timing).release(
            lease.grant.address.ip, lease.grant.server_id, lease.server_mac
        )


class Keeper:
    """The thread that keeps one lease; ``lease`` is its current state."""

    def __init__(
        self,
        lease: Lease,
        store: LeaseStore,
        *,
        timing: Timing,
        opener: LinkOpener = open_link,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        netns_exists: Callable[[str], bool] = os.path.exists,
    ) -> None:
        self.lease = lease
        self._monotonic = monotonic
        self._store = store
        self._timing = timing
        self._opener = opener
        self._clock = clock
        self._netns_exists = netns_exists
        self._stopping = threading.Event()
        self._woken = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pycni-dhcp-keeper", daemon=True)
        self.ended = threading.Event()  # set when the thread ends on its own (netns gone) or after stop

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look at the lease's timers again now (after a clock change, or to retry at once)."""
        self._woken.set()

    def stop(self) -> None:
        self._stopping.set()
        self._woken.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    @property
    def name(self) -> str:
        return describe_client(self.lease.client_id)

    def _run(self) -> None:
        try:
            self._keep()
        except Exception:  # a keeper must never die silently: the lease would lapse unnoticed
            log.exception("%s: lease keeper failed", self.name)
        finally:
            self.ended.set()

    def _keep(self) -> None:
        tried: float | None = None
        while not self._stopping.is_set():
            step = next_step(self.lease, self._clock(), tried)
            if step.action == "wait":
                self._woken.wait(max(step.until - self._clock(), 0.0))
                self._woken.clear()
                continue
            if not self._netns_exists(self.lease.netns):
                log.warning("%s: netns %s is gone; forgetting the lease", self.name, self.lease.netns)
                self._store.remove(self.lease.client_id)
                return
            try:
                self._attempt(step)
                tried = None
            except (DhcpError, LinkUnavailable, OSError, ValueError) as exc:
                tried = self._clock()
                log.warning("%s: %s failed: %s", self.name, step.action, exc)

    def _attempt(self, step: Step) -> None:
        lease = self.lease
        with self._opener(lease.netns, lease.ifname) as link:
            client = _client(link, lease, lease.broadcast, self._timing, self._monotonic)
            address = lease.grant.address.ip
            try:
                if step.action == "renew":
                    reply = client.renew(address, lease.grant.server_id, lease.server_mac)
                elif step.action == "rebind":
                    reply = client.rebind(address)
                else:
                    reply = client.acquire()
            except Refused:
                if step.action == "reacquire":
                    raise
                log.warning("%s: the server refused to extend the lease; acquiring a new one", self.name)
                reply = client.acquire()
        new = grant(reply.message)
        if new.address != lease.grant.address:
            log.warning("%s: the server moved the lease from %s to %s", self.name, lease.grant.address, new.address)
        self.lease = renewed(lease, new, self._clock(), reply.server_mac)
        self._store.save(self.lease)
        log.info("%s: lease %s %s, expires in %gs", self.name, new.address, step.action, new.lease_time)
