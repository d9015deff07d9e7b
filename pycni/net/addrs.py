"""IP addresses on links, in the calling thread's network namespace.

Contract:

- Addresses are ``ipaddress`` interfaces (``ip_interface("10.0.0.2/24")``):
  the address and its prefix length together.
- ``list_addresses`` returns global-scope addresses only (what results and
  CHECK compare against); ``list_address_states`` returns every address with
  its DAD flags for callers that wait on IPv6 duplicate address detection.
- ``ensure_address_on_bridge`` applies the bridge plugin's conflict rules:
  any other IPv4 address conflicts, an IPv6 address only if its subnet
  overlaps; a conflict is ``AddressConflict`` unless ``force`` replaces it.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv6Interface, ip_interface
from typing import Literal

from pycni.net._netlink import IPRoute, attr, failing, link_index, rtnl
from pycni.net.errors import AddressConflict, NetError

__all__ = [
    "AddressState",
    "add_address",
    "del_address",
    "ensure_address_on_bridge",
    "list_address_states",
    "list_addresses",
]

IPInterface = IPv4Interface | IPv6Interface

RT_SCOPE_UNIVERSE = 0
# <linux/if_addr.h>
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40

_FAMILIES: dict[int, int] = {4: socket.AF_INET, 6: socket.AF_INET6}


@dataclass(frozen=True)
class AddressState:
    """An address with the kernel's view of it."""

    address: IPInterface
    scope: int  # 0 global, 253 link, 254 host
    tentative: bool  # IPv6 DAD still running
    dad_failed: bool  # IPv6 DAD found a duplicate


def _states(ipr: IPRoute, index: int, family: Literal[4, 6] | None) -> list[AddressState]:
    query: dict[str, int] = {"index": index}
    if family is not None:
        query["family"] = _FAMILIES[family]
    out: list[AddressState] = []
    for msg in ipr.addr("dump", **query):
        # IFA_FLAGS carries all 32 flag bits; the header field only the low 8.
        flags = int(attr(msg, "IFA_FLAGS", msg["flags"]))
        address = attr(msg, "IFA_ADDRESS") if msg["family"] == socket.AF_INET6 else attr(msg, "IFA_LOCAL")
        if address is None:
            address = attr(msg, "IFA_ADDRESS")
        out.append(
            AddressState(
                address=ip_interface(f"{address}/{msg['prefixlen']}"),
                scope=int(msg["scope"]),
                tentative=bool(flags & IFA_F_TENTATIVE),
                dad_failed=bool(flags & IFA_F_DADFAILED),
            )
        )
    return out


def list_address_states(ifname: str, family: Literal[4, 6] | None = None) -> list[AddressState]:
    """Every address on ``ifname`` (any scope) with its DAD state."""
    with rtnl() as ipr:
        index = link_index(ipr, ifname)
        with failing(f"list addresses of link '{ifname}'"):
            return _states(ipr, index, family)


def list_addresses(ifname: str, family: Literal[4, 6] | None = None) -> list[IPInterface]:
    """The global-scope addresses on ``ifname``, optionally of one family."""
    return [s.address for s in list_address_states(ifname, family) if s.scope == RT_SCOPE_UNIVERSE]


def _add(ipr: IPRoute, index: int, ifname: str, cidr: IPInterface) -> None:
    spec: dict[str, object] = {"index": index, "address": str(cidr.ip), "prefixlen": cidr.network.prefixlen}
    if isinstance(cidr, IPv4Interface) and cidr.network.prefixlen < 31:
        # As the Go netlink library does: without IFA_BROADCAST the subnet
        # broadcast address would not be recognised on this link.
        spec["broadcast"] = str(cidr.network.broadcast_address)
    with failing(f"add address {cidr} to link '{ifname}'", by_errno={errno.EEXIST: NetError}):
        ipr.addr("add", **spec)


def add_address(ifname: str, cidr: IPInterface) -> None:
    """Add ``cidr`` (address + prefix) to ``ifname``; the kernel adds the prefix route when the link is up."""
    with rtnl() as ipr:
        _add(ipr, link_index(ipr, ifname), ifname, cidr)


def _delete(ipr: IPRoute, index: int, ifname: str, cidr: IPInterface, missing_ok: bool) -> bool:
    try:
        with failing(f"delete address {cidr} from link '{ifname}'"):
            ipr.addr("del", index=index, address=str(cidr.ip), prefixlen=cidr.network.prefixlen)
    except NetError as exc:
        if missing_ok and exc.errno == errno.EADDRNOTAVAIL:
            return False
        raise
    return True


def del_address(ifname: str, cidr: IPInterface, *, missing_ok: bool = False) -> bool:
    """Remove ``cidr`` from ``ifname``; True if removed (False when absent and ``missing_ok``)."""
    with rtnl() as ipr:
        return _delete(ipr, link_index(ipr, ifname), ifname, cidr, missing_ok)


def _conflicts(existing: IPInterface, wanted: IPInterface) -> bool:
    if existing.version != wanted.version:
        return False
    if isinstance(wanted, IPv4Interface):
        return True  # a bridge carries one IPv4 gateway address
    return existing.network.overlaps(wanted.network)


def ensure_address_on_bridge(bridge: str, cidr: IPInterface, *, force: bool = False) -> None:
    """Make sure the bridge carries ``cidr`` (e.g. the gateway 10.22.0.1/16).

    Nothing happens if the exact address is present. A conflicting address
    raises ``"<bridge>" already has an IP address different from <cidr>``,
    or is deleted first when ``force`` is set.
    """
    with rtnl() as ipr:
        index = link_index(ipr, bridge)
        with failing(f"list addresses of link '{bridge}'"):
            present = [s.address for s in _states(ipr, index, 4 if isinstance(cidr, IPv4Interface) else 6)]
        if cidr in present:
            return
        for existing in present:
            if not _conflicts(existing, cidr):
                continue
            if not force:
                raise AddressConflict(f'"{bridge}" already has an IP address different from {cidr}')
            _delete(ipr, index, bridge, existing, missing_ok=True)
        try:
            _add(ipr, index, bridge, cidr)
        except NetError as exc:
            # Pods started at once on a new node race to put the gateway on
            # the bridge: the loser finds exactly the address it wanted.
            if exc.errno != errno.EEXIST:
                raise
            with failing(f"list addresses of link '{bridge}'"):
                now = [s.address for s in _states(ipr, index, 4 if isinstance(cidr, IPv4Interface) else 6)]
            if cidr not in now:
                raise
