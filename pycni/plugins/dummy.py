"""dummy: a dummy link (no carrier, no peer) in the container, addressed by IPAM.

Config (spec 6.8): ``ipam`` (required), ``mtu``, ``dns``. Useful to give a
container an address that is reachable only through routes others set up.
Kernels without the dummy driver fail ADD with "kernel does not support
link type 'dummy'" before any address is reserved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycni import skel
from pycni.plugins.attach import Expected, add_single_link, check_single_link, del_single_link, ipam_status_and_gc
from pycni.plugins.common import dns_from_conf
from pycni.plugins.linkconf import read_ipam_type, read_mtu

if TYPE_CHECKING:
    from pycni.net.links import LinkInfo
    from pycni.spec.result import DNS, Result


@dataclass(frozen=True)
class DummyConf:
    mtu: int | None
    ipam_type: str
    dns: DNS | None


def parse_conf(config: Mapping[str, Any]) -> DummyConf:
    return DummyConf(
        mtu=read_mtu(config),
        ipam_type=read_ipam_type(config, required_by="dummy"),
        dns=dns_from_conf(config),
    )


def cmd_add(args: skel.CmdArgs) -> Result:
    conf = parse_conf(args.config)

    def create() -> LinkInfo:
        from pycni.net.stacked import create_dummy

        return create_dummy(args.ifname, args.netns, mtu=conf.mtu)

    return add_single_link(args, create=create, use_ipam=True, dns=conf.dns, notify=False)


def cmd_del(args: skel.CmdArgs) -> None:
    del_single_link(args, use_ipam=bool(read_ipam_type(args.config)))


def cmd_check(args: skel.CmdArgs) -> None:
    parse_conf(args.config)
    check_single_link(args, plugin="dummy", use_ipam=True, expected=Expected(kind="dummy", up=True))


cmd_status, cmd_gc = ipam_status_and_gc(parse_conf)

