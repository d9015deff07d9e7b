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

from pycni.ipam.delegate import ipam_del, ipam_gc
from pycni.plugins.steps import Attempts, container_addresses, delete_container_link_with_addresses
from pycni.spec.config import ipam_type_of
from pycni.spec.errors import InvalidConfig
from pycni.spec.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from pycni.skel import CmdArgs

__all__ = ["cmd_del", "cmd_gc"]


@record
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
        ipam_type=_lenient_ipam_type(args),
        ip_masq=lookup(args.config, "ipMasq") is True,
        macspoofchk=lookup(args.config, "macspoofchk") is True,
    )


def _lenient_ipam_type(args: CmdArgs) -> str:
    try:
        return ipam_type_of(args.config)
    except InvalidConfig:
        return ""


def cmd_del(args: CmdArgs) -> None:
    conf = _teardown_conf(args)
    attempt = Attempts()
    if conf.ipam_type:
        attempt(ipam_del, args)
    # The rules of an iptables masquerade are found by address: the link's, else the prevResult's.
    _, addresses = attempt(delete_container_link_with_addresses, args) or (False, [])
    addresses = addresses or container_addresses(args)
    if conf.macspoofchk:
        from pycni.net.firewall.spoofcheck import teardown_spoofcheck

        attempt(teardown_spoofcheck, args.container_id, args.ifname)
    if conf.ip_masq:
        from pycni.net.firewall.masquerade import teardown_masquerade

        attempt(teardown_masquerade, conf.network, args.ifname, args.container_id, addresses)
    attempt.raise_first()


def cmd_gc(args: CmdArgs) -> None:
    """IPAM GC, then the host-side rules of attachments no longer valid; every step runs."""
    from pycni.net.firewall.masquerade import gc_masquerade
    from pycni.net.firewall.spoofcheck import gc_spoofcheck
    from pycni.net.links import link_exists

    conf = _teardown_conf(args)
    valid = args.valid_attachments()
    attempt = Attempts()
    if conf.ipam_type:
        attempt(ipam_gc, args)
    attempt(gc_masquerade, conf.network, valid)
    attempt(gc_spoofcheck, valid, link_exists)
    attempt.raise_first()
