"""The bridge plugin: containers on a Linux bridge through veth pairs.

ADD, as a recipe (each step undone if a later one fails, so a failed ADD
leaves no veth, no rules and no reserved address):

1. ensure the bridge (MTU, promiscuous mode, VLAN filtering, up);
2. a veth pair: CNI_IFNAME in the container (MAC as requested), the host end
   on the bridge with hairpin, isolation and VLANs as configured;
3. ``macspoofchk``: only the container's MAC may enter through its port;
4. with IPAM: IPAM ADD, gateways and default routes planned, the container
   interface configured (DAD, arp_notify, addresses, routes); with
   ``isGateway`` the gateway addresses go on the bridge (or ``<br>.<vlan>``)
   and forwarding is enabled; ``ipMasq`` masquerades the container's IPs.
   Without IPAM the container interface is just set up (unless
   ``disableContainerInterface``);
5. wait for the host veth to be operationally up;
6. result: interfaces [bridge, host veth, container (+ ``<br>.<vlan>``)],
   IPs on interface 2, routes, DNS (the config's replaces IPAM's).

DEL and GC live in ``teardown``, CHECK in ``check``. STATUS goes to IPAM
when the config has an IPAM type.
"""

from __future__ import annotations

from contextlib import suppress

from pycni import skel
from pycni.ipam.delegate import ipam_add, ipam_status, released_on_failure
from pycni.plugins.bridge.conf import BridgeConf, parse_conf
from pycni.plugins.bridge.gateway import apply_gateways, plan_l3
from pycni.plugins.bridge.teardown import cmd_del, cmd_gc
from pycni.plugins.common import requested_mac, require_ips
from pycni.plugins.steps import UndoStack
from pycni.spec.record import replace

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from pycni.spec.result import Interface, Result

__all__ = ["cmd_add", "cmd_check", "cmd_del", "cmd_gc", "cmd_status"]


# -- ADD ------------------------------------------------------------------------


def cmd_add(args: skel.CmdArgs) -> Result:
    from pycni.net.netns import netlink_session

    conf = parse_conf(args.config)
    mac = requested_mac(args, conf.mac)
    with netlink_session():
        return _add(args, conf, mac)


def _add(args: skel.CmdArgs, conf: BridgeConf, mac: str) -> Result:
    from pycni.net import links
    from pycni.net.bridge import ensure_bridge
    from pycni.net.veth import create_veth_pair
    from pycni.spec.result import Interface

    ensure_bridge(conf.bridge, mtu=conf.mtu, promisc=conf.promisc_mode, vlan_filtering=conf.vlan_filtering)
    with UndoStack() as undo:
        host, container = create_veth_pair(args.ifname, args.netns, mtu=conf.mtu, container_mac=mac or None)
        # Deleting the host end deletes the pair, wherever the container end is.
        undo.push(f"delete veth '{host.name}'", lambda: links.delete_link(host.name, missing_ok=True))
        _connect_port(host.name, conf)
        if conf.macspoofchk:
            from pycni.net.firewall.spoofcheck import setup_spoofcheck, teardown_spoofcheck

            setup_spoofcheck(host.name, container.mac, args.container_id, args.ifname)
            undo.push("remove the spoof check", lambda: teardown_spoofcheck(args.container_id, args.ifname))
        interfaces = (
            Interface(name=conf.bridge),
            Interface(name=host.name, mac=host.mac),
            Interface(name=container.name, mac=container.mac, sandbox=args.netns),
        )
        if conf.ipam_type:
            ipam_result = ipam_add(args)
            with released_on_failure(args):
                result = _add_l3(args, conf, interfaces, ipam_result, undo)
                return _finish(conf, host.name, result)
        if not conf.disable_container_interface:
            from pycni.net.netns import run_in_netns

            run_in_netns(args.netns, links.set_link_up, args.ifname)
        return _finish(conf, host.name, _result(args, conf, interfaces))


def _connect_port(port: str, conf: BridgeConf) -> None:
    from pycni.net.bridge import set_hairpin, set_port_isolated
    from pycni.net.links import set_master
    from pycni.plugins.bridge.vlan import configure_port_vlans

    set_master(port, conf.bridge)
    if conf.hairpin_mode:
        set_hairpin(port, True)
    if conf.port_isolation:
        set_port_isolated(port, True)
    configure_port_vlans(port, conf)


