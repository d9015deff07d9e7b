"""Packet sockets: IPv4 packets to and from one interface, below the IP stack (a DHCP client's socket).

Contract:

- ``open_ipv4_packet_socket(netns, ifname)`` enters the netns (a thread of
  ``run_in_netns``), sets the interface up when it is down and waits up to
  2.5 s for its carrier (a frame sent before is dropped), and opens an
  AF_PACKET datagram socket for IPv4 bound to it. A socket belongs to the
  namespace it was created in, so the caller's thread never changes
  namespace and the interface name keeps meaning the one in ``netns``.
- ``PacketSocket.receive`` returns inbound IPv4 packets and the sender's
  MAC (the socket also sees our own outgoing ones: skipped); ``send`` puts
  one IPv4 packet in an Ethernet frame to a MAC, the kernel writing the
  header. Both raise ``OSError`` once the interface is gone.
- Opening fails with ``NetError`` (``LinkNotFound``, ``NetnsNotFound``, ...)
  naming the netns and interface.
"""

from __future__ import annotations

import contextlib
import select
import socket

from pycni.net.errors import LinkNotUp, NetError
from pycni.net.links import get_link, set_link_up, wait_oper_up
from pycni.net.netlink.errors import describe
from pycni.net.netns import run_in_netns

__all__ = ["ETH_P_IP", "PacketSocket", "open_ipv4_packet_socket"]

ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


class PacketSocket:
    """IPv4 packets on one interface, through an AF_PACKET datagram socket (the kernel adds the Ethernet header)."""

    def __init__(self, sock: socket.socket, ifname: str, mac: bytes) -> None:
        self._sock = sock
        self._ifname = ifname
        self._mac = mac

    @property
    def mac(self) -> bytes:
        """The interface's hardware address."""
        return self._mac

    def send(self, packet: bytes, dst_mac: bytes) -> None:
        self._sock.sendto(packet, (self._ifname, ETH_P_IP, 0, 1, dst_mac))

    def receive(self, timeout: float) -> tuple[bytes, bytes] | None:
        """The next inbound IPv4 packet and its source MAC; None when nothing came within ``timeout`` seconds."""
        readable, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
        if not readable:
            return None
        data, address = self._sock.recvfrom(65535)
        if address[2] == PACKET_OUTGOING:
            return None  # our own send, looped back to packet sockets; the caller waits on
        return data, address[4]

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> PacketSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_here(ifname: str) -> PacketSocket:
    link = get_link(ifname)
    if not link.up:
        set_link_up(ifname)
        with contextlib.suppress(LinkNotUp):  # frames sent before the carrier is up are lost: callers resend
            wait_oper_up(ifname)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, socket.htons(ETH_P_IP))
    try:
        sock.bind((ifname, ETH_P_IP))
    except OSError as exc:
        sock.close()
        raise NetError(f"failed to bind a packet socket to '{ifname}': {describe(exc)}", errno=exc.errno) from exc
    return PacketSocket(sock, ifname, bytes.fromhex(link.mac.replace(":", "")))


def open_ipv4_packet_socket(netns: str, ifname: str) -> PacketSocket:
    """A packet socket for IPv4 on ``ifname`` in ``netns`` (NetError when either is gone)."""
    return run_in_netns(netns, _open_here, ifname)
