"""The recipes shared by plugins that put one link into a container.

macvlan, ipvlan, vlan, dummy, tap and host-device all do the same thing
around a different "make the link" step; ptp reuses the pieces.

- ADD (``add_single_link``): make the link in the container netns; then
  IPAM ADD (or reuse a chained prevResult's IPs), ConfigureIface; without
  IPAM just set the link up. Any failure after the link exists undoes it
  (delete, or the plugin's own ``undo``), and any failure after IPAM ADD
  releases the address, so a failed ADD leaves nothing behind.
- DEL (``del_single_link``): IPAM DEL first (even without a netns: the
  address must come back), then delete the link; a missing netns or link
  is success, and so is a repeated DEL.
- CHECK (``check_single_link``): IPAM CHECK, then the prevResult's
  container interface must exist with the expected kind, mode and MAC, and
  its addresses and routes must be in place.
- STATUS / GC: forwarded to IPAM when the config has an IPAM type.

pycni.net is imported inside the functions: a VERSION call never pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any

from pycni.ipam.delegate import ipam_add, ipam_check, ipam_del, ipam_gc, ipam_status, ipam_type, released_on_failure
from pycni.plugins.common import assemble_result, find_interface, require_ips
from pycni.plugins.steps import undone_on_failure
from pycni.spec.errors import CniError, InvalidConfig

if TYPE_CHECKING:
    from pycni.net.links import LinkInfo
    from pycni.skel import CmdArgs
    from pycni.spec.result import DNS, Interface, IPConfig, Result, Route

__all__ = [
    "Expected",
    "add_single_link",
    "check_single_link",
    "configure_link",
    "container_interface",
    "del_single_link",
    "delete_container_link",
    "gc_ipam",
    "require_prev_result",
    "resolve_master",
    "status_ipam",
    "verify_addresses",
    "verify_routes",
]


# --------------------------------------------------------------------------
# Small pieces
# --------------------------------------------------------------------------


def renderable(result: Result, version: str) -> None:
    """Fail now (so the ADD is undone) if ``result`` cannot be printed in ``version``.

    0.1.0/0.2.0 results must carry an IP: an L2-only attachment cannot be
    reported in them.
    """
    result.to_wire(version)


def configure_link(ifname: str, result: Result, notify: bool) -> None:
    """Inside the container: announce the link's addresses on change, then ConfigureIface."""
    from pycni.net.configure import configure_iface
    from pycni.net.errors import NetError
    from pycni.net.sysctl import iface_key, write_sysctl

    if notify:
        # An optimisation, as in the reference: IPv6 may be disabled, the knobs missing.
        with suppress(NetError):
            write_sysctl(iface_key(4, ifname, "arp_notify"), 1)
        with suppress(NetError):
            write_sysctl(iface_key(6, ifname, "ndisc_notify"), 1)
    configure_iface(ifname, result)


def delete_container_link(netns: str, ifname: str) -> bool:
    """Delete ``ifname`` in ``netns``; a missing netns, a non-netns path or a missing link is False."""
    from pycni.net.errors import NotANetns
    from pycni.net.links import delete_link

    try:
        return delete_link(ifname, netns, missing_ok=True)
    except NotANetns:
        return False  # the container is gone; there is nothing of ours to delete in there


def status_ipam(args: CmdArgs) -> None:
    """STATUS: the IPAM delegate's, when the network has IPAM."""
    if ipam_type(args):
        ipam_status(args)


def gc_ipam(args: CmdArgs) -> None:
    """GC: forwarded to the IPAM delegate, when the network has IPAM."""
    if ipam_type(args):
        ipam_gc(args)


def ipam_status_and_gc(
    parse_conf: Callable[[Mapping[str, Any]], object],
) -> tuple[Callable[[CmdArgs], None], Callable[[CmdArgs], None]]:
    """A link plugin's STATUS and GC: check the config parses, then forward to IPAM (if any)."""

    def cmd_status(args: CmdArgs) -> None:
        parse_conf(args.config)
        status_ipam(args)

    def cmd_gc(args: CmdArgs) -> None:
        parse_conf(args.config)
        gc_ipam(args)

    return cmd_status, cmd_gc


