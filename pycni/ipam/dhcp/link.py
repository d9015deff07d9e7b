"""The packet socket a lease talks DHCP through: opened inside the pod's netns, used from any thread.

Contract:

- ``open_link(netns, ifname)`` enters the netns (``pycni.net.netns``), sets
  the interface up when it is down (as the reference does: a DHCP client
  needs its link up before the address exists) and waits up to 2.5 s for
  its carrier (a DISCOVER sent before is dropped), and opens an AF_PACKET
  datagram socket for IPv4 bound to it. A socket belongs to the namespace
  it was created in, so the caller's thread never changes namespace and
  the interface name keeps meaning the pod's interface.
- ``PacketLink.receive`` returns inbound IPv4 packets only (the socket also
  sees our own outgoing ones); ``send`` puts one IPv4 packet in an Ethernet
  frame to the given MAC. Either raises ``OSError`` once the interface is gone.
- Errors opening it are ``LinkUnavailable`` naming the netns and interface.
"""

from __future__ import annotations

import contextlib
import select
import socket

from pycni.net.errors import LinkNotUp, NetError
from pycni.net.links import get_link, set_link_up, wait_oper_up
from pycni.net.netns import run_in_netns

__all__ = ["LinkUnavailable", "PacketLink", "open_link"]

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


class LinkUnavailable(Exception):
    """The pod's interface (or its netns) cannot be used; the message names them."""


class PacketLink:
    """IPv4 packets on one interface, through an AF_PACKET datagram socket (the kernel adds the Ethernet header)."""

    def __init__(self, sock: socket.socket, ifname: str, mac: bytes) -> None:
        self._sock = sock
        self._ifname = ifname
        self._mac = mac

    @property
    def mac(self) -> bytes:
        return self._mac

    def send(self, packet: bytes, dst_mac: bytes) -> None:
        self._sock.sendto(packet, (self._ifname, ETH_P_IP, 0, 1, dst_mac))

    def receive(self, timeout: float) -> tuple[bytes, bytes] | None:
        readable, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
        if not readable:
            return None
        data, address = self._sock.recvfrom(65535)
        if address[2] == PACKET_OUTGOING:
            return None  # our own send, looped back to packet sockets; the caller waits on
        return data, address[4]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> PacketLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_here(ifname: str) -> PacketLink:
    link = get_link(ifname)
    if not link.up:
        set_link_up(ifname)
        with contextlib.suppress(LinkNotUp):  # a DISCOVER sent before the carrier is up is lost; resends cover it
            wait_oper_up(ifname)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, socket.htons(ETH_P_IP))
    try:
        sock.bind((ifname, ETH_P_IP))
    except BaseException:
        sock.close()
        raise
    return PacketLink(sock, ifname, bytes.fromhex(link.mac.replace(":", "")))


def open_link(netns: str, ifname: str) -> PacketLink:
    """A packet socket on ``ifname`` in ``netns``; LinkUnavailable when either is gone."""
    try:
        return run_in_netns(netns, _open_here, ifname)
    except (NetError, OSError) as exc:
        raise LinkUnavailable(f"failed to open a DHCP socket on '{ifname}' in netns '{netns}': {exc}") from exc
