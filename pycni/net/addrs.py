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

import _socket  # not socket: its import builds enums (~3 ms on a cold plugin call)
import errno
from ipaddress import IPv4Interface, IPv6Interface, ip_interface

from pycni.net.errors import AddressConflict, NetError
from pycni.net.netlink.errors import failing
from pycni.net.netlink.lookup import index_of
from pycni.net.netlink.messages import addr_msg, attr, request
from pycni.net.netlink.wire import NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR
from pycni.spec.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Literal

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

_FAMILIES: dict[int, int] = {4: _socket.AF_INET, 6: _socket.AF_INET6}


@record
class AddressState:
    """An address with the kernel's view of it."""

    address: IPInterface
    scope: int  # 0 global, 253 link, 254 host
    tentative: bool  # IPv6 DAD still running
    dad_failed: bool  # IPv6 DAD found a duplicate


def _states(index: int, family: Literal[4, 6] | None) -> list[AddressState]:
    query = addr_msg(_FAMILIES[family] if family else _socket.AF_UNSPEC, 0, index)
    out: list[AddressState] = []
    for msg in request(query, RTM_GETADDR, NLM_F_DUMP):
        if msg["index"] != index:  # kernels without strict dump filtering send every link's
            continue
        # IFA_FLAGS carries all 32 flag bits; the header field only the low 8.
        flags = int(attr(msg, "IFA_FLAGS", msg["flags"]))
        address = attr(msg, "IFA_ADDRESS") if msg["family"] == _socket.AF_INET6 else attr(msg, "IFA_LOCAL")
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
    index = index_of(ifname)
    with failing(f"list addresses of link '{ifname}'"):
        return _states(index, family)


def list_addresses(ifname: str, family: Literal[4, 6] | None = None) -> list[IPInterface]:
    """The global-scope addresses on ``ifname``, optionally of one family."""
    return [s.address for s in list_address_states(ifname, family) if s.scope == RT_SCOPE_UNIVERSE]


def _family(cidr: IPInterface) -> int:
    return _socket.AF_INET if isinstance(cidr, IPv4Interface) else _socket.AF_INET6


def _address_attrs(cidr: IPInterface) -> list[tuple[str, str]]:
    # IPv4 carries the address twice, IFA_LOCAL being the interface's own (as ip(8) sends it).
    attrs = [("IFA_ADDRESS", str(cidr.ip))]
    if isinstance(cidr, IPv4Interface):
        attrs.append(("IFA_LOCAL", str(cidr.ip)))
    return attrs


def _add(index: int, ifname: str, cidr: IPInterface) -> None:
    attrs = _address_attrs(cidr)
    if isinstance(cidr, IPv4Interface) and cidr.network.prefixlen < 31:
        # As the Go netlink library does: without IFA_BROADCAST the subnet
        # broadcast address would not be recognised on this link.
        attrs.append(("IFA_BROADCAST", str(cidr.network.broadcast_address)))
    msg = addr_msg(_family(cidr), cidr.network.prefixlen, index, attrs)
    with failing(f"add address {cidr} to link '{ifname}'", by_errno={errno.EEXIST: NetError}):
        request(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)


def add_address(ifname: str, cidr: IPInterface) -> None:
    """Add ``cidr`` (address + prefix) to ``ifname``; the kernel adds the prefix route when the link is up."""
    _add(index_of(ifname), ifname, cidr)


def _delete(index: int, ifname: str, cidr: IPInterface, missing_ok: bool) -> bool:
    msg = addr_msg(_family(cidr), cidr.network.prefixlen, index, _address_attrs(cidr))
    try:
        with failing(f"delete address {cidr} from link '{ifname}'"):
            request(msg, RTM_DELADDR)
    except NetError as exc:
        if missing_ok and exc.errno == errno.EADDRNOTAVAIL:
            return False
        raise
    return True


def del_address(ifname: str, cidr: IPInterface, *, missing_ok: bool = False) -> bool:
    """Remove ``cidr`` from ``ifname``; True if removed (False when absent and ``missing_ok``)."""
    return _delete(index_of(ifname), ifname, cidr, missing_ok)


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
    index = index_of(bridge)
    with failing(f"list addresses of link '{bridge}'"):
        present = [s.address for s in _states(index, 4 if isinstance(cidr, IPv4Interface) else 6)]
    if cidr in present:
        return
    for existing in present:
        if not _conflicts(existing, cidr):
            continue
        if not force:
            raise AddressConflict(f'"{bridge}" already has an IP address different from {cidr}')
        _delete(index, bridge, existing, missing_ok=True)
    try:
        _add(index, bridge, cidr)
    except NetError as exc:
        # Pods started at once on a new node race to put the gateway on
        # the bridge: the loser finds exactly the address it wanted.
        if exc.errno != errno.EEXIST:
            raise
        with failing(f"list addresses of link '{bridge}'"):
            now = [s.address for s in _states(index, 4 if isinstance(cidr, IPv4Interface) else 6)]
        if cidr not in now:
            raise