def resolve_master(master: str, args: CmdArgs, *, in_container: bool, max_mtu_of: int | None = None) -> LinkInfo:
    """The parent link: ``master``, or the interface of the first default route.

    Looked up in the host netns, or in the container's with
    ``in_container`` (``linkInContainer``). ``max_mtu_of``: a requested MTU
    that must not exceed the master's. Errors name the config key.
    """
    from pycni.net.errors import LinkNotFound
    from pycni.net.links import get_link
    from pycni.net.netns import run_in_netns
    from pycni.net.routes import default_route_interface

    where = " in the container netns" if in_container else ""
    if not master:
        found = run_in_netns(args.netns, default_route_interface) if in_container else default_route_interface()
        if not found:
            raise InvalidConfig(f"master: not set, and there is no default route{where} to take it from")
        master = found
    try:
        link = run_in_netns(args.netns, get_link, master) if in_container else get_link(master)
    except LinkNotFound as exc:
        raise InvalidConfig(f'master: link "{master}" not found{where}') from exc
    if max_mtu_of is not None and max_mtu_of > link.mtu:
        raise InvalidConfig(f'mtu: {max_mtu_of} is larger than the MTU of master "{master}" ({link.mtu})')
    return link


# --------------------------------------------------------------------------
# ADD / DEL
# --------------------------------------------------------------------------


def add_single_link(
    args: CmdArgs,
    *,
    create: Callable[[], LinkInfo],
    use_ipam: bool,
    dns: DNS | None,
    undo: Callable[[], object] | None = None,
    reuse: Result | None = None,
    notify: bool = True,
) -> Result:
    """The ADD recipe: make the link, then address it (or just set it up).

    ``create`` makes ``args.ifname`` in ``args.netns`` and returns it;
    ``undo`` reverses it (default: delete the link). ``reuse`` is a
    prevResult whose IPs and routes are applied instead of running IPAM
    (chained ipvlan). ``notify`` sets arp_notify/ndisc_notify before
    addressing. ``dns`` (the config's, if set) replaces IPAM's DNS.
    """
    from pycni.net.links import set_link_up
    from pycni.net.netns import run_in_netns
    from pycni.spec.result import Interface

    link = create()
    undo = undo or (lambda: delete_container_link(args.netns, args.ifname))
    with undone_on_failure(undo, f"delete link '{args.ifname}'"):
        iface = Interface(name=link.name, mac=link.mac, sandbox=args.netns)
        if not use_ipam and reuse is None:
            result = assemble_result(args.cni_version, [iface], 0, None, dns)
            renderable(result, args.cni_version)
            run_in_netns(args.netns, set_link_up, args.ifname)
            return result
        ipam_result = reuse if reuse is not None else ipam_add(args)
        with nullcontext() if reuse is not None else released_on_failure(args):
            require_ips(ipam_result, ipam_type(args) or "prevResult")
            result = assemble_result(args.cni_version, [iface], 0, ipam_result, dns)
            renderable(result, args.cni_version)
            run_in_netns(args.netns, configure_link, args.ifname, result, notify)
    return result


def del_single_link(args: CmdArgs, *, use_ipam: bool) -> None:
    """The DEL recipe: IPAM DEL, then the link; idempotent, tolerant of a vanished netns."""
    if use_ipam:
        ipam_del(args)
    if args.netns:
        delete_container_link(args.netns, args.ifname)


# --------------------------------------------------------------------------
# CHECK
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What CHECK requires of the container link beyond the prevResult's MAC, addresses and routes."""

    kind: str | None = None  # IFLA_INFO_KIND ("macvlan", "veth", "tun", ...); None: any
    mode: str | None = None  # macvlan/ipvlan mode
    vlan_id: int | None = None
    up: bool = False  # must be administratively up


