"""Routes, in the calling thread's network namespace.

Contract:

- Destinations are ``ipaddress`` networks (``0.0.0.0/0`` / ``::/0`` for
  default routes); the family follows the destination.
- ``add_route`` adds (EEXIST is an error unless ``exist_ok``), replaces
  (``replace``) or appends an ECMP next hop (``append``, what ConfigureIface
  uses). Unset options are left to the kernel's defaults.
- ``list_routes`` reports one ``RouteInfo`` per next hop: a multipath route
  appears once per hop, so "is there a route to X via G on D" is a plain
  membership test (``route_exists``).
- ``table=None`` in a query means every table; the default is main (254).
- ``replace_tagged_route`` installs ``dst via gw dev D [onlink]`` carrying a
  route protocol number (how a daemon marks routes as its own, e.g. the
  cluster agent's ``proto 124``); ``delete_listed_route`` removes exactly
  one route as ``list_routes`` reported it (False when already gone).
"""

from __future__ import annotations

import _socket  # not socket: its import builds enums (~3 ms on a cold plugin call)
import errno
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from pycni.net.errors import LinkNotFound, NetError
from pycni.net.netlink.errors import failing
from pycni.net.netlink.iproute import rtnl
from pycni.net.netlink.lookup import index_of
from pycni.net.netlink.messages import Message, attr, request, route_msg
from pycni.net.netlink.wire import NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RTM_NEWROUTE
from pycni.spec.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any, Literal

