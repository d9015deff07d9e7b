"""The pod's interface as a DHCP client sees it: a packet socket opened in the pod's netns (``pycni.net.packet``).

``open_link(netns, ifname)`` is the daemon's default ``LinkOpener``; any
failure to open it is ``LinkUnavailable`` naming the netns and interface
(the pod or its interface is gone, or was never there).
"""

from __future__ import annotations

from pycni.net.errors import NetError
from pycni.net.packet import PacketSocket, open_ipv4_packet_socket

__all__ = ["LinkUnavailable", "open_link"]


class LinkUnavailable(Exception):
    """The pod's interface (or its netns) cannot be used; the message names them."""


def open_link(netns: str, ifname: str) -> PacketSocket:
    """A packet socket on ``ifname`` in ``netns``; LinkUnavailable when either is gone."""
    try:
        return open_ipv4_packet_socket(netns, ifname)
    except (NetError, OSError) as exc:
        raise LinkUnavailable(f"failed to open a DHCP socket on '{ifname}' in netns '{netns}': {exc}") from exc