def require_prev_result(args: CmdArgs, plugin: str) -> Result:
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig(f"prevResult: {plugin} CHECK requires the result of the ADD")
    return prev


def container_interface(prev: Result, args: CmdArgs) -> tuple[int, Interface]:
    """The prevResult's entry for ``args.ifname`` in ``args.netns``."""
    found = find_interface(prev, args.ifname, sandbox=args.netns)
    if found is None:
        raise CniError(f"prevResult has no interface '{args.ifname}' in netns '{args.netns}'")
    return found


def check_single_link(args: CmdArgs, *, plugin: str, use_ipam: bool, expected: Expected) -> None:
    """The CHECK recipe: IPAM CHECK, then the container link as the prevResult describes it."""
    from pycni.net.netns import run_in_netns

    if use_ipam:
        ipam_check(args)
    prev = require_prev_result(args, plugin)
    index, iface = container_interface(prev, args)
    run_in_netns(args.netns, verify_link, iface, index, prev, expected)


def verify_link(iface: Interface, index: int, result: Result, expected: Expected) -> None:
    """Inside the container: the link, its addresses and the result's routes are as recorded."""
    from pycni.net.errors import LinkNotFound
    from pycni.net.links import get_link

    try:
        link = get_link(iface.name)
    except LinkNotFound as exc:
        raise CniError(f"interface '{iface.name}' from prevResult not found in the container") from exc
    if expected.kind is not None and link.kind != expected.kind:
        raise CniError(f"interface '{iface.name}' is of kind '{link.kind or 'device'}', expected '{expected.kind}'")
    if expected.mode is not None and link.mode != expected.mode:
        raise CniError(f"interface '{iface.name}' is in mode '{link.mode}', expected '{expected.mode}'")
    if expected.vlan_id is not None and link.vlan_id != expected.vlan_id:
        raise CniError(f"interface '{iface.name}' has VLAN ID {link.vlan_id}, expected {expected.vlan_id}")
    if iface.mac and iface.mac.lower() != link.mac.lower():
        raise CniError(f"interface '{iface.name}' has MAC {link.mac}, prevResult says {iface.mac}")
    if expected.up and not link.up:
        raise CniError(f"interface '{iface.name}' is down")
    own = [ip for ip in result.ips if ip.interface == index]
    verify_addresses(iface.name, own)
    verify_routes(iface.name, own, result.routes)


def verify_addresses(ifname: str, ips: Sequence[IPConfig]) -> None:
    """Every address (with its prefix) is on ``ifname``."""
    from pycni.net.addrs import list_addresses

    present = set(list_addresses(ifname))
    for ipc in ips:
        if ipc.address not in present:
            raise CniError(f"address {ipc.address} from prevResult not found on interface '{ifname}'")


def verify_routes(ifname: str, ips: Sequence[IPConfig], routes: Sequence[Route]) -> None:
    """Every route exists with the next hop ConfigureIface gave it.

    A route without ``gw`` was installed via its family's first gateway
    (when there is one); the table is the route's own or main. The device
    is not compared, so a later plugin may move a route to another link.
    """
    from pycni.net.routes import RT_TABLE_MAIN, list_routes

    gateways: dict[int, IPv4Address | IPv6Address] = {}
    for ipc in ips:
        if ipc.gateway is not None:
            gateways.setdefault(ipc.address.version, ipc.gateway)
    for route in routes:
        gw = route.gw if route.gw is not None else gateways.get(route.dst.version)
        table = route.table if route.table is not None else RT_TABLE_MAIN
        present = list_routes(family=4 if route.dst.version == 4 else 6, table=table)
        if not any(r.dst == route.dst and (gw is None or r.gw == gw) for r in present):
            via = f" via {gw}" if gw is not None else ""
            raise CniError(f"route {route.dst}{via} from prevResult not found (interface '{ifname}', table {table})")
