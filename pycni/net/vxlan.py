"""VXLAN devices and the per-peer forwarding state of an overlay, in the calling thread's netns.

Contract:

- ``ensure_vxlan(spec)`` makes the device match ``VxlanSpec`` (VNI, UDP
  port, local underlay address, underlay device, MAC, MTU, learning off)
  and brings it up. A device with the right identity (VNI, port, local
  address, underlay device) is changed in place (MAC, MTU), so peers'
  traffic keeps flowing; only a device whose identity differs is deleted
  and recreated. Returns the ``LinkInfo`` afterwards.
- FDB entries are unicast ``MAC -> underlay IP`` (``bridge fdb ... dst``,
  permanent, on the device itself): ``list_fdb`` / ``replace_fdb`` /
  ``delete_fdb``.
- Neighbour entries are permanent ``IP -> MAC`` on the device:
  ``list_neighbours`` / ``replace_neighbour`` / ``delete_neighbour``
  (entries the kernel learns itself are listed with ``permanent=False``).
- Missing entries on delete are not errors (returns False).
- IPv6 works the same (an IPv6 ``local`` makes a VXLAN over an IPv6
  underlay; entries take either family; ``list_neighbours(dev, 6)``).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Literal

from pycni.net.errors import LinkNotFound, NetError
from pycni.net.links import LinkInfo, get_link, set_link_mac, set_link_mtu, set_link_up
from pycni.net.netlink.errors import failing
from pycni.net.netlink.iproute import IPRoute, get_link_msg, rtnl
from pycni.net.netlink.lookup import index_of
from pycni.net.netlink.messages import attr

__all__ = [
    "FdbEntry",
    "NeighbourEntry",
    "VxlanSpec",
    "delete_fdb",
    "delete_neighbour",
    "ensure_vxlan",
    "list_fdb",
    "list_neighbours",
    "replace_fdb",
    "replace_neighbour",
]

NUD_PERMANENT = 0x80
NUD_NOARP = 0x40
NTF_SELF = 0x02
AF_BRIDGE = 7


@dataclass(frozen=True)
class VxlanSpec:
    name: str
    vni: int
    port: int
    local: IPv4Address | IPv6Address
    underlay: str  # the device VXLAN packets leave by
    mac: str
    mtu: int


@dataclass(frozen=True)
class FdbEntry:
    mac: str
    dst: IPv4Address | IPv6Address | None  # remote VTEP; None for entries without one (the device's own)


@dataclass(frozen=True)
class NeighbourEntry:
    ip: IPv4Address | IPv6Address
    mac: str
    permanent: bool


def _identity(ipr: IPRoute, name: str) -> tuple[int, int, str, int] | None:
    """(vni, port, local, underlay ifindex) of an existing vxlan device, None if ``name`` is another kind."""
    msg = get_link_msg(ipr, name)
    info = attr(msg, "IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != "vxlan":
        return None
    data = info.get_attr("IFLA_INFO_DATA")
    return (
        int(data.get_attr("IFLA_VXLAN_ID") or 0),
        int(data.get_attr("IFLA_VXLAN_PORT") or 0),
        str(data.get_attr("IFLA_VXLAN_LOCAL") or data.get_attr("IFLA_VXLAN_LOCAL6") or ""),
        int(data.get_attr("IFLA_VXLAN_LINK") or 0),
    )


def ensure_vxlan(spec: VxlanSpec) -> LinkInfo:
    """Create or adjust the VXLAN device; see the module contract."""
    with rtnl() as ipr:
        underlay_index = index_of(spec.underlay)
        wanted = (spec.vni, spec.port, str(spec.local), underlay_index)
        try:
            current: tuple[int, int, str, int] | None = _identity(ipr, spec.name)
            exists = True
        except LinkNotFound:
            current, exists = None, False
        if current != wanted:
            if exists:  # another kind, or a vxlan with another identity: only a new device will do
                with failing(f"delete link '{spec.name}'"):
                    ipr.link("del", index=index_of(spec.name))
            with failing(f"create vxlan '{spec.name}'"):
                ipr.link(
                    "add",
                    ifname=spec.name,
                    kind="vxlan",
                    vxlan_id=spec.vni,
                    vxlan_port=spec.port,
                    **{"vxlan_local" if spec.local.version == 4 else "vxlan_local6": str(spec.local)},
                    vxlan_link=underlay_index,
                    vxlan_learning=0,
                    address=spec.mac,
                    mtu=spec.mtu,
                )
    link = get_link(spec.name)
    if link.mac.lower() != spec.mac.lower():
        set_link_mac(spec.name, spec.mac)
    if link.mtu != spec.mtu:
        set_link_mtu(spec.name, spec.mtu)
    if not link.up:
        set_link_up(spec.name)
    return get_link(spec.name)


# -- FDB ----------------------------------------------------------------------


def list_fdb(dev: str) -> list[FdbEntry]:
    """The unicast FDB entries of ``dev`` (all-zero and multicast MACs are left out)."""
    with rtnl() as ipr:
        index = index_of(dev)
        with failing(f"list fdb of '{dev}'"):
            messages = ipr.fdb("dump", ifindex=index)
    out: list[FdbEntry] = []
    for msg in messages:
        if int(msg["ifindex"]) != index:
            continue
        mac = str(attr(msg, "NDA_LLADDR", "")).lower()
        if not mac or mac == "00:00:00:00:00:00" or int(mac[:2], 16) & 1:
            continue
        dst = attr(msg, "NDA_DST")
        out.append(FdbEntry(mac=mac, dst=None if dst is None else ip_address(dst)))
    return out


def replace_fdb(dev: str, mac: str, dst: IPv4Address | IPv6Address) -> None:
    """Point ``mac`` at the remote VTEP ``dst`` (permanent)."""
    with rtnl() as ipr:
        index = index_of(dev)
        with failing(f"set fdb entry {mac} dst {dst} on '{dev}'"):
            ipr.fdb("replace", ifindex=index, lladdr=mac, dst=str(dst), state=NUD_PERMANENT, flags=NTF_SELF)


def delete_fdb(dev: str, mac: str, dst: IPv4Address | IPv6Address | None = None) -> bool:
    """Remove the entry for ``mac`` (towards ``dst`` when given); False if there was none."""
    with rtnl() as ipr:
        try:
            index = index_of(dev)
            spec: dict[str, object] = {"ifindex": index, "lladdr": mac, "flags": NTF_SELF}
            if dst is not None:
                spec["dst"] = str(dst)
            with failing(f"delete fdb entry {mac} on '{dev}'"):
                ipr.fdb("del", **spec)
        except LinkNotFound:
            return False
        except NetError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                return False
            raise
    return True


# -- neighbours ---------------------------------------------------------------


def list_neighbours(dev: str, family: Literal[4, 6] = 4) -> list[NeighbourEntry]:
    """The neighbour entries of one family on ``dev``."""
    with rtnl() as ipr:
        index = index_of(dev)
        with failing(f"list neighbours of '{dev}'"):
            messages = ipr.neigh("dump", ifindex=index, family=socket.AF_INET if family == 4 else socket.AF_INET6)
    out: list[NeighbourEntry] = []
    for msg in messages:
        if int(msg["ifindex"]) != index or attr(msg, "NDA_DST") is None:
            continue
        out.append(
            NeighbourEntry(
                ip=ip_address(attr(msg, "NDA_DST")),
                mac=str(attr(msg, "NDA_LLADDR", "")).lower(),
                permanent=bool(int(msg["state"]) & NUD_PERMANENT),
            )
        )
    return out


def replace_neighbour(dev: str, ip: IPv4Address | IPv6Address, mac: str) -> None:
    """A permanent ``ip -> mac`` entry on ``dev``."""
    with rtnl() as ipr:
        index = index_of(dev)
        with failing(f"set neighbour {ip} lladdr {mac} on '{dev}'"):
            ipr.neigh("replace", ifindex=index, dst=str(ip), lladdr=mac, state=NUD_PERMANENT,
                      family=socket.AF_INET if ip.version == 4 else socket.AF_INET6)


def delete_neighbour(dev: str, ip: IPv4Address | IPv6Address) -> bool:
    """Remove the neighbour entry for ``ip``; False if there was none."""
    with rtnl() as ipr:
        try:
            index = index_of(dev)
            with failing(f"delete neighbour {ip} on '{dev}'"):
                ipr.neigh("del", ifindex=index, dst=str(ip_address(ip)),
                          family=socket.AF_INET if ip.version == 4 else socket.AF_INET6)
        except LinkNotFound:
            return False
        except NetError as exc:
            if exc.errno in (errno.ENOENT, errno.ESRCH):
                return False
            raise
    return True
