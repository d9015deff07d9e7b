"""sbr's commands and the work they do inside the container's namespace."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import suppress
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_network
from typing import TYPE_CHECKING, Any, TypeVar

from pycni.net import routes as rt
from pycni.net.addrs import list_addresses
from pycni.net.errors import LinkNotFound, NetnsNotFound, NotANetns
from pycni.net.links import get_link
from pycni.net.netns import open_netns, run_in_netns
from pycni.net.rules import RuleInfo, add_rule, del_rule, free_table, list_rules
from pycni.plugins.sbr.conf import SbrConf, parse_conf, relevant_ips
from pycni.rundir import netns_lock, run_dir
from pycni.spec.errors import CniError, InvalidConfig

if TYPE_CHECKING:
    from pycni.skel import CmdArgs
    from pycni.spec.result import IPConfig, Result

__all__ = ["cmd_add", "cmd_check", "cmd_del"]

T = TypeVar("T")

PLUGIN_TYPE = "sbr"
FIRST_TABLE = 100
_RTN_UNICAST = 1
_LINK_LOCAL_V6 = IPv6Network("fe80::/10")


def cmd_add(args: CmdArgs) -> Result:
    conf = parse_conf(args.config)
    prev = _require_prev_result(args)
    ips = _require_ips(prev, args.ifname)
    _in_locked_netns(args, _add_here, conf, args.ifname, ips)
    return prev


def cmd_del(args: CmdArgs) -> None:
    try:
        table = parse_conf(args.config).table
    except InvalidConfig:
        table = None  # ADD failed on this config: delete by address alone
    prev = args.prev_result()
    known = [ip.address.ip for ip in relevant_ips(prev, args.ifname)] if prev is not None else []
    if not args.netns:
        return  # the rules lived in the namespace, which the runtime has removed
    try:
        _in_locked_netns(args, _del_here, table, args.ifname, known)
    except (NetnsNotFound, NotANetns):
        return  # unlike the reference: a vanished namespace has no rules left to delete


def cmd_check(args: CmdArgs) -> None:
    conf = parse_conf(args.config)
    prev = _require_prev_result(args)
    ips = _require_ips(prev, args.ifname)
    _in_locked_netns(args, _check_here, conf, args.ifname, ips)


# --------------------------------------------------------------------------
# Inside the container
# --------------------------------------------------------------------------


def _host_network(address: IPv4Address | IPv6Address) -> Any:
    return ip_network(address)  # /32 or /128


def _add_here(conf: SbrConf, ifname: str, ips: Sequence[IPConfig]) -> None:
    get_link(ifname)  # LinkNotFound names the interface
    # A repeated ADD finds its rules in place: they are kept, not duplicated.
    existing = {(_rule_source(r), r.table) for r in list_rules()}
    if conf.table is not None:
        for ip in ips:
            if (ip.address.ip, conf.table) not in existing:
                add_rule(src=_host_network(ip.address.ip), table=conf.table)
        return
    families = {ip.family for ip in ips}
    moving = [r for r in rt.list_routes(dev=ifname) if r.dst.version in families and r.type == _RTN_UNICAST]
    for ip in ips:
        table = next((t for src, t in existing if src == ip.address.ip and t >= FIRST_TABLE), None)
        if table is None:
            table = free_table(FIRST_TABLE)
            add_rule(src=_host_network(ip.address.ip), table=table)
        gateway = conf.gateway(ip.family) or ip.gateway
        if gateway is not None:
            default = ip_network("0.0.0.0/0" if ip.family == 4 else "::/0")
            rt.add_route(default, gw=gateway, dev=ifname, table=table, replace=True)
        subnet = ip.address.network
        for route in moving:
            if route.dst.version != ip.family:
                continue
            belongs = route.src is None and route.gw is None
            if belongs or any(a is not None and a in subnet for a in (route.src, route.gw)):
                rt.add_route(
                    route.dst,
                    gw=route.gw,
                    dev=ifname,
                    table=table,
                    scope=route.scope,
                    src=route.src,
                    priority=route.priority,
                    mtu=route.mtu,
                    advmss=route.advmss,
                    replace=True,
                )
    # IPv6 link-local routes stay: leaving them would only break neighbour
    # discovery and fe80:: traffic on the link, which is never routed anyway.
    moving = [r for r in moving if not (isinstance(r.dst, IPv6Network) and r.dst.subnet_of(_LINK_LOCAL_V6))]
    if conf.add_source_hints:
        # The on-link subnet routes stay in main, now carrying the address as
        # source hint (same metric, so the kernel's own route is replaced).
        subnets = {ip.address.network for ip in ips}
        for ip in ips:
            on_link = [r for r in moving if r.dst == ip.address.network and r.gw is None]
            rt.add_route(
                ip.address.network,
                dev=ifname,
                scope=rt.RT_SCOPE_LINK if ip.family == 4 else None,
                src=ip.address.ip,
                priority=on_link[0].priority if on_link else None,
                replace=True,
            )
        moving = [r for r in moving if not (r.gw is None and r.dst in subnets)]
    for route in moving:
        rt.del_route(route.dst, gw=route.gw, dev=ifname, priority=route.priority, missing_ok=True)


def _del_here(table: int | None, ifname: str, known: Sequence[IPv4Address | IPv6Address]) -> None:
    addresses = set(known)
    with suppress(LinkNotFound):
        addresses.update(a.ip for a in list_addresses(ifname))
    for rule in list_rules():
        if _rule_source(rule) in addresses and (table is None or rule.table == table):
            del_rule(rule, missing_ok=True)


def _check_here(conf: SbrConf, ifname: str, ips: Sequence[IPConfig]) -> None:
    try:
        get_link(ifname)
    except LinkNotFound as exc:
        raise CniError(f"interface '{ifname}' not found in the container") from exc
    rules = list_rules()
    for ip in ips:
        address = ip.address.ip
        mine = [r for r in rules if _rule_source(r) == address and (conf.table is None or r.table == conf.table)]
        if not mine:
            wanted = conf.table if conf.table is not None else "its table"
            raise CniError(f"no rule 'from {address} lookup {wanted}' in the container")
        if conf.table is not None:
            continue
        table = mine[0].table
        in_table = rt.list_routes(dev=ifname, family=ip.family, table=table)
        gateway = conf.gateway(ip.family) or ip.gateway
        if gateway is not None and not any(r.dst.prefixlen == 0 and r.gw == gateway for r in in_table):
            raise CniError(f"table {table} (for {address}) has no default route via {gateway} on '{ifname}'")
        if not in_table:
            raise CniError(f"table {table} (for {address}) has no routes on '{ifname}'")


def _rule_source(rule: RuleInfo) -> IPv4Address | IPv6Address | None:
    """The address of a ``from <ip>/32|128`` rule, else None."""
    src = rule.src
    if src is None or src.prefixlen != src.max_prefixlen:
        return None
    return src.network_address


# --------------------------------------------------------------------------
# Preconditions
# --------------------------------------------------------------------------


def _require_prev_result(args: CmdArgs) -> Result:
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig(f"prevResult: missing; {PLUGIN_TYPE} must be called as a chained plugin")
    return prev


def _require_ips(prev: Result, ifname: str) -> list[IPConfig]:
    ips = relevant_ips(prev, ifname)
    if not ips:
        raise InvalidConfig(f"prevResult: no IP addresses for interface '{ifname}'")
    return ips


def _in_locked_netns(args: CmdArgs, fn: Callable[..., T], *fn_args: Any) -> T:
    """Run ``fn`` inside the container's netns while holding that namespace's sbr lock."""
    fd = open_netns(args.netns)
    try:
        with netns_lock(os.fstat(fd).st_ino, directory=os.path.join(run_dir(args.environ), PLUGIN_TYPE)):
            return run_in_netns(fd, fn, *fn_args)
    finally:
        os.close(fd)
