"""The bandwidth plugin's commands: shape a veth attachment with TBF qdiscs.

ADD needs the host-side peer of the container's veth: the container
interface must be a veth whose peer is one of prevResult's host interfaces
(no sandbox). Ingress (into the container) is a TBF root qdisc on that host
veth, whose egress is the container's ingress. Egress (out of the
container) is shaped on an ifb: everything arriving on the host veth is
redirected there (u32 match-all + mirred), and the ifb's TBF root qdisc
releases it at the rate. The ifb is appended to the result's interfaces.

The ifb carries the attachment's owner tag in its link alias: DEL deletes
it (a missing one is success; qdiscs on the host veth vanish with the
veth), GC deletes the ifbs of this network whose attachment is not in the
valid set, and CHECK compares the installed qdiscs with the config.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pycni.net import tc
from pycni.net.errors import LinkExists, LinkNotFound, NetError, NetnsNotFound
from pycni.net.links import LinkInfo, delete_link, get_link, get_link_by_index, list_links, set_link_up
from pycni.net.netns import netlink_session, run_in_netns
from pycni.plugins.bandwidth.conf import BandwidthConf, Limit, ifb_name, parse_conf
from pycni.plugins.common import owner_tag, parse_owner_tag
from pycni.spec.errors import CniError, InvalidConfig

if TYPE_CHECKING:
    from pycni.skel import CmdArgs
    from pycni.spec.result import Result

PLUGIN_TYPE = "bandwidth"


def cmd_add(args: CmdArgs) -> Result:
    from pycni.spec.result import Interface

    conf = parse_conf(args.config)
    prev = _require_prev_result(args)
    if conf.is_zero:
        return prev
    with netlink_session():
        host = find_host_veth(args, prev)
        if conf.ingress is not None:
            tc.set_tbf(host.name, _params(conf.ingress))
        if conf.egress is None:
            return prev
        ifb, created = _ensure_ifb(args, host)
        try:
            tc.redirect_ingress(host.name, ifb.name)
            tc.set_tbf(ifb.name, _params(conf.egress))
        except BaseException:
            if created:
                delete_link(ifb.name, missing_ok=True)
            raise
    if any(iface.name == ifb.name and not iface.sandbox for iface in prev.interfaces):
        return prev
    return replace(prev, interfaces=(*prev.interfaces, Interface(name=ifb.name, mac=ifb.mac)))


def cmd_del(args: CmdArgs) -> None:
    # No config validation: a DEL must clean up even after an ADD that
    # failed on a bad value. Host side only: the netns may be gone.
    name = ifb_name(args.network_name, args.container_id, args.ifname)
    try:
        link = get_link(name)
    except LinkNotFound:
        return
    if link.kind != "ifb" or link.alias not in ("", _tag(args)):
        return  # not ours
    delete_link(name, missing_ok=True)


def cmd_check(args: CmdArgs) -> None:
    conf = parse_conf(args.config)
    prev = _require_prev_result(args)
    if conf.is_zero:
        return
    with netlink_session():
        host = find_host_veth(args, prev)
        if conf.ingress is not None:
            _check_tbf(host.name, _params(conf.ingress), "ingress")
        if conf.egress is not None:
            ifb = _check_ifb(args, host)
            _check_tbf(ifb.name, _params(conf.egress), "egress")


def cmd_gc(args: CmdArgs) -> None:
    """Delete this network's ifbs whose attachment is not in the valid set."""
    valid = set(args.valid_attachments())
    network_tag = _network_tag(args.network_name)
    failures: list[str] = []
    with netlink_session():
        for link in list_links():
            owner = parse_owner_tag(link.alias) if link.kind == "ifb" else None
            if owner is None or owner[0] != PLUGIN_TYPE or owner[1] != network_tag:
                continue
            _, _, container_id, ifname = owner
            if (container_id, ifname) in valid or link.name != ifb_name(args.network_name, container_id, ifname):
                continue
            try:
                delete_link(link.name, missing_ok=True)
            except NetError as exc:
                failures.append(str(exc))
    if failures:
        raise CniError(f"failed to delete {len(failures)} stale ifb device(s)", "; ".join(failures))


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _params(limit: Limit) -> tc.TbfParams:
    return tc.tbf_params(limit.rate, limit.burst)


def _tag(args: CmdArgs) -> str:
    return owner_tag(PLUGIN_TYPE, args.network_name, args.container_id, args.ifname)


def _network_tag(network: str) -> str:
    """The network as owner tags spell it (long names are hashed)."""
    parsed = parse_owner_tag(owner_tag(PLUGIN_TYPE, network, "", ""))
    assert parsed is not None
    return parsed[1]


