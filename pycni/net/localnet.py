"""route_localnet: letting 127.0.0.1-sourced packets leave towards a pod.

A connection to 127.0.0.1:<hostPort> is DNATed in the output hook to the
pod; its source is still 127.0.0.1 when the kernel routes it out of the
interface facing the pod, and the kernel drops such "martian" packets
unless ``net.ipv4.conf.<iface>.route_localnet`` is 1 (the source is then
masqueraded in postrouting). IPv6 has no equivalent: ::1 is never routed,
so hostPorts cannot be reached at [::1].

Contract: ``ipv4_route_interface(addr)`` is the interface the main routing
table sends ``addr`` out of (longest prefix, then lowest metric), read
from /proc/thread-self/net/route, so no netlink library is imported on a
plugin's hot path; policy routing rules are not consulted.
``enable_route_localnet(addr)`` turns the sysctl on for that interface and
returns its name (None when no route matches).
"""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

from pycni.net.errors import NetError
from pycni.net.sysctl import ensure_sysctl, iface_key

__all__ = ["enable_route_localnet", "ipv4_route_interface", "parse_proc_net_route"]

_ROUTE_FILE = "/proc/thread-self/net/route"
_RTF_UP = 0x1


def parse_proc_net_route(text: str) -> list[tuple[str, int, int, int]]:
    """(iface, destination, netmask, metric) of every usable route; addresses as host-order ints."""
    routes = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, dest_hex, _gw, flags_hex, _ref, _use, metric, mask_hex = fields[:8]
        if not int(flags_hex, 16) & _RTF_UP:
            continue
        # The kernel prints the raw (network order) 32-bit word in host byte order.
        dest = struct.unpack("!I", struct.pack("=I", int(dest_hex, 16)))[0]
        mask = struct.unpack("!I", struct.pack("=I", int(mask_hex, 16)))[0]
        routes.append((iface, dest, mask, int(metric)))
    return routes


def ipv4_route_interface(addr: IPv4Address, route_text: str | None = None) -> str | None:
    """The interface the main table routes ``addr`` through; None when nothing matches."""
    if route_text is None:
        try:
            with open(_ROUTE_FILE, encoding="ascii") as f:
                route_text = f.read()
        except OSError as exc:
            raise NetError(f"failed to read routes '{_ROUTE_FILE}': {exc.strerror}", errno=exc.errno) from exc
    target = int(addr)
    best: tuple[int, int, str] | None = None  # (-prefix length, metric, iface)
    for iface, dest, mask, metric in parse_proc_net_route(route_text):
        if target & mask != dest:
            continue
        candidate = (-bin(mask).count("1"), metric, iface)
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else None


def enable_route_localnet(addr: IPv4Address) -> str | None:
    """Set route_localnet=1 on the interface routing to ``addr``; its name, or None if unrouted."""
    iface = ipv4_route_interface(addr)
    if iface is None:
        return None
    ensure_sysctl(iface_key(4, iface, "route_localnet"), 1)
    return iface
