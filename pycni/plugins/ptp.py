"""ptp: a veth pair routed point-to-point between the host and the container.

Config (spec 6.2): ``ipam`` (required; every IP needs a gateway),
``mtu``, ``ipMasq``, ``ipMasqBackend`` (iptables or nftables), ``dns``
(replaces IPAM's when any field is set).

The container end (CNI_IFNAME) gets IPAM's address, but no on-link subnet:
its connected route is replaced by a /32 (/128) route to the gateway and a
subnet route via that gateway, so all traffic goes through the host. The
host end ("veth" + 8 hex digits) carries each gateway as a /32 (/128) and a
host route to each container IP. Forwarding is enabled for the families in
use. Deleting the veth (DEL, or a failed ADD) removes the host side's
addresses and routes with it.

``ipMasq`` masquerades traffic from the container IPs leaving their subnet
(pycni.net.masquerade: nftables or the reference's iptables layout). DEL
removes those rules even when the netns is gone (addresses from the link,
else the prevResult), and removes a host veth left behind by a netns whose
path is gone but which something still holds; CHECK also wants the host
routes and masquerade rules; GC removes the rules of stale attachments.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface, ip_interface, ip_network
from typing import TYPE_CHECKING, Any

from pycni import skel
from pycni.ipam.delegate import ipam_add, ipam_del, released_on_failure
from pycni.plugins.attach import (
    Expected,
    check_single_link,
    container_interface,
    gc_ipam,
    renderable,
    require_prev_result,
    status_ipam,
)
from pycni.plugins.common import assemble_result, dns_from_conf, find_interface, require_ips
from pycni.plugins.linkconf import read_choice, read_ipam_type, read_mtu
from pycni.plugins.steps import (
    Attempts,
    container_addresses,
    delete_container_link_with_addresses,
    undone_on_failure,
)
from pycni.spec.errors import CniError, InvalidConfig
from pycni.spec.fields import read_bool

if TYPE_CHECKING:
    from pycni.spec.result import DNS, IPConfig, Result

MASQ_BACKENDS = ("iptables", "nftables")


@dataclass(frozen=True)
class PtpConf:
    mtu: int | None
    ip_masq: bool
    ip_masq_backend: str  # "" = choose (iptables unless only nftables works)
    ipam_type: str
    dns: DNS | None


def parse_conf(config: Mapping[str, Any]) -> PtpConf:
    return PtpConf(
        mtu=read_mtu(config),
        ip_masq=read_bool(config, "ipMasq", ""),
        ip_masq_backend=read_choice(config, "ipMasqBackend", ("", *MASQ_BACKENDS), ""),
        ipam_type=read_ipam_type(config, required_by="ptp"),
        dns=dns_from_conf(config),
    )


def _host_prefix(ipc: IPConfig) -> int:
    return 32 if ipc.family == 4 else 128


def _require_gateways(ipam_result: Result) -> None:
    for ipc in ipam_result.ips:
        if ipc.gateway is None:
            raise InvalidConfig(f"ipam: ptp needs a gateway for {ipc.address}, and the IPAM result has none")


def _configure_container(ifname: str, result: Result) -> None:
    """Inside the container: address the veth, then route everything via the gateway."""
    from pycni.net.configure import configure_iface
    from pycni.net.routes import RT_SCOPE_LINK, add_route, del_route

    configure_iface(ifname, result)
    for ipc in result.ips:
        gw, cidr = ipc.gateway, ipc.address
        assert gw is not None  # _require_gateways
        # No on-link subnet: the kernel's connected route becomes "via gateway".
        del_route(cidr.network, dev=ifname, missing_ok=True)
        gw_net = ip_network(f"{gw}/{_host_prefix(ipc)}")
        add_route(gw_net, dev=ifname, scope=RT_SCOPE_LINK if ipc.family == 4 else None, src=cidr.ip, exist_ok=True)
        if cidr.network != gw_net:
            add_route(cidr.network, gw=gw, dev=ifname, src=cidr.ip, exist_ok=True)


def _configure_host(host_veth: str, result: Result) -> None:
    """On the host: the gateways on the host veth, a host route to each container IP."""
    from pycni.net.addrs import add_address
    from pycni.net.routes import RT_SCOPE_LINK, add_route

    added: set[IPv4Interface | IPv6Interface] = set()
    for ipc in result.ips:
        prefix = _host_prefix(ipc)
        gw_cidr = ip_interface(f"{ipc.gateway}/{prefix}")
        if gw_cidr not in added:
            add_address(host_veth, gw_cidr)
            added.add(gw_cidr)
        scope = RT_SCOPE_LINK if ipc.family == 4 else None
        add_route(ip_network(f"{ipc.address.ip}/{prefix}"), dev=host_veth, scope=scope, exist_ok=True)


def cmd_add(args: skel.CmdArgs) -> Result:
    from pycni.net.links import delete_link
    from pycni.net.netns import run_in_netns
    from pycni.net.sysctl import enable_ip_forward
    from pycni.net.veth import create_veth_pair
    from pycni.spec.result import Interface

    conf = parse_conf(args.config)
    host, container = create_veth_pair(args.ifname, args.netns, mtu=conf.mtu)
    # Deleting the host end deletes the pair, and with it every host address and route below.
    with undone_on_failure(lambda: delete_link(host.name, missing_ok=True), f"delete veth '{host.name}'"):
        ipam_result = ipam_add(args)
        with released_on_failure(args):
            require_ips(ipam_result, conf.ipam_type)
            _require_gateways(ipam_result)
            for family in sorted({ipc.family for ipc in ipam_result.ips}):
                enable_ip_forward(family)
            interfaces = [
                Interface(name=host.name, mac=host.mac),
                Interface(name=container.name, mac=container.mac, sandbox=args.netns),
            ]
            result = assemble_result(args.cni_version, interfaces, 1, ipam_result, conf.dns)
            renderable(result, args.cni_version)
            run_in_netns(args.netns, _configure_container, args.ifname, result)
            _configure_host(host.name, result)
            if conf.ip_masq:
                _setup_masquerade(args, conf, result)
    return result


def _setup_masquerade(args: skel.CmdArgs, conf: PtpConf, result: Result) -> None:
    from pycni.net.firewall.masquerade import setup_masquerade, teardown_masquerade

    addresses = [ipc.address for ipc in result.ips]
    network, ifname, cid = args.network_name, args.ifname, args.container_id
    # A partial setup (one family of two) is undone along with everything else.
    with undone_on_failure(lambda: teardown_masquerade(network, ifname, cid, addresses), "remove IP masquerade"):
        setup_masquerade(addresses, network, ifname, cid, conf.ip_masq_backend or None)


def cmd_del(args: skel.CmdArgs) -> None:
    """IPAM DEL, the veth pair, the masquerade rules: every step runs, the first error is raised."""
    from pycni.net.firewall.masquerade import teardown_masquerade

    # Only what DEL needs is read: a config that could never ADD must still DEL.
    ip_masq = read_bool(args.config, "ipMasq", "")
    attempt = Attempts()
    if read_ipam_type(args.config):
        attempt(ipam_del, args)
    addresses = attempt(_delete_veth, args) or container_addresses(args)
    if ip_masq:
        attempt(teardown_masquerade, args.network_name, args.ifname, args.container_id, addresses)
    attempt.raise_first()


def _delete_veth(args: skel.CmdArgs) -> list[IPv4Interface | IPv6Interface]:
    """Delete the pair; return the container end's addresses (for the masquerade teardown)."""
    # Deleting the container end deletes the host end, its addresses and routes.
    deleted, addresses = delete_container_link_with_addresses(args)
    if deleted:
        return addresses
    # No container end to delete: CNI_NETNS is empty or its path is gone. The
    # namespace itself may live on (a process still holds it), and with it the
    # pair: delete the host end the prevResult names.
    _delete_orphaned_host_veth(args)
    return []


