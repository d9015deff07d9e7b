"""Links stacked on a parent (macvlan, ipvlan, 802.1q vlan) and dummy links, created in a container's netns.

Contract:

- ``create_macvlan``, ``create_ipvlan`` and ``create_vlan`` create a link on
  top of ``master`` named ``ifname`` inside ``netns`` and return it (left
  down). The master normally lives in the calling thread's namespace and the
  new link is created straight into the container (IFLA_NET_NS_FD), so its
  name is only checked against the container's links; with
  ``link_in_container`` both live in the container.
- ``create_dummy`` creates a dummy link inside ``netns`` (left down).
- A missing master raises LinkNotFound "failed to find master 'eth9': no
  such device"; a kind the kernel lacks raises UnsupportedKernelFeature
  "kernel does not support link type 'ipvlan'".
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pycni.net.errors import LinkNotFound
from pycni.net.links import IPVLAN_MODES, MACVLAN_MODES, LinkInfo, get_link
from pycni.net.netlink import messages
from pycni.net.netlink.lookup import index_of
from pycni.net.netns import NetnsRef, open_netns, run_in_netns

__all__ = ["IpvlanMode", "MacvlanMode", "create_dummy", "create_ipvlan", "create_macvlan", "create_vlan"]

MacvlanMode = Literal["private", "vepa", "bridge", "passthru", "source"]
IpvlanMode = Literal["l2", "l3", "l3s"]

Attrs = list[tuple[str, Any]]


def create_macvlan(
    master: str,
    ifname: str,
    netns: NetnsRef,
    *,
    mode: MacvlanMode = "bridge",
    mtu: int | None = None,
    mac: str | None = None,
    link_in_container: bool = False,
) -> LinkInfo:
    """Create a macvlan on ``master`` as ``ifname`` in ``netns`` (left down)."""
    data = [("IFLA_MACVLAN_MODE", MACVLAN_MODES[mode])]
    return _create_on(master, "macvlan", ifname, netns, link_in_container, _common(mtu, mac), data)


def create_ipvlan(
    master: str,
    ifname: str,
    netns: NetnsRef,
    *,
    mode: IpvlanMode = "l2",
    mtu: int | None = None,
    link_in_container: bool = False,
) -> LinkInfo:
    """Create an ipvlan on ``master`` as ``ifname`` in ``netns`` (left down)."""
    data = [("IFLA_IPVLAN_MODE", IPVLAN_MODES[mode])]
    return _create_on(master, "ipvlan", ifname, netns, link_in_container, _common(mtu, None), data)


def create_vlan(
    master: str,
    vlan_id: int,
    ifname: str,
    netns: NetnsRef,
    *,
    mtu: int | None = None,
    link_in_container: bool = False,
) -> LinkInfo:
    """Create an 802.1q VLAN ``vlan_id`` on ``master`` as ``ifname`` in ``netns`` (left down)."""
    data = [("IFLA_VLAN_ID", vlan_id)]
    return _create_on(master, "vlan", ifname, netns, link_in_container, _common(mtu, None), data)


def create_dummy(ifname: str, netns: NetnsRef, *, mtu: int | None = None, mac: str | None = None) -> LinkInfo:
    """Create a dummy link ``ifname`` in ``netns`` (left down)."""

    def in_container() -> LinkInfo:
        messages.create_link("dummy", ifname, attrs=_common(mtu, mac))
        return get_link(ifname)

    return run_in_netns(netns, in_container)


def _common(mtu: int | None, mac: str | None) -> Attrs:
    attrs: Attrs = []
    if mtu:
        attrs.append(("IFLA_MTU", mtu))
    if mac:
        attrs.append(("IFLA_ADDRESS", mac))
    return attrs


def _create_on(
    master: str, kind: str, ifname: str, netns: NetnsRef, link_in_container: bool, attrs: Attrs, data: Attrs
) -> LinkInfo:
    if link_in_container:
        return run_in_netns(netns, _create_here, master, kind, ifname, attrs, data)
    parent = [("IFLA_LINK", _master_index(master))]
    fd = netns if isinstance(netns, int) else open_netns(netns)
    try:
        messages.create_link(kind, ifname, attrs=[*attrs, *parent, ("IFLA_NET_NS_FD", fd)], info_data=data)
        return run_in_netns(fd, get_link, ifname)
    finally:
        if not isinstance(netns, int):
            os.close(fd)


def _create_here(master: str, kind: str, ifname: str, attrs: Attrs, data: Attrs) -> LinkInfo:
    parent = [("IFLA_LINK", _master_index(master))]
    messages.create_link(kind, ifname, attrs=[*attrs, *parent], info_data=data)
    return get_link(ifname)


def _master_index(name: str) -> int:
    """The master's ifindex here, with its role in the error ("failed to find master 'eth9'")."""
    try:
        return index_of(name)
    except LinkNotFound as exc:
        raise LinkNotFound(f"failed to find master '{name}': no such device", errno=exc.errno) from exc
