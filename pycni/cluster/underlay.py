"""Find the node's underlay: the device and address other nodes reach it by.

``--iface`` names the device (its first IPv4 address is used unless
``--public-ip`` says which); ``--public-ip`` alone finds the device carrying
it; with neither, the device of the default route. Runs in the agent's
network namespace.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from pycni.cluster.backends.base import Underlay
from pycni.spec.errors import InvalidConfig

__all__ = ["find_underlay"]


def find_underlay(iface: str | None, public_ip: IPv4Address | None) -> Underlay:
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
    return Underlay(iface=iface, ip=public_ip, mtu=link.mtu, networks=tuple(a.network for a in ipv4))
