"""The bgp backend: plain routing, pod subnets announced over BGP by bird2, nothing encapsulated.

- ``plan`` (pure): the node's sessions (bgp_sessions) and its bird.conf
  text (bgp_render), carried in ``BgpDesired``; no route of the agent's own.
- ``converge``: removes any route the agent tagged ``proto 124`` (left from
  another backend), then has the supervisor (bgp_bird) run bird with that
  config: start it, restart it if it died, or ``configure`` it when the
  leases changed.

Who owns which routes: bird installs the routes it learns, as ``proto bird``
(12), and removes them; the agent never touches those. The agent's routes
are ``proto 124`` and bird never touches them (its kernel protocol runs
``learn off``). The node's own subnet is on its bridge, as with every backend.

Pod MTU = underlay MTU (no encapsulation), unless the cluster config sets one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from pycni.cluster.backends.base import Changes, Desired, Peer, Underlay
from pycni.cluster.backends.bgp_bird import BirdPaths, BirdSupervisor
from pycni.cluster.backends.bgp_config import BgpSettings
from pycni.cluster.backends.bgp_render import BirdSpec, render_bird_config
from pycni.cluster.backends.bgp_sessions import TYPE, plan_sessions

__all__ = ["BIRD_ROUTE_PROTO", "BgpBackend", "BgpDesired"]

#: The route protocol bird gives the routes it installs (``proto bird`` in /etc/iproute2/rt_protos).
BIRD_ROUTE_PROTO = 12


@dataclass(frozen=True)
class BgpDesired(Desired):
    """Desired plus what bird should run."""

    bird_config: str = ""


class BgpBackend:
    type = TYPE

    def __init__(self, underlay: Underlay, node: str, *, settings: BgpSettings, network: IPv4Network,
                 run_dir: str, mtu: int | None = None, supervisor: BirdSupervisor | None = None) -> None:
        self.underlay = underlay
        self.node = node
        self.settings = settings
        self.network = network
        self.paths = BirdPaths.under(run_dir)
        self.bird = supervisor or BirdSupervisor(self.paths)
        self._mtu = mtu

    def pod_mtu(self) -> int:
        return self._mtu or self.underlay.mtu

    def backend_data(self) -> dict[str, Any]:
        return {"ASN": self.settings.asn}

    def spec(self, own: Peer, peers: Iterable[Peer]) -> tuple[BirdSpec, tuple[str, ...]]:
        sessions, refused = plan_sessions(own, peers, self.settings, self.underlay)
        assert self.underlay.ip is not None and own.subnet is not None  # the agent refuses IPv6-only on bgp
        spec = BirdSpec(node=own.node, router_id=self.underlay.ip, iface=self.underlay.iface,
                        asn=self.settings.asn, subnet=own.subnet, network=self.network, sessions=sessions,
                        log_file=self.paths.log)
        return spec, refused

    def plan(self, own: Peer, peers: Iterable[Peer]) -> BgpDesired:
        spec, refused = self.spec(own, peers)
        return BgpDesired(refused=refused, bird_config=render_bird_config(spec))

    def converge(self, own: Peer, desired: Desired) -> Changes:
        from pycni.cluster.backends.kernel import converge_routes
        from pycni.net.sysctl import enable_ip_forward

        if not isinstance(desired, BgpDesired) or not desired.bird_config:
            raise TypeError("the bgp backend converges only to its own plan (BgpDesired)")
        enable_ip_forward(4)
        _, removed = converge_routes(Desired())  # leftovers of another backend: bird routes these subnets now
        added = self.bird.apply(desired.bird_config)
        return Changes(tuple(added), tuple(removed))

    def leave(self) -> None:
        """The node leaves the cluster: withdraw its subnet everywhere first, then stop bird."""
        self.bird.leave()

    def teardown(self) -> None:
        from pycni.cluster import owned_routes

        self.bird.leave()
        for route in owned_routes.list_owned_routes(proto=BIRD_ROUTE_PROTO):
            owned_routes.delete_owned_route(route)
