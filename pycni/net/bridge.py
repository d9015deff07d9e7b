"""Linux bridges and their ports, in the calling thread's network namespace.

Contract:

- ``ensure_bridge`` is idempotent: it creates the bridge if absent, accepts
  an existing bridge as is (MTU is only applied at creation, as the
  reference plugin does), and refuses a non-bridge link of that name with
  ``"<name>" already exists but is not a bridge``.
- Port settings (hairpin, isolation, VLANs) take the port's link name.
- VLAN filtering needs CONFIG_BRIDGE_VLAN_FILTERING; without it the VLAN
  helpers raise ``UnsupportedKernelFeature``.
"""

from __future__ import annotations

import errno

from pycni.net.errors import LinkExists, LinkNotFound, NetError, UnsupportedKernelFeature
from pycni.net.links import IFF_PROMISC, LinkInfo, get_link, set_link_up
from pycni.net.netlink.errors import failing
from pycni.net.netlink.iproute import rtnl, session
from pycni.net.netlink.lookup import index_of
from pycni.net.netlink.messages import attr, link_msg, request
from pycni.net.netlink.wire import RTM_NEWLINK
from pycni.net.sysctl import ensure_sysctl, iface_key
from pycni.spec.record import record

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "BridgeVlan",
    "add_bridge_vlan",
    "del_bridge_vlan",
    "ensure_bridge",
    "list_bridge_vlans",
    "set_hairpin",
    "set_port_isolated",
    "set_promisc",
]

# <linux/if_bridge.h> bridge_vlan_info flags
_BRIDGE_VLAN_INFO_PVID = 0x2
_BRIDGE_VLAN_INFO_UNTAGGED = 0x4


@record
class BridgeVlan:
    """One VLAN on a bridge port."""

    vid: int
    pvid: bool = False
    untagged: bool = False


def _vlan_filtering_unsupported(action: str) -> UnsupportedKernelFeature:
    return UnsupportedKernelFeature(
        f"failed to {action}: kernel does not support bridge vlan filtering", errno=errno.EOPNOTSUPP
    )


def ensure_bridge(
    name: str, *, mtu: int | None = None, promisc: bool = False, vlan_filtering: bool = False
) -> LinkInfo:
    """Create the bridge ``name`` if needed, apply the options, set it up and return it."""
    with session():
        return _ensure_bridge(name, mtu, promisc, vlan_filtering)


def _ensure_bridge(name: str, mtu: int | None, promisc: bool, vlan_filtering: bool) -> LinkInfo:
    try:
        info = get_link(name)
    except LinkNotFound:
        info = _create_bridge(name, mtu, vlan_filtering)
    else:
        if info.kind != "bridge":
            raise LinkExists(f'"{name}" already exists but is not a bridge', errno=errno.EEXIST)
        if vlan_filtering:
            _enable_vlan_filtering(name, info.index)
    changed = False
    if promisc and not info.promisc:
        set_promisc(name, True)
        changed = True
    # A bridge that learns routes from router advertisements on a container
    # segment would let any container hijack the host's routing.
    try:
        ensure_sysctl(iface_key(6, name, "accept_ra"), 0)
    except NetError as exc:
        if exc.errno != errno.ENOENT:  # IPv6 disabled: nothing to turn off
            raise
    if info.up and not changed:  # every ADD after the first: nothing to set, and the first lookup is current
        return info
    set_link_up(name)
    return get_link(name)


def _create_bridge(name: str, mtu: int | None, vlan_filtering: bool) -> LinkInfo:
    spec: dict[str, Any] = {}
    if mtu:
        spec["mtu"] = mtu
    if vlan_filtering:
        spec["br_vlan_filtering"] = 1
    try:
        with rtnl() as ipr, failing(f"create bridge '{name}'"):
            ipr.link("add", ifname=name, kind="bridge", **spec)
    except LinkExists:
        # Another plugin invocation created it between our lookup and add.
        info = get_link(name)
        if info.kind != "bridge":
            raise LinkExists(f'"{name}" already exists but is not a bridge', errno=errno.EEXIST) from None
        if vlan_filtering:
            _enable_vlan_filtering(name, info.index)
        return info
    except UnsupportedKernelFeature as exc:
        if vlan_filtering:
            raise _vlan_filtering_unsupported(f"create bridge '{name}'") from exc
        raise
    return get_link(name)


