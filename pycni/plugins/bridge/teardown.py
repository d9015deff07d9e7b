"""DEL and GC for the bridge plugin: take an attachment apart, or what stale ones left.

DEL is best effort and idempotent: IPAM DEL first (while the interface
still exists, which a DHCP release needs; the reference deletes the link
first, plugins#791), then the container interface, the spoof-check and the
masquerade rules. Every step runs even if an earlier one failed; the first
error is reported. A missing netns or interface is success. The masquerade
rules go even when CNI_NETNS is empty or gone (the reference then leaks
them, plugins#810): nftables rules are found by their tag, iptables rules
by the addresses the interface had, else those of the prevResult, else the
container's chain name. The bridge, its addresses and forwarding stay.

DEL and GC read only what they need (network name, IPAM type, ``ipMasq``,
``macspoofchk``), leniently: a config that could never ADD must still DEL,
which a runtime runs after every failed ADD.

GC runs IPAM GC, then removes the masquerade rules of this network and the
spoof-check rules whose attachment is not in the valid set (see
pycni.net.spoofcheck.gc_spoofcheck for why those also need their host veth
gone); every step runs, the first error is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pycni.ipam.delegate import ipam_del, ipam_gc, ipam_type
from pycni.plugins.bridge.gateway import CONTAINER_INDEX
from pycni.plugins.common import find_interface
from pycni.spec.errors import CniError

if TYPE_CHECKING:
    from ipaddress import IPv4Interface, IPv6Interface

    from pycni.skel import CmdArgs

__all__ = ["cmd_del", "cmd_gc"]


@dataclass(frozen=True)
class _TeardownConf:
    network: str
    ipam_type: str
    ip_masq: bool
    macspoofchk: bool


def _teardown_conf(args: CmdArgs) -> _TeardownConf:
    """The settings DEL and GC act on; anything malformed reads as off (an ADD with it never got that far)."""
    from pycni.spec.fields import lookup

    return _TeardownConf(
        network=args.network_name,
        ipam_type=ipam_type(args),
        ip_masq=lookup(args.config, "ipMasq") is True,
        macspoofchk=lookup(args.config, "macspoofchk") is True,
    )


class _Attempts:
    """Runs steps that must all be tried; remembers their CniErrors and raises the first at the end."""

    def __init__(self) -> None:
        self.errors: list[CniError] = []

    def __call__(self, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except CniError as exc:
            self.errors.append(exc)
            return None

    def raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]


def cmd_del(args: CmdArgs) -> None:
    conf = _teardown_conf(args)
    attempt = _Attempts()
    if conf.ipam_type:
        attempt(lambda: ipam_del(args))
    addresses = attempt(lambda: _delete_container_link(args)) or _prev_addresses(args)
    if conf.macspoofchk:
        from pycni.net.firewall.spoofcheck import teardown_spoofcheck

        attempt(lambda: teardown_spoofcheck(args.container_id, args.ifname))
    if conf.ip_masq:
        from pycni.net.firewall.masquerade import teardown_masquerade

        attempt(lambda: teardown_masquerade(conf.network, args.ifname, args.container_id, addresses))
    attempt.raise_first()


def _delete_container_link(args: CmdArgs) -> list[IPv4Interface | IPv6Interface]:
    """Delete CNI_IFNAME in the container; return the addresses it had ([] if netns or link is gone)."""
    if not args.netns:
        return []
    from pycni.net.errors import NetnsNotFound
    from pycni.net.netns import run_in_netns

    try:
        return run_in_netns(args.netns, _read_and_delete, args.ifname)
    except NetnsNotFound:
        return []


def _read_and_delete(ifname: str) -> list[IPv4Interface | IPv6Interface]:
    from pycni.net.addrs import list_addresses
    from pycni.net.errors import LinkNotFound
    from pycni.net.links import delete_link

    try:
        addresses = list_addresses(ifname)
    except LinkNotFound:
        return []
    delete_link(ifname, missing_ok=True)
    return addresses


def _prev_addresses(args: CmdArgs) -> list[IPv4Interface | IPv6Interface]:
    """The container's addresses according to the prevResult ([] without a readable one)."""
    try:
        prev = args.prev_result()
    except CniError:
        return []
    if prev is None:
        return []
    found = find_interface(prev, args.ifname, args.netns or None)
    index = found[0] if found else CONTAINER_INDEX
    return [ipc.address for ipc in prev.ips if ipc.interface is None or ipc.interface == index]


def cmd_gc(args: CmdArgs) -> None:
    """IPAM GC, then the host-side rules of attachments no longer valid; every step runs."""
    from pycni.net.firewall.masquerade import gc_masquerade
    from pycni.net.firewall.spoofcheck import gc_spoofcheck
    from pycni.net.links import link_exists

    conf = _teardown_conf(args)
    valid = args.valid_attachments()
    attempt = _Attempts()
    if conf.ipam_type:
        attempt(lambda: ipam_gc(args))
    attempt(lambda: gc_masquerade(conf.network, valid))
    attempt(lambda: gc_spoofcheck(valid, link_exists))
    attempt.raise_first()
