"""tap: a persistent tap device in the container (for VMs and user-space stacks).

Config (spec 6.9): ``mac`` (overridden by CNI_ARGS MAC and
runtimeConfig.mac), ``mtu``, ``multiQueue``, ``owner`` / ``group`` (uid /
gid allowed to attach; unset means anyone with CAP_NET_ADMIN), ``bridge``
(an existing bridge *inside the container* to enslave the tap to),
``selinuxContext`` (also spelled ``selinuxcontext``), ``ipam`` (optional:
without a type the tap is only set up), ``dns``.

The tap is always made with TUNSETIFF on /dev/net/tun inside the container
(IFF_TAP | IFF_VNET_HDR, plus IFF_MULTI_QUEUE), never by running
``ip tuntap``. ``selinuxContext`` is ignored on hosts without SELinux; on
an SELinux host it is refused (code 2) rather than silently creating the
tap with the wrong label.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycni import skel
from pycni.plugins.attach import Expected, add_single_link, check_single_link, del_single_link, ipam_status_and_gc
from pycni.plugins.common import dns_from_conf, requested_mac, validate_mac
from pycni.plugins.linkconf import read_ipam_type, read_link_name, read_mtu, read_uint32
from pycni.spec.errors import InvalidConfig, UnsupportedField
from pycni.spec.fields import read_bool, read_str

if TYPE_CHECKING:
    from pycni.net.links import LinkInfo
    from pycni.spec.result import DNS, Result


@dataclass(frozen=True)
class TapConf:
    mac: str
    mtu: int | None
    multi_queue: bool
    owner: int | None
    group: int | None
    selinux_context: str
    bridge: str
    ipam_type: str
    dns: DNS | None


def parse_conf(config: Mapping[str, Any]) -> TapConf:
    mac = read_str(config, "mac", "")
    if mac:
        validate_mac(mac, "mac")
    return TapConf(
        mac=mac,
        mtu=read_mtu(config),
        multi_queue=read_bool(config, "multiQueue", ""),
        owner=read_uint32(config, "owner"),
        group=read_uint32(config, "group"),
        selinux_context=read_str(config, "selinuxContext", ""),
        bridge=read_link_name(config, "bridge"),
        ipam_type=read_ipam_type(config),
        dns=dns_from_conf(config),
    )


def _attach_to_bridge(ifname: str, bridge: str) -> None:
    """Inside the container: enslave the tap to the existing bridge ``bridge``."""
    from pycni.net.errors import LinkNotFound
    from pycni.net.links import get_link, set_master

    try:
        kind = get_link(bridge).kind
    except LinkNotFound as exc:
        raise InvalidConfig(f'bridge: link "{bridge}" not found in the container netns') from exc
    if kind != "bridge":
        raise InvalidConfig(f"bridge: link \"{bridge}\" is not a bridge (kind '{kind or 'device'}')")
    set_master(ifname, bridge)


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = parse_conf(args.config)
    mac = requested_mac(args, conf.mac)
    if conf.selinux_context:
        from pycni.net.tap import selinux_enabled

        if selinux_enabled():
            context = conf.selinux_context
            raise UnsupportedField(f"selinuxContext: {context!r}: labelling taps is not supported by pycni")

    def create() -> LinkInfo:
        from pycni.net.netns import run_in_netns
        from pycni.net.tap import create_tap

        link = create_tap(
            args.ifname,
            args.netns,
            mtu=conf.mtu,
            mac=mac or None,
            multi_queue=conf.multi_queue,
            owner=conf.owner,
            group=conf.group,
        )
        if conf.bridge:
            from functools import partial

            from pycni.plugins.attach import delete_container_link
            from pycni.plugins.steps import undone_on_failure

            undo = partial(delete_container_link, args.netns, args.ifname)
            with undone_on_failure(undo, f"delete tap '{args.ifname}'"):
                run_in_netns(args.netns, _attach_to_bridge, args.ifname, conf.bridge)
        return link

    return add_single_link(args, create=create, use_ipam=bool(conf.ipam_type), dns=conf.dns)


def cmd_del(args: skel.CmdArgs) -> None:
    del_single_link(args, use_ipam=bool(read_ipam_type(args.config)))


def cmd_check(args: skel.CmdArgs) -> None:
    conf = parse_conf(args.config)
    check_single_link(args, plugin="tap", use_ipam=bool(conf.ipam_type), expected=Expected(kind="tun"))


cmd_status, cmd_gc = ipam_status_and_gc(parse_conf)

