"""Routes tagged with pycni's own route protocol number, in the calling thread's netns.

Contract:

- ``ROUTE_PROTO`` (124, ``proto 124`` in ``ip route``) marks every route the
  cluster agent installs. What carries it is the agent's; nothing else is.
  A restarted agent lists them with ``list_owned_routes`` and sweeps those it
  no longer wants without touching anyone else's routes.
- ``replace_owned_route`` installs (or overwrites) ``dst via gw dev D``,
  optionally ``onlink`` (the gateway need not be on a connected subnet: the
  VXLAN backend routes via the peer's VTEP address). IPv4, main table.
- ``delete_owned_route`` removes exactly one route it is given; a route
  already gone is not an error.
"""

from __future__ import annotations

import errno
import socket
from ipaddress import IPv4Address, IPv4Network

from pycni.net.errors import LinkNotFound, NetError
from pycni.net.netlink.errors import failing
from pycni.net.netlink.iproute import rtnl
from pycni.net.netlink.lookup import index_of
from pycni.net.routes import RT_TABLE_MAIN, RouteInfo, list_routes

__all__ = ["ROUTE_PROTO", "delete_owned_route", "list_owned_routes", "replace_owned_route"]

#: The route protocol of the pycni cluster agent (unassigned in /etc/iproute2/rt_protos).
ROUTE_PROTO = 124
RTNH_F_ONLINK = 0x4


def list_owned_routes(proto: int = ROUTE_PROTO) -> list[RouteInfo]:
    """Every IPv4 route of the main table carrying ``proto``."""
    return [r for r in list_routes(family=4) if r.protocol == proto]


def replace_owned_route(
    dst: IPv4Network, *, gw: IPv4Address, dev: str, onlink: bool = False, proto: int = ROUTE_PROTO
) -> None:
    """Install ``dst via gw dev dev [onlink] proto <proto>``, replacing any route to ``dst`` in main."""
    text = f"route '{dst} via {gw} dev {dev}{' onlink' if onlink else ''}'"
    with rtnl() as ipr:
        spec: dict[str, object] = {
            "family": socket.AF_INET,
            "dst": str(dst.network_address),
            "dst_len": dst.prefixlen,
            "gateway": str(gw),
            "oif": index_of(dev),
            "table": RT_TABLE_MAIN,
            "proto": proto,
        }
        if onlink:
            spec["flags"] = RTNH_F_ONLINK
        with failing(f"replace {text}"):
            ipr.route("replace", **spec)


def delete_owned_route(route: RouteInfo) -> bool:
    """Delete one route as ``list_owned_routes`` reported it; False if it was already gone."""
    with rtnl() as ipr:
        spec: dict[str, object] = {
            "family": socket.AF_INET,
            "dst": str(route.dst.network_address),
            "dst_len": route.dst.prefixlen,
            "table": route.table,
            "proto": route.protocol,
        }
        if route.gw is not None:
            spec["gateway"] = str(route.gw)
        if route.ifindex is not None:
            spec["oif"] = route.ifindex
        try:
            with failing(f"delete route '{route.dst}'"):
                ipr.route("del", **spec)
        except (LinkNotFound, NetError) as exc:
            if isinstance(exc, LinkNotFound) or exc.errno == errno.ESRCH:
                return False
            raise
    return True
