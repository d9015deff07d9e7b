"""ipvlan: an IP-addressed sub-interface of a host link (sharing its MAC), inside the container.

Config (spec 6.4): ``master`` (default: the interface of the first default
route; when chained after a plugin whose prevResult names exactly one
interface, that interface), ``mode`` (l2, l3, l3s), ``mtu`` (at most the
master's), ``linkInContainer``, ``ipam`` (required unless chained with a
prevResult that carries IPs, which are then applied instead), ``dns``.

The result lists only the ipvlan (a chained prevResult's interfaces are
replaced). DEL does not resolve the master (the reference does, and fails
when the default route or the chained master is gone). Kernels without
ipvlan fail ADD with "kernel does not support link type 'ipvlan'" before
any address is reserved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pycni import skel
from pycni.plugins.attach import (
    Expected,
    add_single_link,
    check_single_link,
    del_single_link,
    gc_ipam,
    resolve_master,
    status_ipam,
)
from pycni.plugins.common import dns_from_conf
from pycni.plugins.linkconf import read_choice, read_ipam_type, read_link_name, read_mtu
from pycni.spec.errors import InvalidConfig
from pycni.spec.fields import read_bool

if TYPE_CHECKING:
    from pycni.net.links import LinkInfo
    from pycni.net.stacked import IpvlanMode
    from pycni.spec.result import DNS, Result

MODES = ("l2", "l3", "l3s")


@dataclass(frozen=True)
class IpvlanConf:
    master: str  # "" = chained prevResult's interface, else the default route's
    mode: str
    mtu: int | None
    link_in_container: bool
    ipam_type: str
    dns: DNS | None


def parse_conf(config: Mapping[str, Any]) -> IpvlanConf:
    ipam_type = read_ipam_type(config)
    if not ipam_type and config.get("prevResult") is None:
        raise InvalidConfig('ipam: ipvlan requires an IPAM configuration ("ipam": {"type": ...}) unless chained')
    return IpvlanConf(
        master=read_link_name(config, "master"),
        mode=read_choice(config, "mode", MODES, "l2"),
        mtu=read_mtu(config),
        link_in_container=read_bool(config, "linkInContainer", ""),
        ipam_type=ipam_type,
        dns=dns_from_conf(config),
    )


def _chained_master(args: skel.CmdArgs) -> str:
    """With no ``master``, a chained ipvlan sits on the one interface the prevResult names."""
    prev = args.prev_result()
    if prev is None:
        return ""
    if len(prev.interfaces) != 1:
        raise InvalidConfig(
            f"master: not set, and the prevResult has {len(prev.interfaces)} interfaces, not exactly one"
            " (chained master failure)"
        )
    return prev.interfaces[0].name


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = parse_conf(args.config)
    master_name = conf.master or _chained_master(args)
    master = resolve_master(master_name, args, in_container=conf.link_in_container, max_mtu_of=conf.mtu)
    reuse = None
    if not conf.ipam_type:
        prev = args.prev_result()
        if prev is None or not prev.ips:
            raise InvalidConfig("ipam: not set, and the prevResult carries no IPs to apply")
        reuse = prev

    def create() -> LinkInfo:
        from pycni.net.stacked import create_ipvlan

        return create_ipvlan(
            master.name,
            args.ifname,
            args.netns,
            mode=cast("IpvlanMode", conf.mode),
            mtu=conf.mtu,
            link_in_container=conf.link_in_container,
        )

    return add_single_link(args, create=create, use_ipam=reuse is None, reuse=reuse, dns=conf.dns)


def cmd_del(args: skel.CmdArgs) -> None:
    del_single_link(args, use_ipam=bool(read_ipam_type(args.config)))


def cmd_check(args: skel.CmdArgs) -> None:
    conf = parse_conf(args.config)
    if conf.master:
        resolve_master(conf.master, args, in_container=conf.link_in_container)
    expected = Expected(kind="ipvlan", mode=conf.mode)
    check_single_link(args, plugin="ipvlan", use_ipam=bool(conf.ipam_type), expected=expected)


def cmd_status(args: skel.CmdArgs) -> None:
    read_ipam_type(args.config)
    status_ipam(args)


def cmd_gc(args: skel.CmdArgs) -> None:
    read_ipam_type(args.config)
    gc_ipam(args)

