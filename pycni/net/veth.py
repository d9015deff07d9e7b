"""veth pairs between the host and a container: the link every bridge and ptp ADD makes.

Contract:

- ``create_veth_pair`` creates the pair from inside the container's netns
  with the peer pushed to the host (IFLA_NET_NS_FD), so the container name
  is only ever checked against the container's links and never collides
  with the host's. The host end gets ``host_ifname`` or "veth" + 8 random
  hex digits, retried on collision (10 tries).
- The container end is left down (ConfigureIface brings it up); the host
  end is brought up with ``accept_ra=0``. If that fails, the pair is
  deleted before the error propagates.
- A container name already taken raises LinkExists "container veth name
  provided (eth0) already exists", as the reference plugins word it.
"""

from __future__ import annotations

import errno
import os

from pycni.net.errors import LinkExists, NetError
from pycni.net.links import LinkInfo, delete_link, get_link, link_exists, random_ifname, set_link_up
from pycni.net.netlink import messages
from pycni.net.netns import NetnsRef, run_in_netns
from pycni.net.sysctl import iface_key, write_sysctl

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["create_veth_pair"]

_HOST_NAME_TRIES = 10


def create_veth_pair(
    container_ifname: str,
    container_netns: NetnsRef,
    *,
    host_ifname: str | None = None,
    mtu: int | None = None,
    container_mac: str | None = None,
) -> tuple[LinkInfo, LinkInfo]:
    """Create a veth pair between the calling thread's netns (host) and ``container_netns``.

    Returns ``(host, container)``.
    """
    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        host_name, container = run_in_netns(
            container_netns, _create_in_container, container_ifname, host_fd, host_ifname, mtu, container_mac
        )
    finally:
        os.close(host_fd)
    try:
        set_link_up(host_name)
        try:
            write_sysctl(iface_key(6, host_name, "accept_ra"), 0)
        except NetError as exc:
            # IPv6 may be disabled on the host: then there is nothing to accept.
            if exc.errno != errno.ENOENT:
                raise
        host = get_link(host_name)
    except BaseException:
        delete_link(host_name, missing_ok=True)
        raise
    return host, container


def _create_in_container(
    ifname: str, host_fd: int, host_ifname: str | None, mtu: int | None, mac: str | None
) -> tuple[str, LinkInfo]:
    """Inside the container: create ``ifname`` with its peer pushed to the host; returns (host name, container)."""
    # No lookup first: creating over an existing name fails with EEXIST, told apart below.
    exists = LinkExists(f"container veth name provided ({ifname}) already exists", errno=errno.EEXIST)
    for _ in range(_HOST_NAME_TRIES):
        peer_name = host_ifname or random_ifname("veth")
        try:
            _create_veth(ifname, peer_name, host_fd, mtu, mac)
        except LinkExists:
            # EEXIST names neither end: it is ours if the container name
            # appeared meanwhile, else the host name was taken.
            if link_exists(ifname):
                raise exists from None
            if host_ifname:
                raise LinkExists(
                    f"failed to create veth pair: host veth name '{host_ifname}' already exists", errno=errno.EEXIST
                ) from None
            continue
        return peer_name, get_link(ifname)
    raise LinkExists(
        f"failed to create veth pair: no free host veth name after {_HOST_NAME_TRIES} tries", errno=errno.EEXIST
    )


def _create_veth(ifname: str, peer_name: str, peer_netns_fd: int, mtu: int | None, mac: str | None) -> None:
    """RTM_NEWLINK for a veth pair here, its peer ``peer_name`` placed in ``peer_netns_fd``."""
    peer: list[tuple[str, Any]] = [("IFLA_IFNAME", peer_name), ("IFLA_NET_NS_FD", peer_netns_fd)]
    attrs: list[tuple[str, Any]] = []
    if mtu:
        peer.append(("IFLA_MTU", mtu))
        attrs.append(("IFLA_MTU", mtu))
    if mac:
        attrs.append(("IFLA_ADDRESS", mac))
    messages.create_link("veth", ifname, attrs=attrs, info_data=[("VETH_INFO_PEER", {"attrs": peer})])
