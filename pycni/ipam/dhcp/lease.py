"""A lease's life as a state machine over a clock (RFC 2131 4.4.5): values in, the next step out.

Contract:

- ``Lease`` is what the daemon keeps of one attachment: who asked (client
  id, netns, ifname), the options it sends, the grant and the wall-clock
  time it was bound (``bound_at``, seconds since the epoch: it is written to
  disk and must mean the same after a restart).
- ``phase(lease, now)``: BOUND before T1, RENEWING from T1, REBINDING from
  T2, EXPIRED from the lease's end.
- ``next_step(lease, now, tried)`` is what the keeper does now: ``wait``
  until a time, ``renew`` (unicast to the server that granted it), ``rebind``
  (broadcast) or ``reacquire`` (the lease is gone: start over). ``tried`` is
  when the last renew/rebind attempt of the current phase went unanswered
  (None if none did): the retry waits half the time left to the phase's end
  but at least ``MIN_RETRY`` seconds (RFC 2131 says 60; short test leases
  need less), never past that end.
- ``renewed(lease, grant, now)`` is the lease after an ACK.

No I/O and no clock of its own: tests drive it with any ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any, Literal

from pycni.ipam.dhcp.options import Grant, OptionPlan
from pycni.spec.result import Route

__all__ = ["MIN_RETRY", "Lease", "Phase", "Step", "next_step", "phase", "renewed"]

MIN_RETRY = 4.0  # seconds between unanswered renew/rebind attempts, at least


class Phase(Enum):
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Lease:
    client_id: bytes
    container_id: str
    network: str
    netns: str
    ifname: str
    options: OptionPlan
    grant: Grant
    bound_at: float
    server_mac: bytes  # where unicasts to the server go on the link (learnt from its replies)
    broadcast: bool = False  # ask the server to broadcast its replies

    @property
    def renew_at(self) -> float:
        return self.bound_at + self.grant.renew_after

    @property
    def rebind_at(self) -> float:
        return self.bound_at + self.grant.rebind_after

    @property
    def expires_at(self) -> float:
        return self.bound_at + self.grant.lease_time

    def to_json(self) -> dict[str, Any]:
        g = self.grant
        return {
            "clientID": self.client_id.hex(),
            "containerID": self.container_id,
            "network": self.network,
            "netns": self.netns,
            "ifname": self.ifname,
            "options": self.options.to_json(),
            "address": str(g.address),
            "serverID": str(g.server_id),
            "gateway": str(g.gateway) if g.gateway else None,
            "routes": [[str(r.dst), str(r.gw) if r.gw else None] for r in g.routes],
            "leaseTime": g.lease_time,
            "renewAfter": g.renew_after,
            "rebindAfter": g.rebind_after,
            "boundAt": self.bound_at,
            "serverMAC": self.server_mac.hex(),
            "broadcast": self.broadcast,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lease:
        """The lease ``to_json`` wrote; KeyError/ValueError/TypeError when the data is not one."""
        routes = tuple(Route(dst=IPv4Network(dst), gw=IPv4Address(gw) if gw else None) for dst, gw in data["routes"])
        grant = Grant(
            address=IPv4Interface(data["address"]),
            server_id=IPv4Address(data["serverID"]),
            gateway=IPv4Address(data["gateway"]) if data["gateway"] else None,
            routes=routes,
            lease_time=float(data["leaseTime"]),
            renew_after=float(data["renewAfter"]),
            rebind_after=float(data["rebindAfter"]),
        )
        return cls(
            client_id=bytes.fromhex(data["clientID"]),
            container_id=str(data["containerID"]),
            network=str(data["network"]),
            netns=str(data["netns"]),
            ifname=str(data["ifname"]),
            options=OptionPlan.from_json(data["options"]),
            grant=grant,
            bound_at=float(data["boundAt"]),
            server_mac=bytes.fromhex(data["serverMAC"]),
            broadcast=bool(data.get("broadcast", False)),
        )


@dataclass(frozen=True)
class Step:
    action: Literal["wait", "renew", "rebind", "reacquire"]
    until: float  # for "wait": when to look again; otherwise the end of the phase the attempt belongs to


def phase(lease: Lease, now: float) -> Phase:
    if now >= lease.expires_at:
        return Phase.EXPIRED
    if now >= lease.rebind_at:
        return Phase.REBINDING
    if now >= lease.renew_at:
        return Phase.RENEWING
    return Phase.BOUND


def next_step(lease: Lease, now: float, tried: float | None = None) -> Step:
    """What to do at ``now``; ``tried`` is when the last unanswered attempt of this phase was made."""
    current = phase(lease, now)
    if current is Phase.BOUND:
        return Step("wait", lease.renew_at)
    if current is Phase.EXPIRED:
        if tried is not None and tried >= lease.expires_at and now < tried + MIN_RETRY:
            return Step("wait", tried + MIN_RETRY)  # the last acquisition failed: not again at once
        return Step("reacquire", now)
    end = lease.rebind_at if current is Phase.RENEWING else lease.expires_at
    action: Literal["renew", "rebind"] = "renew" if current is Phase.RENEWING else "rebind"
    if tried is None or tried < (lease.renew_at if current is Phase.RENEWING else lease.rebind_at):
        return Step(action, end)  # no attempt yet in this phase
    retry_at = min(tried + max((end - tried) / 2, MIN_RETRY), end)
    if now >= retry_at:
        return Step(action, end)
    return Step("wait", retry_at)


def renewed(lease: Lease, grant: Grant, now: float, server_mac: bytes | None = None) -> Lease:
    """The lease after an ACK that arrived at ``now``."""
    return replace(lease, grant=grant, bound_at=now, server_mac=server_mac or lease.server_mac)