def _enable_vlan_filtering(name: str, index: int) -> None:
    try:
        with rtnl() as ipr, failing(f"enable vlan filtering on bridge '{name}'"):
            ipr.link("set", index=index, kind="bridge", br_vlan_filtering=1)
    except UnsupportedKernelFeature as exc:
        raise _vlan_filtering_unsupported(f"enable vlan filtering on bridge '{name}'") from exc


def set_promisc(name: str, on: bool) -> None:
    """Turn promiscuous mode on or off for a link."""
    index = index_of(name)
    with failing(f"set promisc {'on' if on else 'off'} for link '{name}'"):
        request(link_msg(index, flags=IFF_PROMISC if on else 0, change=IFF_PROMISC), RTM_NEWLINK)


def _set_port(port: str, action: str, setting: str, value: int) -> None:
    """One IFLA_BRPORT_* setting of a bridge port, as the port's slave data (``ip link set type bridge_slave``)."""
    index = index_of(port)
    with failing(f"{action} on bridge port '{port}'"):
        info = {"attrs": [("IFLA_INFO_SLAVE_KIND", "bridge"), ("IFLA_INFO_SLAVE_DATA", {"attrs": [(setting, value)]})]}
        request(link_msg(index, attrs=[("IFLA_LINKINFO", info)]), RTM_NEWLINK)


def set_hairpin(port: str, on: bool) -> None:
    """Let frames leave the bridge port they came in on (hairpin / reflective relay)."""
    _set_port(port, f"set hairpin {'on' if on else 'off'}", "IFLA_BRPORT_MODE", int(on))


def set_port_isolated(port: str, on: bool) -> None:
    """Isolate the port: it can then only talk to non-isolated ports."""
    _set_port(port, f"set isolated {'on' if on else 'off'}", "IFLA_BRPORT_ISOLATED", int(on))


def _vlan_request(port: str, action: str, command: str, vlan_info: dict[str, Any]) -> None:
    with rtnl() as ipr:
        index = index_of(port)
        try:
            with failing(f"{action} on bridge port '{port}'"):
                ipr.vlan_filter(command, index=index, vlan_info=vlan_info)
        except UnsupportedKernelFeature as exc:
            raise _vlan_filtering_unsupported(f"{action} on bridge port '{port}'") from exc


def add_bridge_vlan(port: str, vid: int, *, pvid: bool = False, untagged: bool = False) -> None:
    """Allow VLAN ``vid`` on a bridge port, optionally as its PVID and/or egress-untagged."""
    flags = (_BRIDGE_VLAN_INFO_PVID if pvid else 0) | (_BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0)
    _vlan_request(port, f"add vlan {vid}", "add", {"vid": vid, "flags": flags})


def del_bridge_vlan(port: str, vid: int) -> None:
    """Remove VLAN ``vid`` from a bridge port."""
    _vlan_request(port, f"delete vlan {vid}", "del", {"vid": vid})


def list_bridge_vlans(port: str) -> list[BridgeVlan]:
    """The VLANs configured on a bridge port (empty without VLAN filtering support)."""
    with rtnl() as ipr:
        index = index_of(port)
        with failing(f"list vlans on bridge port '{port}'"):
            messages = ipr.get_vlans(index=index)
        vlans: list[BridgeVlan] = []
        for msg in messages:
            if int(msg["index"]) != index:
                continue
            spec = attr(msg, "IFLA_AF_SPEC")
            if spec is None:
                continue
            for name, value in spec["attrs"]:
                if name != "IFLA_BRIDGE_VLAN_INFO":
                    continue
                flags = int(value["flags"])
                vlans.append(
                    BridgeVlan(
                        int(value["vid"]),
                        pvid=bool(flags & _BRIDGE_VLAN_INFO_PVID),
                        untagged=bool(flags & _BRIDGE_VLAN_INFO_UNTAGGED),
                    )
                )
        return vlans
