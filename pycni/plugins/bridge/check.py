"""CHECK for the bridge plugin: is the attachment still what ADD made?

In order, stopping at the first problem:

1. IPAM CHECK, when the config has an IPAM type (the reference also calls
   it without one, and so fails every layer-2 CHECK; we skip it).
2. A prevResult is required; it must list the container interface
   (CNI_IFNAME in CNI_NETNS).
3. The bridge exists and is a bridge, with the prevResult's MAC if it lists
   one, and promiscuous when ``promiscMode`` asks for it.
4. The container interface is a veth with the prevResult's MAC; one of the
   prevResult's host interfaces is its peer and a port of the bridge.
5. The container interface carries every address of the prevResult that
   points at it, and every route of the prevResult exists in the container.
6. With ``ipMasq``, every address is masqueraded; with ``macspoofchk``, the
   spoof-check rules exist (the reference checks neither).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pycni.spec.errors import CniError, InvalidConfig

if TYPE_CHECKING:
    from pycni.net.links import LinkInfo
    from pycni.plugins.bridge.conf import BridgeConf
    from pycni.skel import CmdArgs
    from pycni.spec.result import IPConfig, Result, Route

__all__ = ["check_attachment"]


def _same_mac(a: str, b: str) -> bool:
    return a.lower() == b.lower()


def _check_bridge(conf: BridgeConf, expected_mac: str) -> LinkInfo:
    from pycni.net.links import get_link

    bridge = get_link(conf.bridge)
    if bridge.kind != "bridge":
        raise CniError(f"'{conf.bridge}' is not a bridge (kind '{bridge.kind or 'device'}')")
    if expected_mac and not _same_mac(bridge.mac, expected_mac):
        raise CniError(f"bridge '{conf.bridge}' has MAC {bridge.mac}, the prevResult says {expected_mac}")
    if conf.promisc_mode and not bridge.promisc:
        raise CniError(f"bridge '{conf.bridge}' is not in promiscuous mode (promiscMode is set)")
    return bridge


def _check_container(ifname: str, expected_mac: str, ips: list[IPConfig], routes: tuple[Route, ...]) -> LinkInfo:
    """In the container: the link, its addresses and the routes."""
    from pycni.net.addrs import list_addresses
    from pycni.net.links import get_link
    from pycni.net.routes import RT_TABLE_MAIN, route_exists

    link = get_link(ifname)
    if link.kind != "veth":
        raise CniError(f"container interface '{ifname}' is not a veth (kind '{link.kind or 'device'}')")
    if expected_mac and not _same_mac(link.mac, expected_mac):
        raise CniError(f"container interface '{ifname}' has MAC {link.mac}, the prevResult says {expected_mac}")
    present = set(list_addresses(ifname))
    for ipc in ips:
        if ipc.address not in present:
            raise CniError(f"container interface '{ifname}' lacks the address {ipc.address}")
    for route in routes:
        table = RT_TABLE_MAIN if route.table is None else route.table
        if not route_exists(route.dst, gw=route.gw, table=table):
            via = f" via {route.gw}" if route.gw is not None else ""
            raise CniError(f"route to {route.dst}{via} not found in the container")
    return link


def _host_peer(prev: Result, container: LinkInfo, bridge: LinkInfo) -> str:
    from pycni.net.errors import LinkNotFound
    from pycni.net.links import get_link

    for iface in prev.interfaces:
        if iface.sandbox or iface.name == bridge.name:
            continue
        try:
            host = get_link(iface.name)
        except LinkNotFound:
            continue
        if host.index == container.peer_index and host.master == bridge.index:
            return host.name
    raise CniError(f"no host interface of the prevResult is the peer of '{container.name}' on bridge '{bridge.name}'")


def check_attachment(args: CmdArgs, conf: BridgeConf) -> None:
    from pycni.ipam.delegate import ipam_check
    from pycni.net.netns import run_in_netns
    from pycni.plugins.common import find_interface

    if conf.ipam_type:
        ipam_check(args)
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig("prevResult: required by CHECK, missing")
    found = find_interface(prev, args.ifname, args.netns)
    if found is None:
        raise CniError(f"prevResult has no interface '{args.ifname}' in sandbox '{args.netns}'")
    index, container_iface = found
    listed_bridge = find_interface(prev, conf.bridge)
    bridge = _check_bridge(conf, listed_bridge[1].mac if listed_bridge else "")
    ips = [ipc for ipc in prev.ips if ipc.interface == index]
    container = run_in_netns(args.netns, _check_container, args.ifname, container_iface.mac, ips, prev.routes)
    host = _host_peer(prev, container, bridge)

    if conf.ip_masq and ips:
        from pycni.net.firewall.masquerade import missing_masquerade

        missing = missing_masquerade([ipc.address for ipc in ips], conf.network, args.ifname, args.container_id)
        if missing:
            raise CniError(f"no IP masquerade rule for {', '.join(str(a) for a in missing)}")
    if conf.macspoofchk:
        from pycni.net.firewall.spoofcheck import spoofcheck_present

        if not spoofcheck_present(host, args.container_id, args.ifname):
            raise CniError(f"MAC spoof-check rules for '{args.ifname}' (host veth '{host}') are missing")
