"""Apply a CNI result to an interface: the reference plugins' ConfigureIface.

Contract: ``configure_iface(ifname, result)`` must run inside the
container's namespace (``run_in_netns(netns, configure_iface, ifname,
result)``). It

1. requires ``result.interfaces``; every ``ips[i]`` with an ``interface``
   index must point at an interface named ``ifname`` (checked before any
   change); ips without an index are skipped;
2. if an IPv6 address is configured: enables IPv6 on ``lo`` and ``ifname``
   and sets ``keep_addr_on_down`` so the address survives a down/up;
3. adds every address, remembering the first IPv4 and IPv6 gateways;
4. sets the link up; if there is an IPv6 gateway, waits (50 ms polls, up to
   ``dad_timeout``) until no IPv6 address is tentative. DADFAILED is an
   error; a timeout is an error only if the link is operationally up;
5. adds every route on ``ifname`` via its ``gw`` or its family's remembered
   gateway, as an ECMP append, with priority/table/scope/mtu/advmss if set.
"""

from __future__ import annotations

import errno
import time
from ipaddress import IPv4Address, IPv6Address, IPv6Interface

from pycni.net.addrs import add_address, list_address_states
from pycni.net.errors import NetError
from pycni.net.links import get_link, set_link_up
from pycni.net.routes import add_route
from pycni.net.sysctl import ensure_sysctl, iface_key

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from pycni.spec.result import IPConfig, Result

__all__ = ["DAD_POLL", "DAD_TIMEOUT", "configure_iface", "settle_ipv6_addresses"]

DAD_TIMEOUT = 5.0
DAD_POLL = 0.05


def _own_ips(ifname: str, result: Result) -> list[IPConfig]:
    own: list[IPConfig] = []
    for ipc in result.ips:
        if ipc.interface is None:
            continue
        index = ipc.interface
        if not 0 <= index < len(result.interfaces) or result.interfaces[index].name != ifname:
            raise NetError(f"failed to add IP addr {ipc.address} to '{ifname}': invalid interface index")
        own.append(ipc)
    return own


def _enable_ipv6(ifname: str) -> None:
    # A container runtime may create namespaces with IPv6 disabled; an IPv6
    # address can only be added once it is enabled on the link (and on lo,
    # for local traffic to work).
    for link in ("lo", ifname):
        ensure_sysctl(iface_key(6, link, "disable_ipv6"), 0)
    try:
        ensure_sysctl(iface_key(6, ifname, "keep_addr_on_down"), 1)
    except NetError as exc:
        if exc.errno != errno.ENOENT:  # kernels before 4.6 lack the knob
            raise


def settle_ipv6_addresses(ifname: str, timeout: float = DAD_TIMEOUT, poll: float = DAD_POLL) -> None:
    """Wait until no IPv6 address on ``ifname`` is tentative; NetError on DADFAILED.

    Running out of time is an error only when the link is operationally up:
    a link without carrier never finishes DAD, and that is not ours to fail.
    """
    deadline = time.monotonic() + timeout
    while True:
        states = list_address_states(ifname, 6)
        failed = [s.address for s in states if s.dad_failed]
        if failed:
            raise NetError(f"failed to configure link '{ifname}': duplicate address detection failed for {failed[0]}")
        tentative = [s.address for s in states if s.tentative]
        if not tentative:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)
    if get_link(ifname).oper_state == "up":
        raise NetError(
            f"failed to configure link '{ifname}': address {tentative[0]} still tentative after {timeout:g}s"
        )


def configure_iface(ifname: str, result: Result, *, dad_timeout: float = DAD_TIMEOUT) -> None:
    """Configure ``ifname`` (in the current netns) with the result's addresses and routes."""
    if not result.interfaces:
        raise NetError(f"failed to configure link '{ifname}': no interfaces to configure")
    get_link(ifname)  # LinkNotFound before anything changes
    ips = _own_ips(ifname, result)

    if any(isinstance(ipc.address, IPv6Interface) for ipc in ips):
        _enable_ipv6(ifname)

    gw4: IPv4Address | None = None
    gw6: IPv6Address | None = None
    for ipc in ips:
        add_address(ifname, ipc.address)
        if isinstance(ipc.gateway, IPv4Address) and gw4 is None:
            gw4 = ipc.gateway
        elif isinstance(ipc.gateway, IPv6Address) and gw6 is None:
            gw6 = ipc.gateway

    set_link_up(ifname)
    if gw6 is not None:
        # Routes via the IPv6 gateway need a usable (non-tentative) source.
        settle_ipv6_addresses(ifname, dad_timeout)

    for route in result.routes:
        gw = route.gw if route.gw is not None else gw4 if route.dst.version == 4 else gw6
        add_route(
            route.dst,
            gw=gw,
            dev=ifname,
            priority=route.priority,
            table=route.table,
            scope=route.scope,
            mtu=route.mtu,
            advmss=route.advmss,
            append=True,
        )
