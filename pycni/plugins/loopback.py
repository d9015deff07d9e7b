"""The loopback plugin: set ``lo`` up in the container's network namespace.

CNI_IFNAME is ignored: the interface is always ``lo``. There are no
config keys.

- ADD sets ``lo`` up; an address on it that is not a loopback address is an
  error. The result is the ``prevResult`` unchanged when there is one (a
  chained loopback must not hide earlier plugins' work); otherwise
  ``lo`` (MAC 00:00:00:00:00:00, sandbox = CNI_NETNS) with its first IPv4
  and first IPv6 address.
- DEL sets ``lo`` down; an empty CNI_NETNS or a namespace that no longer
  exists is success.
- CHECK fails unless ``lo`` is up.
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from pycni import skel
from pycni.spec.errors import CniError

if TYPE_CHECKING:
    from ipaddress import IPv4Interface, IPv6Interface

    from pycni.spec.result import Result

__all__ = ["cmd_add", "cmd_check", "cmd_del"]

LOOPBACK = "lo"
LOOPBACK_MAC = "00:00:00:00:00:00"


def _set_up() -> list[IPv4Interface | IPv6Interface]:
    """In the container: ``lo`` up; its first IPv4 and first IPv6 address."""
    from pycni.net.addrs import list_address_states
    from pycni.net.links import set_link_up

    set_link_up(LOOPBACK)
    addresses = [state.address for state in list_address_states(LOOPBACK)]
    for address in addresses:
        if not address.ip.is_loopback:
            raise CniError(f'loopback interface found with non-loopback address "{address.ip}"')
    firsts = [next((a for a in addresses if a.version == v), None) for v in (4, 6)]
    return [a for a in firsts if a is not None]


def cmd_add(args: skel.CmdArgs) -> Result:
    from pycni.net.netns import run_in_netns
    from pycni.spec.result import Interface, IPConfig, Result

    addresses = run_in_netns(args.netns, _set_up)
    prev = args.prev_result()
    if prev is not None:
        return prev
    return Result(
        cni_version=args.cni_version,
        interfaces=(Interface(name=LOOPBACK, mac=LOOPBACK_MAC, sandbox=args.netns),),
        ips=tuple(IPConfig(address=address, interface=0) for address in addresses),
    )


def cmd_del(args: skel.CmdArgs) -> None:
    if not args.netns:
        return
    from pycni.net.errors import NetnsNotFound
    from pycni.net.links import set_link_down
    from pycni.net.netns import run_in_netns

    with suppress(NetnsNotFound):  # the container is gone, and its loopback with it
        run_in_netns(args.netns, set_link_down, LOOPBACK)


def cmd_check(args: skel.CmdArgs) -> None:
    from pycni.net.links import get_link

    if not get_link(LOOPBACK, args.netns).up:
        raise CniError("loopback interface is down")