__all__ = [
    "RT_SCOPE_HOST",
    "RT_SCOPE_LINK",
    "RT_SCOPE_UNIVERSE",
    "RT_TABLE_MAIN",
    "RouteInfo",
    "add_route",
    "default_route_interface",
    "del_route",
    "delete_listed_route",
    "list_routes",
    "replace_tagged_route",
    "route_exists",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

RT_TABLE_MAIN = 254
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
# In a delete request: match a route of any scope (the kernel's wildcard).
_RT_SCOPE_NOWHERE = 255
_RTPROT_STATIC = 4  # what routes added by pycni carry (as pyroute2 and ip(8) "static" mark them)
_RTN_UNICAST = 1
_IP6_RT_PRIO_USER = 1024

_FAMILIES: dict[int, int] = {4: _socket.AF_INET, 6: _socket.AF_INET6}


@record
class RouteInfo:
    """One next hop of one route as the kernel reported it."""

    dst: IPNetwork
    gw: IPAddress | None
    ifindex: int | None
    dev: str  # name of ifindex ("" if unknown)
    table: int
    priority: int | None  # metric
    scope: int
    protocol: int  # 2 kernel, 3 boot (default for "add"), 4 static, ...
    type: int  # 1 unicast, 2 local, ...
    src: IPAddress | None  # preferred source (RTA_PREFSRC)
    mtu: int | None
    advmss: int | None


def _family(dst: IPNetwork) -> int:
    return _socket.AF_INET if dst.version == 4 else _socket.AF_INET6


def _describe(dst: IPNetwork, gw: IPAddress | None, dev: str | None) -> str:
    text = f"route '{dst}"
    if gw is not None:
        text += f" via {gw}"
    if dev:
        text += f" dev {dev}"
    return text + "'"


def _route_spec(
    dst: IPNetwork,
    gw: IPAddress | None,
    dev: str | None,
    table: int | None,
    priority: int | None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"family": _family(dst), "dst_len": dst.prefixlen}
    if dst.prefixlen:
        spec["dst"] = str(dst.network_address)
    if gw is not None:
        spec["gateway"] = str(gw)
    if dev:
        spec["oif"] = index_of(dev)
    if table is not None:
        spec["table"] = table
    if priority is not None:
        spec["priority"] = priority
    return spec


def add_route(
    dst: IPNetwork,
    *,
    gw: IPAddress | None = None,
    dev: str | None = None,
    priority: int | None = None,
    table: int | None = None,
    scope: int | None = None,
    src: IPAddress | None = None,
    mtu: int | None = None,
    advmss: int | None = None,
    replace: bool = False,
    append: bool = False,
    exist_ok: bool = False,
) -> None:
    """Add a route to ``dst`` via ``gw`` and/or out of ``dev``.

    ``replace`` overwrites a route with the same key; ``append`` adds
    another next hop (ECMP); ``exist_ok`` ignores an identical route.
    """
    if replace and append:
        raise ValueError("add_route: replace and append are mutually exclusive")
    attrs: list[tuple[str, Any]] = []
    if dst.prefixlen:
        attrs.append(("RTA_DST", str(dst.network_address)))
    if gw is not None:
        attrs.append(("RTA_GATEWAY", str(gw)))
    if dev:
        attrs.append(("RTA_OIF", index_of(dev)))
    if priority is not None:
        # IPv6 reads metric 0 as "the default" (1024); ask for that explicitly, as pyroute2 did
        attrs.append(("RTA_PRIORITY", _IP6_RT_PRIO_USER if priority == 0 and dst.version == 6 else priority))
    if src is not None:
        attrs.append(("RTA_PREFSRC", str(src)))
    metrics = [(name, value) for name, value in (("RTAX_MTU", mtu), ("RTAX_ADVMSS", advmss)) if value]
    if metrics:
        attrs.append(("RTA_METRICS", {"attrs": metrics}))
    msg = route_msg(
        _family(dst), dst.prefixlen, table=RT_TABLE_MAIN if table is None else table, proto=_RTPROT_STATIC,
        scope=RT_SCOPE_UNIVERSE if scope is None else scope, rtype=_RTN_UNICAST, attrs=attrs,
    )
    mode = NLM_F_REPLACE if replace else NLM_F_APPEND if append else NLM_F_EXCL
    try:
        with failing(f"add {_describe(dst, gw, dev)}", by_errno={errno.EEXIST: NetError}):
            request(msg, RTM_NEWROUTE, NLM_F_CREATE | mode)
    except NetError as exc:
        if not (exist_ok and exc.errno == errno.EEXIST):
            raise


def del_route(
    dst: IPNetwork,
    *,
    gw: IPAddress | None = None,
    dev: str | None = None,
    table: int | None = None,
    priority: int | None = None,
    missing_ok: bool = False,
) -> bool:
    """Delete the route matching the given fields; True if one was deleted."""
    with rtnl() as ipr:
        try:
            spec = _route_spec(dst, gw, dev, table, priority)
            spec["scope"] = _RT_SCOPE_NOWHERE
            with failing(f"delete {_describe(dst, gw, dev)}"):
                ipr.route("del", **spec)
        except (LinkNotFound, NetError) as exc:
            # ESRCH: no such route. A vanished device means no route either.
            if missing_ok and (isinstance(exc, LinkNotFound) or exc.errno == errno.ESRCH):
                return False
            raise
    return True


RTNH_F_ONLINK = 0x4


def replace_tagged_route(dst: IPv4Network | IPv6Network, *, gw: IPv4Address | IPv6Address, dev: str, proto: int,
                         onlink: bool = False) -> None:
    """Install ``dst via gw dev dev [onlink] proto <proto>``, replacing any route to ``dst`` in main."""
    text = f"route '{dst} via {gw} dev {dev}{' onlink' if onlink else ''}'"
    with rtnl() as ipr:
        spec: dict[str, object] = {
            "family": _socket.AF_INET if dst.version == 4 else _socket.AF_INET6,
            "dst": str(dst.network_address), "dst_len": dst.prefixlen,
            "gateway": str(gw), "oif": index_of(dev), "table": RT_TABLE_MAIN, "proto": proto,
        }
        if onlink:  # the gateway need not be on a connected subnet (a VXLAN peer's VTEP address)
            spec["flags"] = RTNH_F_ONLINK
        with failing(f"replace {text}"):
            ipr.route("replace", **spec)


def delete_listed_route(route: RouteInfo) -> bool:
    """Delete one route as ``list_routes`` reported it; False if it was already gone."""
    with rtnl() as ipr:
        spec: dict[str, object] = {
            "family": _socket.AF_INET if route.dst.version == 4 else _socket.AF_INET6,
            "dst": str(route.dst.network_address), "dst_len": route.dst.prefixlen,
            "table": route.table, "proto": route.protocol,
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


def _metrics(msg: Message) -> tuple[int | None, int | None]:
    metrics = attr(msg, "RTA_METRICS")
    if metrics is None:
        return None, None
    return metrics.get_attr("RTAX_MTU"), metrics.get_attr("RTAX_ADVMSS")


def _expand(msg: Message, names: dict[int, str]) -> list[RouteInfo]:
    family = int(msg["family"])
    zero = "0.0.0.0" if family == _socket.AF_INET else "::"
    dst = ip_network(f"{attr(msg, 'RTA_DST', zero)}/{msg['dst_len']}", strict=False)
    table = int(attr(msg, "RTA_TABLE", msg["table"]))
    src = attr(msg, "RTA_PREFSRC")
    mtu, advmss = _metrics(msg)
    hops: list[tuple[Any, Any]] = [(attr(msg, "RTA_GATEWAY"), attr(msg, "RTA_OIF"))]
    multipath = attr(msg, "RTA_MULTIPATH")
    if multipath:
        hops = [(hop.get_attr("RTA_GATEWAY"), hop["oif"]) for hop in multipath]
    return [
        RouteInfo(
            dst=dst,
            gw=None if gw is None else ip_address(gw),
            ifindex=oif,
            dev=names.get(oif, "") if oif is not None else "",
            table=table,
            priority=attr(msg, "RTA_PRIORITY"),
            scope=int(msg["scope"]),
            protocol=int(msg["proto"]),
            type=int(msg["type"]),
            src=None if src is None else ip_address(src),
            mtu=mtu,
            advmss=advmss,
        )
        for gw, oif in hops
    ]


def list_routes(
    dev: str | None = None, family: Literal[4, 6] | None = None, table: int | None = RT_TABLE_MAIN
) -> list[RouteInfo]:
    """Routes (one entry per next hop), filtered by device, family and table."""
    with rtnl() as ipr:
        index = index_of(dev) if dev else None
        with failing("list routes"):
            names = {int(m["index"]): attr(m, "IFLA_IFNAME", "") for m in ipr.link("dump")}
            messages = ipr.route("dump", family=_FAMILIES[family]) if family else ipr.route("dump")
            routes = [r for msg in messages for r in _expand(msg, names)]
    return [r for r in routes if (table is None or r.table == table) and (index is None or r.ifindex == index)]


def route_exists(
    dst: IPNetwork, *, gw: IPAddress | None = None, dev: str | None = None, table: int | None = RT_TABLE_MAIN
) -> bool:
    """True if a route to ``dst`` exists, with next hop ``gw`` and device ``dev`` when given."""
    return any(
        r.dst == dst and (gw is None or r.gw == gw) and (dev is None or r.dev == dev)
        for r in list_routes(family=4 if dst.version == 4 else 6, table=table)
    )


def default_route_interface(family: Literal[4, 6] = 4) -> str | None:
    """The device of the first default route in the main table (macvlan's default master), or None."""
    for route in list_routes(family=family):
        if route.dst.prefixlen == 0 and route.dev:
            return route.dev
    return None
