"""Host devices: find a network device, lend it to a container, take it back.

Contract:

- ``find_device_by_*`` look in the calling thread's netns and in sysfs;
  they raise ``LinkNotFound`` with what was searched for.
- ``lend_device(name, netns, ifname)`` moves a host link into ``netns``
  renamed to ``ifname`` (checked only against the container's links),
  after recording ``name`` in the link's alias. On failure the alias is
  cleared again and the link is back on the host under its own name.
- ``reclaim_device(netns, ifname)`` renames it back (inside the container)
  to the name its alias records, moves it to the host and clears the
  alias; if the move fails (the name is taken on the host) the link is
  left in the container as it was, so DEL can be retried. It returns None when
  there is nothing to reclaim: the netns or the link is gone (a physical
  device returns to the host by itself when its netns dies, a virtual one
  is destroyed), or the link has no alias and so was not lent by us.
- ``pci_driver`` / ``USERSPACE_DRIVERS`` tell a DPDK-bound PCI device
  (which has no netdev to move) from a kernel-driven one.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

from pycni.net.errors import LinkExists, LinkNotFound, NetError, NetnsNotFound, NotANetns
from pycni.net.links import (
    LinkInfo,
    get_link,
    link_exists,
    list_links,
    move_link_to_netns,
    rename_link,
    set_link_alias,
    set_link_down,
    set_link_up,
)
from pycni.net.netns import run_in_netns

T = TypeVar("T")

__all__ = [
    "USERSPACE_DRIVERS",
    "find_device_by_auxiliary_id",
    "find_device_by_kernel_path",
    "find_device_by_mac",
    "find_device_by_pci_id",
    "lend_device",
    "pci_driver",
    "reclaim_device",
]

#: Drivers that bind a NIC for user-space (DPDK) use: such a device has no netdev.
USERSPACE_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")

SYS_BUS_PCI = "/sys/bus/pci/devices"
SYS_BUS_AUXILIARY = "/sys/bus/auxiliary/devices"


def find_device_by_mac(mac: str) -> LinkInfo:
    """The first link whose hardware address is ``mac`` (any case)."""
    wanted = mac.lower()
    for link in list_links():
        if link.mac.lower() == wanted:
            return link
    raise LinkNotFound(f"failed to find a link with MAC {mac}")


def _first_netdev(net_dir: str, what: str) -> LinkInfo:
    """The first entry of a sysfs ``.../net`` directory that is a link in this netns."""
    try:
        names = sorted(os.listdir(net_dir))
    except OSError as exc:
        raise LinkNotFound(f"failed to find a network device for {what}: cannot read {net_dir}") from exc
    for name in names:
        try:
            return get_link(name)
        except LinkNotFound:
            continue
    raise LinkNotFound(f"failed to find a network device for {what}: no link listed in {net_dir}")


def find_device_by_kernel_path(path: str) -> LinkInfo:
    """The network device of a sysfs device directory, e.g. /sys/devices/pci0000:00/0000:00:19.0."""
    return _first_netdev(os.path.join(path, "net"), f"kernel path {path}")


def find_device_by_pci_id(pci_id: str) -> LinkInfo:
    """The network device of a PCI function (also behind a virtio device)."""
    net_dir = os.path.join(SYS_BUS_PCI, pci_id, "net")
    if not os.path.isdir(net_dir):
        matches = sorted(glob.glob(os.path.join(SYS_BUS_PCI, glob.escape(pci_id), "virtio*", "net")))
        if not matches:
            raise LinkNotFound(f"failed to find a network device for PCI device {pci_id}: no net directory")
        net_dir = matches[0]
    return _first_netdev(net_dir, f"PCI device {pci_id}")


def find_device_by_auxiliary_id(device_id: str) -> LinkInfo:
    """The network device of an auxiliary-bus device (e.g. a mlx5 sub-function)."""
    return _first_netdev(os.path.join(SYS_BUS_AUXILIARY, device_id, "net"), f"auxiliary device {device_id}")


def is_auxiliary_device(device_id: str) -> bool:
    return os.path.isdir(os.path.join(SYS_BUS_AUXILIARY, device_id))


def pci_driver(pci_id: str) -> str | None:
    """The name of the driver bound to a PCI function, None if unbound or not a PCI device."""
    link = os.path.join(SYS_BUS_PCI, pci_id, "driver")
    try:
        return os.path.basename(os.path.realpath(link, strict=True))
    except OSError:
        return None


def _return_here(name: str, host_fd: int) -> None:
    """Inside the container: send ``name`` back to the host if it is a device we were lending."""
    try:
        link = get_link(name)
    except LinkNotFound:
        return
    if link.alias == name:
        move_link_to_netns(name, host_fd)


def _in_netns_with_host_fd(netns: str, fn: Callable[[str, int], T], name: str) -> T:
    """Run ``fn(name, host_fd)`` inside ``netns``, host_fd naming the calling thread's netns."""
    host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return run_in_netns(netns, fn, name, host_fd)
    finally:
        os.close(host_fd)


def lend_device(name: str, netns: str, ifname: str) -> LinkInfo:
    """Move host link ``name`` into ``netns`` as ``ifname``, its alias recording ``name``; returns it (down)."""
    if link_exists(ifname, netns):
        raise LinkExists(
            f"failed to move link '{name}' to netns '{netns}': a link named '{ifname}' already exists there",
            errno=errno.EEXIST,
        )
    set_link_alias(name, name)
    try:
        move_link_to_netns(name, netns, new_name=ifname)
    except BaseException:
        # The kernel moves first and renames after: a failed rename leaves the
        # link in the container under its host name. Bring it home.
        with suppress(NetError):
            _in_netns_with_host_fd(netns, _return_here, name)
        with suppress(NetError):  # best effort: the move's error is the one to report
            set_link_alias(name, "")
        raise
    return get_link(ifname, netns)


def _reclaim_here(ifname: str, host_fd: int) -> str | None:
    try:
        link = get_link(ifname)
    except LinkNotFound:
        return None
    original = str(link.alias)
    if not original:
        return None  # not a device we lent: leave it where it is
    # Rename inside the container, then move under that name: the move
    # either happens whole or not at all (a name taken on the host fails it).
    set_link_down(ifname)
    if original != ifname:
        rename_link(ifname, original)
    try:
        move_link_to_netns(original, host_fd)
    except BaseException:
        with suppress(NetError):  # leave it as it was, so DEL can be retried
            if original != ifname:
                rename_link(original, ifname)
            if link.up:
                set_link_up(ifname)
        raise
    return original


def reclaim_device(netns: str, ifname: str) -> str | None:
    """Move ``ifname`` from ``netns`` back to this netns under its original name; that name, or None."""
    try:
        original = _in_netns_with_host_fd(netns, _reclaim_here, ifname)
    except (NetnsNotFound, NotANetns):
        return None
    if original is not None:
        set_link_alias(original, "")
    return original
