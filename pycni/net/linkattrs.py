"""Link attributes the tuning plugin reads, changes and restores.

Contract: every function acts in the calling thread's network namespace
(call it through ``run_in_netns`` for a container's links). A missing link
is ``LinkNotFound``; other kernel refusals are ``NetError`` with
"failed to <action> of link '<name>': <cause>".

``promisc`` and ``allmulti`` are the *administrative* flags (what
``ip link set ... promisc on`` sets), read from the link's flags, not the
kernel's use counters (IFLA_PROMISCUITY / IFLA_ALLMULTI), which also count
e.g. a bridge port's own promiscuity.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from pycni.net.netlink.errors import failing
from pycni.net.netlink.iproute import get_link_msg, rtnl
from pycni.net.netlink.lookup import index_of
from pycni.net.netlink.messages import attr

__all__ = ["LinkAttrs", "get_link_attrs", "link_present", "set_allmulti", "set_promisc", "set_txqlen"]

IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200


@dataclass(frozen=True)
class LinkAttrs:
    """The attributes tuning changes, as the kernel reports them."""

    name: str
    mac: str
    mtu: int
    promisc: bool
    allmulti: bool
    txqlen: int


def get_link_attrs(name: str) -> LinkAttrs:
    """MAC, MTU, promisc, allmulti and tx queue length of ``name``; LinkNotFound if absent."""
    with rtnl() as ipr:
        msg = get_link_msg(ipr, name)
    flags = int(msg["flags"])
    return LinkAttrs(
        name=attr(msg, "IFLA_IFNAME", name),
        mac=str(attr(msg, "IFLA_ADDRESS", "")).lower(),
        mtu=int(attr(msg, "IFLA_MTU", 0)),
        promisc=bool(flags & IFF_PROMISC),
        allmulti=bool(flags & IFF_ALLMULTI),
        txqlen=int(attr(msg, "IFLA_TXQLEN", 0)),
    )


def _set_flag(name: str, flag: int, on: bool, what: str) -> None:
    with rtnl() as ipr:
        index = index_of(name)
        with failing(f"set {what} {'on' if on else 'off'} of link '{name}'"):
            # ``change`` masks which flag bits this request touches.
            ipr.link("set", index=index, flags=flag if on else 0, change=flag)


def set_promisc(name: str, on: bool) -> None:
    """Turn promiscuous mode on or off."""
    _set_flag(name, IFF_PROMISC, on, "promisc")


def set_allmulti(name: str, on: bool) -> None:
    """Turn all-multicast mode on or off."""
    _set_flag(name, IFF_ALLMULTI, on, "allmulti")


def set_txqlen(name: str, qlen: int) -> None:
    """Set the transmit queue length."""
    with rtnl() as ipr:
        index = index_of(name)
        with failing(f"set txqlen {qlen} of link '{name}'"):
            ipr.link("set", index=index, txqlen=qlen)


def link_present(name: str) -> bool:
    """True if a link called ``name`` exists here; one ioctl, no netlink socket (cheap enough for DEL paths)."""
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True
