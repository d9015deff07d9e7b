"""macvlan: a MAC-addressed sub-interface of a host link, inside the container.

Config (spec 6.3): ``master`` (default: the interface of the first default
route, in the host or, with ``linkInContainer``, in the container), ``mode``
(bridge, private, vepa, passthru), ``mtu`` (at most the master's), ``mac``
(overridden by CNI_ARGS MAC and runtimeConfig.mac), ``linkInContainer``,
``bcqueuelen``, ``ipam`` (optional: without a type the link is only set up),
``dns``.

ADD creates the macvlan straight into the container netns under its final
name, then addresses it; DEL releases IPAM and deletes the link without
looking at the master (so it works after the master is gone, unlike the
reference); CHECK also requires a configured master to exist.
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
    ipam_status_and_gc,
    resolve_master,
)
from pycni.plugins.common import dns_from_conf, requested_mac, validate_mac
from pycni.plugins.linkconf import read_choice, read_ipam_type, read_link_name, read_mtu, read_uint32
from pycni.spec.errors import UnsupportedField
from pycni.spec.fields import read_bool, read_str

if TYPE_CHECKING:
    from pycni.net.links import LinkInfo
    from pycni.net.stacked import MacvlanMode
    from pycni.spec.result import DNS, Result

MODES = ("bridge", "private", "vepa", "passthru")


@dataclass(frozen=True)
class MacvlanConf:
    master: str  # "" = the default route's interface
    mode: str
    mtu: int | None
    mac: str
    link_in_container: bool
    bc_queue_len: int | None
    ipam_type: str
    dns: DNS | None


def parse_conf(config: Mapping[str, Any]) -> MacvlanConf:
    mac = read_str(config, "mac", "")
    if mac:
        validate_mac(mac, "mac")
    bc_queue_len = read_uint32(config, "bcqueuelen")
    if bc_queue_len:
        # pyroute2 cannot encode IFLA_MACVLAN_BC_QUEUE_LEN yet; refuse rather than ignore it.
        raise UnsupportedField(f"bcqueuelen: {bc_queue_len} is not supported by pycni's macvlan yet")
    return MacvlanConf(
        master=read_link_name(config, "master"),
        mode=read_choice(config, "mode", MODES, "bridge"),
        mtu=read_mtu(config),
        mac=mac,
        link_in_container=read_bool(config, "linkInContainer", ""),
        bc_queue_len=bc_queue_len,
        ipam_type=read_ipam_type(config),
        dns=dns_from_conf(config),
    )


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = parse_conf(args.config)
    mac = requested_mac(args, conf.mac)
    master = resolve_master(conf.master, args, in_container=conf.link_in_container, max_mtu_of=conf.mtu)

    def create() -> LinkInfo:
        from pycni.net.stacked import create_macvlan

        return create_macvlan(
            master.name,
            args.ifname,
            args.netns,
            mode=cast("MacvlanMode", conf.mode),
            mtu=conf.mtu,
            mac=mac or None,
            link_in_container=conf.link_in_container,
        )

    return add_single_link(args, create=create, use_ipam=bool(conf.ipam_type), dns=conf.dns)


def cmd_del(args: skel.CmdArgs) -> None:
    # Only what DEL needs is read: a config that could never ADD must still DEL.
    del_single_link(args, use_ipam=bool(read_ipam_type(args.config)))


def cmd_check(args: skel.CmdArgs) -> None:
    conf = parse_conf(args.config)
    if conf.master:
        resolve_master(conf.master, args, in_container=conf.link_in_container)
    expected = Expected(kind="macvlan", mode=conf.mode)
    check_single_link(args, plugin="macvlan", use_ipam=bool(conf.ipam_type), expected=expected)


cmd_status, cmd_gc = ipam_status_and_gc(parse_conf)