def _delete_orphaned_host_veth(args: skel.CmdArgs) -> None:
    from pycni.net.errors import LinkNotFound
    from pycni.net.links import delete_link, get_link

    try:
        prev = args.prev_result()
    except CniError:
        return  # an unreadable prevResult must not block DEL
    if prev is None or find_interface(prev, args.ifname) is None:
        return
    for iface in prev.interfaces:
        if iface.sandbox or not iface.name.startswith("veth"):
            continue
        try:
            link = get_link(iface.name)
        except LinkNotFound:
            continue
        # Only a veth whose peer is in another netns, with the MAC we reported.
        if link.kind == "veth" and link.link_netnsid is not None and (not iface.mac or iface.mac == link.mac):
            delete_link(iface.name, missing_ok=True)


def cmd_check(args: skel.CmdArgs) -> None:
    conf = parse_conf(args.config)
    check_single_link(args, plugin="ptp", use_ipam=True, expected=Expected(kind="veth"))
    prev = require_prev_result(args, "ptp")
    _check_host_routes(args, prev)
    if conf.ip_masq:
        _check_masquerade(args, prev)


def _check_host_routes(args: skel.CmdArgs, prev: Result) -> None:
    """The host veth routes each container IP (else the container is unreachable)."""
    from pycni.net.routes import route_exists

    index, _ = container_interface(prev, args)
    hosts = [iface for iface in prev.interfaces if not iface.sandbox]
    if not hosts:
        return  # a result without the host veth (e.g. converted from 0.2.0): nothing more to compare
    host_veth = hosts[0].name
    for ipc in prev.ips:
        if ipc.interface != index:
            continue
        dst = ip_network(f"{ipc.address.ip}/{_host_prefix(ipc)}")
        if not route_exists(dst, dev=host_veth):
            raise CniError(f"host route to {ipc.address.ip} via '{host_veth}' not found")


def _check_masquerade(args: skel.CmdArgs, prev: Result) -> None:
    from pycni.net.firewall.masquerade import missing_masquerade

    found = find_interface(prev, args.ifname, sandbox=args.netns)
    addresses = [ipc.address for ipc in prev.ips if found is not None and ipc.interface == found[0]]
    missing = missing_masquerade(addresses, args.network_name, args.ifname, args.container_id)
    if missing:
        raise CniError(f"no IP masquerade rule for {', '.join(str(a) for a in missing)}")


def cmd_status(args: skel.CmdArgs) -> None:
    parse_conf(args.config)
    status_ipam(args)


def cmd_gc(args: skel.CmdArgs) -> None:
    """IPAM GC, then the masquerade rules of attachments no longer valid; both run."""
    conf = parse_conf(args.config)
    attempt = Attempts()
    attempt(gc_ipam, args)
    if conf.ip_masq:
        from pycni.net.firewall.masquerade import gc_masquerade

        attempt(gc_masquerade, args.network_name, args.valid_attachments())
    attempt.raise_first()

