"""vlan: an 802.1q VLAN sub-interface of a host link, inside the container.

Config (spec 6.5): ``master`` (required), ``vlanId`` (0-4094, default 0),
``mtu`` (at most the master's), ``linkInContainer``, ``ipam`` (required),
``dns``. Each container needs its own (master, vlanId) pair: the kernel
refuses a second VLAN with the same ID on one master.

DEL releases IPAM and deletes the link without needing the master (the
reference fails DEL once the master is gone). Kernels without 802.1q fail
ADD with "kernel does not support link type 'vlan'" before any address is
reserved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycni import skel
from pycni.plugins.attach import (
    Expected,
    add_single_link,
    check_single_link,
    del_single_link,
    ipam_status_and_gc,
    resolve_master,
)
from pycni.plugins.common import dns_from_conf
from pycni.plugins.linkconf import read_ipam_type, read_link_name, read_mtu
from pycni.spec.fields import read_bool, read_int

if TYPE_CHECKING:
    from pycni.net.links import LinkInfo
    from pycni.spec.result import DNS, Result

MAX_VLAN_ID = 4094


@dataclass(frozen=True)
class VlanConf:
    master: str
    vlan_id: int
    mtu: int | None
    link_in_container: bool
    ipam_type: str
    dns: DNS | None


def _read_vlan_id(config: Mapping[str, Any]) -> int:
    in_parens = "{value} is out of range ({min}-{max})"
    return read_int(config, "vlanId", "", min=0, max=MAX_VLAN_ID, out_of_range=in_parens) or 0


def parse_conf(config: Mapping[str, Any]) -> VlanConf:
    return VlanConf(
        master=read_link_name(config, "master", required=True),
        vlan_id=_read_vlan_id(config),
        mtu=read_mtu(config),
        link_in_container=read_bool(config, "linkInContainer", ""),
        ipam_type=read_ipam_type(config, required_by="vlan"),
        dns=dns_from_conf(config),
    )


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = parse_conf(args.config)
    master = resolve_master(conf.master, args, in_container=conf.link_in_container, max_mtu_of=conf.mtu)

    def create() -> LinkInfo:
        from pycni.net.stacked import create_vlan

        return create_vlan(
            master.name, conf.vlan_id, args.ifname, args.netns, mtu=conf.mtu, link_in_container=conf.link_in_container
        )

    return add_single_link(args, create=create, use_ipam=True, dns=conf.dns)


def cmd_del(args: skel.CmdArgs) -> None:
    del_single_link(args, use_ipam=bool(read_ipam_type(args.config)))


def cmd_check(args: skel.CmdArgs) -> None:
    conf = parse_conf(args.config)
    resolve_master(conf.master, args, in_container=conf.link_in_container)
    expected = Expected(kind="vlan", vlan_id=conf.vlan_id)
    check_single_link(args, plugin="vlan", use_ipam=True, expected=expected)


cmd_status, cmd_gc = ipam_status_and_gc(parse_conf)

