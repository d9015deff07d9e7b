"""Routes tagged with pycni's own route protocol number, in the calling thread's netns.

Contract:

- ``ROUTE_PROTO`` (124, ``proto 124`` in ``ip route``) marks every route the
  cluster agent installs. What carries it is the agent's; nothing else is.
  A restarted agent lists them with ``list_owned_routes`` and sweeps those it
  no longer wants without touching anyone else's routes.
- ``replace_owned_route`` installs (or overwrites) ``dst via gw dev D``,
  optionally ``onlink`` (the gateway need not be on a connected subnet: the
  VXLAN backend routes via the peer's VTEP address). IPv4 or IPv6, main table.
- ``delete_owned_route`` removes exactly one route it is given; a route
  already gone is not an error.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from pycni.net.routes import RouteInfo, delete_listed_route, list_routes, replace_tagged_route

__all__ = ["ROUTE_PROTO", "delete_owned_route", "list_owned_routes", "replace_owned_route"]

#: The route protocol of the pycni cluster agent (unassigned in /etc/iproute2/rt_protos).
ROUTE_PROTO = 124


def list_owned_routes(proto: int = ROUTE_PROTO) -> list[RouteInfo]:
    """Every IPv4 and IPv6 route of the main table carrying ``proto``."""
    return [r for r in list_routes(family=4) + list_routes(family=6) if r.protocol == proto]


def replace_owned_route(
    dst: IPv4Network | IPv6Network, *, gw: IPv4Address | IPv6Address, dev: str, onlink: bool = False,
    proto: int = ROUTE_PROTO,
) -> None:
    """Install ``dst via gw dev dev [onlink] proto <proto>``, replacing any route to ``dst`` in main."""
    replace_tagged_route(dst, gw=gw, dev=dev, proto=proto, onlink=onlink)


def delete_owned_route(route: RouteInfo) -> bool:
    """Delete one route as ``list_owned_routes`` reported it; False if it was already gone."""
    return delete_listed_route(route)
