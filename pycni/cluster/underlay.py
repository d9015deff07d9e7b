"""Find the node's underlay: the device and address other nodes reach it by.

``--iface`` names the device (its first IPv4 address is used unless
``--public-ip`` says which); ``--public-ip`` alone finds the device carrying
it; with neither, the device of the default route. Runs in the agent's
network namespace. In a dual-stack cluster (``ipv6=True``) the underlay also
carries the device's first global IPv6 address (or ``--public-ipv6``), and
None when it has none: the vxlan backend then has no IPv6 overlay. In an
IPv6-only cluster (``ipv4=False``) the IPv6 address is the node's only one:
it is required, ``ip`` is None, and with neither ``--iface`` nor
``--public-ipv6`` the device is that of the IPv6 default route.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import Literal

from pycni.cluster.backends.base import Underlay
from pycni.spec.errors import InvalidConfig

__all__ = ["find_underlay"]


def find_underlay(iface: str | None, public_ip: IPv4Address | None, *, ipv6: bool = False,
                  public_ipv6: IPv6Address | None = None, ipv4: bool = True) -> Underlay:
    if not ipv4:
        return _ipv6_only_underlay(iface, public_ipv6)
    from pycni.net import addrs, links

    iface = _pick_interface(iface, public_ip, 4, "--public-ip", "default route")
    link = links.get_link(iface)
    addresses4 = [a for a in addrs.list_addresses(iface, 4) if isinstance(a, IPv4Interface)]
    if public_ip is None:
        if not addresses4:
            raise InvalidConfig(f"--iface: '{iface}' has no IPv4 address")
        public_ip = addresses4[0].ip
    underlay = Underlay(iface=iface, ip=public_ip, mtu=link.mtu, networks=tuple(a.network for a in addresses4))
    if not ipv6:
        return underlay
    globals6 = [a for a in addrs.list_addresses(iface, 6)
                if isinstance(a, IPv6Interface) and not a.ip.is_link_local and not a.ip.is_loopback]
    if public_ipv6 is None and globals6:
        public_ipv6 = globals6[0].ip
    return replace(underlay, ipv6=public_ipv6, networks6=tuple(a.network for a in globals6))


def _pick_interface(iface: str | None, public: IPv4Address | IPv6Address | None, family: Literal[4, 6], flag: str,
                    route: str) -> str:
    """The interface named, else the one carrying ``public``, else the one of the family's default route."""
    from pycni.net import addrs, links, routes

    if iface is None and public is not None:
        for link in links.list_links():
            if any(a.ip == public for a in addrs.list_addresses(link.name, family)):
                return link.name
        raise InvalidConfig(f"{flag}: no interface carries {public}")
    if iface is None:
        iface = routes.default_route_interface(family)
        if iface is None:
            raise InvalidConfig(f"no --iface or {flag} given and there is no {route} to pick one from")
    return iface


def _ipv6_only_underlay(iface: str | None, public_ipv6: IPv6Address | None) -> Underlay:
    from pycni.net import addrs, links

    iface = _pick_interface(iface, public_ipv6, 6, "--public-ipv6", "IPv6 default route")
    link = links.get_link(iface)
    globals6 = [a for a in addrs.list_addresses(iface, 6)
                if isinstance(a, IPv6Interface) and not a.ip.is_link_local and not a.ip.is_loopback]
    if public_ipv6 is None:
        if not globals6:
            raise InvalidConfig(f"--iface: '{iface}' has no global IPv6 address (an IPv6-only cluster needs one)")
        public_ipv6 = globals6[0].ip
    return Underlay(iface=iface, ip=None, mtu=link.mtu, networks=(), ipv6=public_ipv6,
                    networks6=tuple(a.network for a in globals6))
