"""Blackhole routes carrying a route protocol number: where traffic must drop rather than take the default route.

Contract: ``replace_blackhole_route(dst, proto)`` installs (or overwrites)
``blackhole dst proto <proto>`` in the main table; ``delete_blackhole_route``
removes it and returns False when it was not there. A more specific route
to part of ``dst`` still wins (longest prefix), so a blackhole for a whole
network is a floor under the routes of its parts: when they vanish (their
device is gone), packets drop instead of leaking out another way.
"""

from __future__ import annotations

import errno
import socket
from ipaddress import IPv4Network

from pycni.net.errors import NetError
from pycni.net.netlink.errors import failing
from pycni.net.netlink.iproute import rtnl

__all__ = ["RTN_BLACKHOLE", "delete_blackhole_route", "replace_blackhole_route"]

RTN_BLACKHOLE = 6
_RT_TABLE_MAIN = 254


def _spec(dst: IPv4Network, proto: int) -> dict[str, object]:
    return {"family": socket.AF_INET, "dst": str(dst.network_address), "dst_len": dst.prefixlen,
            "table": _RT_TABLE_MAIN, "proto": proto, "type": RTN_BLACKHOLE}


def replace_blackhole_route(dst: IPv4Network, proto: int) -> None:
    with rtnl() as ipr, failing(f"replace route 'blackhole {dst}'"):
        ipr.route("replace", **_spec(dst, proto))


def delete_blackhole_route(dst: IPv4Network, proto: int) -> bool:
    with rtnl() as ipr:
        try:
            with failing(f"delete route 'blackhole {dst}'"):
                ipr.route("del", **_spec(dst, proto))
        except NetError as exc:
            if exc.errno == errno.ESRCH:
                return False
            raise
    return True
