"""Layer 3 on the bridge: the container's gateways, default routes, gateway addresses.

``plan_l3`` is pure: from the IPAM result and the config it decides

- every IP belongs to the container interface (result index 2);
- with ``isGateway``, an IP without a gateway gets the first host of its
  subnet (10.22.0.0/16 -> 10.22.0.1);
- with ``isDefaultGateway``, each family gets a default route via its
  first gateway unless IPAM already returned a default route for it;
- the gateway addresses the bridge must carry (``gateway/prefix of the
  container's address``), once each.

``apply_gateways`` puts those addresses on the bridge (or the VLAN gateway
link), pins the bridge MAC and enables forwarding for the families used.

Deviation from the reference: a default route from IPAM *without* a gw
also counts as "IPAM gave one" (ConfigureIface installs it via the same
gateway), so the container never gets the same default route twice.
"""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface, ip_interface, ip_network

from pycni.spec.record import record, replace
from pycni.spec.result import IPConfig, Result, Route

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from pycni.plugins.bridge.conf import BridgeConf

__all__ = ["CONTAINER_INDEX", "L3Plan", "apply_gateways", "plan_l3"]

#: Where the container interface sits in the result: [bridge, host veth, container].
CONTAINER_INDEX = 2

IPInterface = IPv4Interface | IPv6Interface
_DEFAULT = {4: "0.0.0.0/0", 6: "::/0"}


@record
class L3Plan:
    ips: tuple[IPConfig, ...]
    routes: tuple[Route, ...]
    gateways: tuple[IPInterface, ...]  # addresses for the bridge, e.g. 10.22.0.1/16


def plan_l3(ipam_result: Result, conf: BridgeConf) -> L3Plan:
    ips: list[IPConfig] = []
    routes = list(ipam_result.routes)
    gateways: list[IPInterface] = []
    has_default = {v: any(r.dst.prefixlen == 0 and r.dst.version == v for r in routes) for v in (4, 6)}
    for ipc in ipam_result.ips:
        gateway = ipc.gateway
        if gateway is None and conf.is_gateway:
            gateway = ipc.address.network.network_address + 1
        ips.append(replace(ipc, gateway=gateway, interface=CONTAINER_INDEX))
        family = ipc.family
        if conf.is_default_gateway and not has_default[family] and gateway is not None:
            routes.append(Route(dst=ip_network(_DEFAULT[family]), gw=gateway))
            has_default[family] = True
        if conf.is_gateway and gateway is not None:
            cidr = ip_interface(f"{gateway}/{ipc.address.network.prefixlen}")
            if cidr not in gateways:
                gateways.append(cidr)
    return L3Plan(ips=tuple(ips), routes=tuple(routes), gateways=tuple(gateways))


def apply_gateways(link: str, bridge: str, gateways: tuple[IPInterface, ...], *, force: bool) -> str | None:
    """Give ``link`` (the bridge, or its VLAN gateway link) the gateway addresses; turn on forwarding.

    An address conflicting with one already there is an error unless
    ``force`` replaces it (pycni.net.addrs.ensure_address_on_bridge). The
    bridge's MAC is then set to its current value: otherwise the kernel
    lets it follow the lowest port MAC, and it would change as pods come
    and go, breaking every container's ARP entry for the gateway. Returns
    that MAC (None without gateways): pinned, it stays the bridge's MAC.
    """
    if not gateways:
        return None
    from pycni.net.addrs import ensure_address_on_bridge
    from pycni.net.links import get_link, set_link_mac
    from pycni.net.sysctl import enable_ip_forward

    for cidr in gateways:
        ensure_address_on_bridge(link, cidr, force=force)
    mac = get_link(bridge).mac
    set_link_mac(bridge, mac)
    for family in sorted({cidr.version for cidr in gateways}):
        enable_ip_forward(4 if family == 4 else 6)
    return mac