def _require_prev_result(args: CmdArgs) -> Result:
    prev = args.prev_result()
    if prev is None:
        raise InvalidConfig(f"prevResult: missing; {PLUGIN_TYPE} must be called as a chained plugin")
    return prev


def find_host_veth(args: CmdArgs, prev: Result) -> LinkInfo:
    """The host end of the container's veth CNI_IFNAME, which prevResult must list as a host interface."""
    try:
        container = run_in_netns(args.netns, get_link, args.ifname)
    except LinkNotFound as exc:
        raise CniError(f"container interface '{args.ifname}' not found in netns '{args.netns}'") from exc
    except NetnsNotFound as exc:
        raise CniError(f"failed to open netns '{args.netns}': the container's network namespace is gone") from exc
    if container.kind != "veth" or container.peer_index is None or container.link_netnsid is None:
        kind = f"a {container.kind} device" if container.kind else "a physical device"
        detail = "" if container.kind != "veth" else " whose peer is not in another namespace"
        raise InvalidConfig(
            f"interface '{args.ifname}' in the container is {kind}{detail}: {PLUGIN_TYPE} shapes traffic on the "
            "host-side peer of a veth pair, so it needs a veth-based main plugin (bridge, ptp, ...)"
        )
    host_names = [iface.name for iface in prev.interfaces if not iface.sandbox]
    try:
        host = get_link_by_index(container.peer_index)
    except LinkNotFound:
        host = None
    if host is None or host.kind != "veth" or host.peer_index != container.index or host.name not in host_names:
        listed = ", ".join(repr(n) for n in host_names) or "none"
        raise CniError(
            f"no host interface in prevResult is the veth peer of '{args.ifname}' "
            f"(host interfaces listed: {listed}); is the main plugin veth-based?"
        )
    return host


def _ensure_ifb(args: CmdArgs, host: LinkInfo) -> tuple[LinkInfo, bool]:
    """The attachment's ifb (MTU of the host veth); True when this call created it."""
    name, tag = ifb_name(args.network_name, args.container_id, args.ifname), _tag(args)
    try:
        return tc.create_ifb(name, mtu=host.mtu, alias=tag), True
    except LinkExists:
        existing = get_link(name)
        if existing.kind != "ifb" or existing.alias != tag:
            msg = f"failed to create ifb '{name}': a link of that name exists and is not this attachment's"
            raise CniError(msg) from None
    # A repeated ADD (after a failure further down the chain): reuse it.
    set_link_up(name)
    return existing, False


def _check_ifb(args: CmdArgs, host: LinkInfo) -> LinkInfo:
    name = ifb_name(args.network_name, args.container_id, args.ifname)
    try:
        ifb = get_link(name)
    except LinkNotFound as exc:
        raise CniError(f"egress shaping: ifb '{name}' not found") from exc
    if ifb.kind != "ifb" or ifb.alias != _tag(args):
        raise CniError(f"egress shaping: link '{name}' is not this attachment's ifb")
    if not ifb.up:
        raise CniError(f"egress shaping: ifb '{name}' is down")
    if ifb.index not in tc.ingress_redirects(host.name):
        raise CniError(f"egress shaping: traffic arriving on '{host.name}' is not redirected to ifb '{name}'")
    return ifb


def _check_tbf(dev: str, want: tc.TbfParams, direction: str) -> None:
    qdisc = next((q for q in tc.list_qdiscs(dev) if q.is_root and q.kind == "tbf"), None)
    if qdisc is None:
        raise CniError(f"{direction} shaping: no tbf qdisc on '{dev}'")
    # The buffer is float arithmetic on rate and burst; a tc or Go plugin
    # evaluating it in another order may land one microsecond away.
    slack = tc.psched_tick_in_usec() + 1
    if qdisc.rate != want.rate:
        raise CniError(f"{direction} shaping: tbf on '{dev}' has rate {qdisc.rate} B/s, expected {want.rate}")
    if qdisc.buffer is None or abs(qdisc.buffer - want.buffer) > slack:
        raise CniError(f"{direction} shaping: tbf on '{dev}' has buffer {qdisc.buffer} ticks, expected {want.buffer}")
    if qdisc.limit != want.limit:
        raise CniError(f"{direction} shaping: tbf on '{dev}' has limit {qdisc.limit} B, expected {want.limit}")


__all__ = ["BandwidthConf", "cmd_add", "cmd_check", "cmd_del", "cmd_gc", "find_host_veth"]
