"""What every backend shares: the underlay, peers, the desired kernel state and its diff (pure).

A backend turns "my lease + the peers' leases" into a ``Desired`` set of
kernel entries (routes, FDB entries, neighbours) and reconciles the kernel
to it: what is missing is installed, what is ours but unwanted is removed.
Routes are ours when they carry ``pycni.cluster.owned_routes.ROUTE_PROTO``;
FDB and neighbour entries are ours when they sit on the VXLAN device, which
only the agent uses. The planning half is pure (``plan``) so it is tested
without root; ``Backend.converge`` is the kernel half. In an IPv6-only
cluster peers and the underlay have no IPv4 side (``subnet``, ``public_ip``,
``ip`` None): backends plan and program only their IPv6 plane.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, Protocol

__all__ = [
    "Backend",
    "Changes",
    "Desired",
    "Peer",
    "RouteSpec",
    "Underlay",
    "diff",
]


@dataclass(frozen=True)
class Underlay:
    """The node's address on the network between nodes, and the device it sits on."""

    iface: str
    ip: IPv4Address | None  # None: an IPv6-only node (its address is ``ipv6``)
    mtu: int
    networks: tuple[IPv4Network, ...]  # directly connected IPv4 subnets of ``iface``
    ipv6: IPv6Address | None = None  # the node's global IPv6 address on ``iface`` (dual stack)
    networks6: tuple[IPv6Network, ...] = ()  # directly connected IPv6 subnets of ``iface``


@dataclass(frozen=True)
class Peer:
    """What a backend needs of one node's lease (its own node included)."""

    node: str
    subnet: IPv4Network | None  # None (and public_ip None) in an IPv6-only cluster: only the ipv6 fields are set
    public_ip: IPv4Address | None
    backend_type: str
    backend_data: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    ipv6_subnet: IPv6Network | None = None  # dual stack: the lease's IPv6 side
    public_ipv6: IPv6Address | None = None
    backend_v6_data: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True, order=True)
class RouteSpec:
    dst: IPv4Network | IPv6Network
    gw: IPv4Address | IPv6Address
    dev: str
    onlink: bool = False


@dataclass(frozen=True)
class Desired:
    """The kernel state a backend wants: sets of entries, plus peers it had to refuse and why."""

    routes: frozenset[RouteSpec] = frozenset()
    fdb: frozenset[tuple[str, IPv4Address | IPv6Address]] = frozenset()  # (VTEP MAC, peer underlay IP)
    neighbours: frozenset[tuple[IPv4Address | IPv6Address, str]] = frozenset()  # (peer VTEP IP, VTEP MAC)
    refused: tuple[str, ...] = ()


@dataclass(frozen=True)
class Changes:
    """What a converge did (counts feed the metrics, the lists the log)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed


def diff(desired: Iterable[Any], actual: Iterable[Any]) -> tuple[list[Any], list[Any]]:
    """(to add, to remove): desired minus actual, actual minus desired, each sorted for stable logs."""
    want, have = set(desired), set(actual)
    return sorted(want - have, key=str), sorted(have - want, key=str)


class Backend(Protocol):
    """The contract of a backend (``vxlan``, ``host-gw``)."""

    type: str

    def pod_mtu(self) -> int:
        """The MTU pods get (underlay MTU minus encapsulation)."""
        ...

    def backend_data(self) -> dict[str, Any]:
        """What peers need to reach this node, published in its lease."""
        ...

    def plan(self, own: Peer, peers: Iterable[Peer]) -> Desired:
        """Pure: the kernel state wanted for ``peers`` (own node skipped)."""
        ...

    def converge(self, own: Peer, desired: Desired) -> Changes:
        """Make the kernel hold exactly ``desired`` of what the backend owns."""
        ...

    def teardown(self) -> None:
        """Remove everything the backend made (``--cleanup``; never on a plain restart)."""
        ...
