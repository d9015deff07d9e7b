"""Persistent tap devices, made through /dev/net/tun (rtnetlink cannot create them).

Contract:

- ``create_tap`` creates a persistent tap ``ifname`` inside ``netns``
  (TUNSETIFF on /dev/net/tun from a thread in that netns, then
  TUNSETPERSIST), with IFF_VNET_HDR and optionally IFF_MULTI_QUEUE, an owner
  and a group; then applies the MTU and MAC and returns it (left down). A
  failure after creation deletes the device again. A name already taken
  raises LinkExists "failed to create tap 'x': file exists".
- ``selinux_enabled`` says whether the host runs SELinux (labelling taps is
  then what a ``selinuxContext`` would ask for).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from pycni.net.errors import LinkExists
from pycni.net.links import LinkInfo, delete_link, get_link, link_exists, set_link_mac, set_link_mtu
from pycni.net.netlink.errors import failing
from pycni.net.netns import NetnsRef, run_in_netns

__all__ = ["create_tap", "selinux_enabled"]

# <linux/if_tun.h>
_TUNSETIFF = 0x400454CA
_TUNSETPERSIST = 0x400454CB
_TUNSETOWNER = 0x400454CC
_TUNSETGROUP = 0x400454CE
_IFF_TAP = 0x0002
_IFF_MULTI_QUEUE = 0x0100
_IFF_VNET_HDR = 0x4000


def create_tap(
    ifname: str,
    netns: NetnsRef,
    *,
    mtu: int | None = None,
    mac: str | None = None,
    multi_queue: bool = False,
    owner: int | None = None,
    group: int | None = None,
) -> LinkInfo:
    """Create a persistent tap device ``ifname`` in ``netns`` (left down)."""

    def in_container() -> LinkInfo:
        if link_exists(ifname):
            raise LinkExists(f"failed to create tap '{ifname}': file exists", errno=errno.EEXIST)
        _create_here(ifname, multi_queue, owner, group)
        try:
            if mtu:
                set_link_mtu(ifname, mtu)
            if mac:
                set_link_mac(ifname, mac)
        except BaseException:
            delete_link(ifname, missing_ok=True)
            raise
        return get_link(ifname)

    return run_in_netns(netns, in_container)


def _create_here(ifname: str, multi_queue: bool, owner: int | None, group: int | None) -> None:
    # The device belongs to the netns of the thread that opened /dev/net/tun.
    flags = _IFF_TAP | _IFF_VNET_HDR | (_IFF_MULTI_QUEUE if multi_queue else 0)
    ifreq = struct.pack("16sH22x", ifname.encode(), flags)
    with failing(f"create tap '{ifname}'"):
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, _TUNSETIFF, ifreq)
            if owner is not None:
                fcntl.ioctl(fd, _TUNSETOWNER, owner)
            if group is not None:
                fcntl.ioctl(fd, _TUNSETGROUP, group)
            fcntl.ioctl(fd, _TUNSETPERSIST, 1)
        finally:
            os.close(fd)


def selinux_enabled() -> bool:
    """True if SELinux is active on this host (selinuxfs mounted with an ``enforce`` file)."""
    return os.path.exists("/sys/fs/selinux/enforce")
