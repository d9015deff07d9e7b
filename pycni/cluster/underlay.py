"""Find the node's underlay: the device and address other nodes reach it by.

``--iface`` names the device (its first IPv4 address is used unless
``--public-ip`` says which); ``--public-ip`` alone finds the device carrying
it; with neither, the device of the default route. Runs in the agent's
network namespace. In a dual-stack cluster (``ipv6=True``) the underlay also
carries the device's first global IPv6 address (or ``--public-ipv6``), and
None when it has none: the vxlan backend then has no IPv6 overlay.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface

from pycni.cluster.backends.base import Underlay
from pycni.spec.errors import InvalidConfig

__all__ = ["find_underlay"]


def find_underlay(iface: str | None, public_ip: IPv4Address | None, *, ipv6: bool = False,
                  public_ipv6: IPv6Address | None = None) -> Underlay:
    from pycni.net import addrs, links, routes

    if iface is None and public_ip is not None:
        for link in links.list_links():
            if any(a.ip == public_ip for a in addrs.list_addresses(link.name, 4)):
                iface = link.name
                break
        else:
            raise InvalidConfig(f"--public-ip: no interface carries {public_ip}")
    if iface is None:
        iface = routes.default_route_interface(4)
        if iface is None:
            raise InvalidConfig("no --iface or --public-ip given and there is no default route to pick one from")
    link = links.get_link(iface)
    ipv4 = [a for a in addrs.list_addresses(iface, 4) if isinstance(a, IPv4Interface)]
    if public_ip is None:
        if not ipv4:
            raise InvalidConfig(f"--iface: '{iface}' has no IPv4 address")
        public_ip = ipv4[0].ip
    underlay = Underlay(iface=iface, ip=public_ip, mtu=link.mtu, networks=tuple(a.network for a in ipv4))
    if not ipv6:
        return underlay
    globals6 = [a for a in addrs.list_addresses(iface, 6)
                if isinstance(a, IPv6Interface) and not a.ip.is_link_local and not a.ip.is_loopback]
    if public_ipv6 is None and globals6:
        public_ipv6 = globals6[0].ip
    return replace(underlay, ipv6=public_ipv6, networks6=tuple(a.network for a in globals6))
