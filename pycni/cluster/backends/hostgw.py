"""The host-gw backend: a route per peer subnet via the peer's underlay address.

Works only when every peer is on the same layer-2 segment: its underlay
address must fall in a subnet directly connected to this node's underlay
device. A peer that is not is refused with a message saying so (and no
route is installed for it); the other peers are served. Pod MTU = underlay
MTU (no encapsulation).

Dual stack: a peer whose lease carries an IPv6 subnet gets a second route,
``<its IPv6 subnet> via <its PublicIPv6>``, under the same rule (its IPv6
underlay address must be on a directly connected IPv6 subnet). IPv6-only:
that route alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pycni.cluster.backends.base import Changes, Desired, Peer, RouteSpec, Underlay
from pycni.cluster.backends.kernel import converge_routes

__all__ = ["HostGwBackend"]

TYPE = "host-gw"


class HostGwBackend:
    type = TYPE

    def __init__(self, underlay: Underlay, *, mtu: int | None = None) -> None:
        self.underlay = underlay
        self._mtu = mtu

    def pod_mtu(self) -> int:
        return self._mtu or self.underlay.mtu

    def backend_data(self) -> dict[str, Any]:
        return {}

    def plan(self, own: Peer, peers: Iterable[Peer]) -> Desired:
        routes, refused = set(), []
        for peer in peers:
            if peer.node == own.node:
                continue
            if peer.subnet is not None and peer.public_ip is not None and own.subnet is not None:
                if not any(peer.public_ip in net for net in self.underlay.networks):
                    connected = ", ".join(str(n) for n in self.underlay.networks) or "none"
                    refused.append(
                        f"host-gw cannot reach peer '{peer.node}' ({peer.subnet}): its address {peer.public_ip} is "
                        f"not on the same layer-2 segment as {self.underlay.iface} (connected: {connected}); use the "
                        f"vxlan backend"
                    )
                    continue
                routes.add(RouteSpec(dst=peer.subnet, gw=peer.public_ip, dev=self.underlay.iface))
            if peer.ipv6_subnet is not None and own.ipv6_subnet is not None:
                route6 = self._route6(peer, refused)
                if route6 is not None:
                    routes.add(route6)
        return Desired(routes=frozenset(routes), refused=tuple(refused))

    def _route6(self, peer: Peer, refused: list[str]) -> RouteSpec | None:
        assert peer.ipv6_subnet is not None
        if peer.public_ipv6 is None or not any(peer.public_ipv6 in net for net in self.underlay.networks6):
            connected = ", ".join(str(n) for n in self.underlay.networks6) or "none"
            refused.append(
                f"host-gw cannot reach peer '{peer.node}' ({peer.ipv6_subnet}) over IPv6: its address "
                f"{peer.public_ipv6 or '(none)'} is not on the same layer-2 segment as {self.underlay.iface} "
                f"(connected: {connected})"
            )
            return None
        return RouteSpec(dst=peer.ipv6_subnet, gw=peer.public_ipv6, dev=self.underlay.iface)

    def converge(self, own: Peer, desired: Desired) -> Changes:
        from pycni.net.sysctl import enable_ip_forward

        if own.subnet is not None:
            enable_ip_forward(4)
        if own.ipv6_subnet is not None:
            enable_ip_forward(6)
        added, removed = converge_routes(desired)
        return Changes(tuple(added), tuple(removed))

    def teardown(self) -> None:
        converge_routes(Desired())