def _result(args: skel.CmdArgs, conf: BridgeConf, interfaces: tuple[Interface, ...]) -> Result:
    from pycni.spec.result import Result

    return Result(cni_version=args.cni_version, interfaces=interfaces, dns=conf.dns)


def _add_l3(
    args: skel.CmdArgs, conf: BridgeConf, interfaces: tuple[Interface, ...], ipam_result: Result, undo: UndoStack
) -> Result:
    from pycni.net.netns import run_in_netns
    from pycni.spec.result import Interface

    require_ips(ipam_result, conf.ipam_type)
    plan = plan_l3(ipam_result, conf)
    dns = ipam_result.dns if conf.dns.is_empty() else conf.dns
    result = replace(_result(args, conf, interfaces), ips=plan.ips, routes=plan.routes, dns=dns)
    run_in_netns(args.netns, _configure_container, args.ifname, result, conf.enable_dad)

    if conf.is_gateway:
        gateway_link = conf.bridge
        if conf.vlan:
            from pycni.plugins.bridge.vlan import ensure_vlan_gateway_link

            link = ensure_vlan_gateway_link(conf)
            gateway_link = link.name
            result = replace(result, interfaces=(*result.interfaces, Interface(name=link.name, mac=link.mac)))
        pinned_mac = apply_gateways(gateway_link, conf.bridge, plan.gateways, force=conf.force_address)
        if pinned_mac:  # the bridge's MAC from now on: _finish need not look it up again
            result = _with_bridge_mac(result, pinned_mac)

    if conf.ip_masq:
        from pycni.net.firewall.masquerade import setup_masquerade, teardown_masquerade

        addresses = [ipc.address for ipc in result.ips]
        setup_masquerade(addresses, conf.network, args.ifname, args.container_id, conf.ip_masq_backend or None)
        undo.push(
            "remove IP masquerade",
            lambda: teardown_masquerade(conf.network, args.ifname, args.container_id, addresses),
        )
    return result


def _configure_container(ifname: str, result: Result, enable_dad: bool) -> None:
    """In the container: DAD and ARP announcements as configured, then ConfigureIface."""
    from pycni.net.configure import configure_iface
    from pycni.net.errors import NetError
    from pycni.net.sysctl import iface_key, write_sysctl

    # Without DAD an IPv6 address is usable at once; enhanced DAD (nonce
    # based) keeps looped-back probes from failing it when DAD is on.
    settings = [(6, "enhanced_dad", 1), (6, "accept_dad", 1)] if enable_dad else [(6, "accept_dad", 0)]
    for family, name, value in [*settings, (4, "arp_notify", 1)]:
        with suppress(NetError):  # best effort, as in the reference: IPv6 may be disabled
            write_sysctl(iface_key(4 if family == 4 else 6, ifname, name), value)
    configure_iface(ifname, result)


def _finish(conf: BridgeConf, host_veth: str, result: Result) -> Result:
    """Wait for the port to come up; report the bridge's MAC as it is now (ports and addresses change it,
    unless ``apply_gateways`` pinned it: then the result has it already)."""
    from pycni.net.errors import LinkNotUp, NetError
    from pycni.net.links import get_link, wait_oper_up

    if not conf.disable_container_interface:
        try:
            wait_oper_up(host_veth)
        except LinkNotUp as exc:
            raise NetError(f"bridge port in error state: {exc.state}") from exc
    if result.interfaces[0].mac:
        return result
    return _with_bridge_mac(result, get_link(conf.bridge).mac)


def _with_bridge_mac(result: Result, mac: str) -> Result:
    """``result`` with the bridge (its first interface) reported with ``mac``."""
    bridge = replace(result.interfaces[0], mac=mac)
    return replace(result, interfaces=(bridge, *result.interfaces[1:]))


# -- CHECK, STATUS -------------------------------------------------------------


def cmd_check(args: skel.CmdArgs) -> None:
    from pycni.plugins.bridge.check import check_attachment

    check_attachment(args, parse_conf(args.config))


def cmd_status(args: skel.CmdArgs) -> None:
    if parse_conf(args.config).ipam_type:
        ipam_status(args)
