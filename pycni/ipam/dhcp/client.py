"""The DHCP client's exchanges over a ``Link``: acquire (DISCOVER, OFFER, REQUEST, ACK), renew, rebind, release.

Contract:

- ``Link`` is the seam: raw IPv4 packets to and from a hardware address on
  the pod's interface (``pycni.ipam.dhcp.link`` is the packet socket;
  tests pass a scripted server).
- Every exchange sends from UDP port 68 to 67 and waits for the reply of
  its own xid to its own hardware address, resending on a doubling interval
  (1, 2, 4 s, ... at most ``Timing.resend_max``) until ``Timing.timeout``
  has passed; then it raises ``NoAnswer``. A NAK raises ``Refused``.
- ``acquire`` restarts from DISCOVER once after a NAK (the offer was taken
  meanwhile), as the reference does.
- ``renew`` unicasts to the server that granted the lease (IP and the MAC
  its replies came from: no ARP needed, the pod's address may not be set
  yet); ``rebind`` broadcasts; both put the leased address in ``ciaddr``.
- ``release`` unicasts one DHCPRELEASE and returns once it left the socket
  (RFC 2131 expects no answer). The caller decides when: the daemon does it
  before answering DEL, while the interface still exists.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol

from pycni.ipam.dhcp.options import OptionPlan
from pycni.ipam.dhcp.packet import (
    BOOTREPLY,
    BOOTREQUEST,
    CLIENT_PORT,
    FLAG_BROADCAST,
    SERVER_PORT,
    MalformedPacket,
    Message,
    MessageType,
    Opt,
    decode,
    encode,
    frame_udp,
    parse_udp,
)

__all__ = ["BROADCAST_MAC", "DEFAULT_TIMING", "Client", "DhcpError", "Link", "NoAnswer", "Refused", "Reply", "Timing"]

BROADCAST_MAC = b"\xff" * 6
_ANY = IPv4Address(0)
_ALL = IPv4Address("255.255.255.255")
_MAX_MESSAGE_SIZE = struct.pack("!H", 1500)


class Link(Protocol):
    """IPv4 packets on one Ethernet interface."""

    @property
    def mac(self) -> bytes: ...

    def send(self, packet: bytes, dst_mac: bytes) -> None: ...

    def receive(self, timeout: float) -> tuple[bytes, bytes] | None:
        """The next IPv4 packet that arrived and its source MAC; None when ``timeout`` seconds passed first."""
        ...


class DhcpError(Exception):
    """An exchange failed; the message says which and why."""


class NoAnswer(DhcpError):
    pass


class Refused(DhcpError):
    pass


@dataclass(frozen=True)
class Timing:
    timeout: float = 10.0  # per exchange
    resend_max: float = 62.0  # the longest wait between two sends of one request


DEFAULT_TIMING = Timing()


@dataclass(frozen=True)
class Reply:
    message: Message
    server_mac: bytes


class Client:
    """Exchanges for one lease: its hardware address, options and timing."""

    def __init__(
        self,
        link: Link,
        options: OptionPlan,
        *,
        broadcast: bool = False,
        timing: Timing = DEFAULT_TIMING,
        xids: Callable[[], int] = lambda: random.getrandbits(32),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.options = options
        self.broadcast = broadcast
        self.timing = timing
        self._xids = xids
        self._monotonic = monotonic

    # -- the exchanges ---------------------------------------------------------

    def acquire(self) -> Reply:
        """DISCOVER, OFFER, REQUEST, ACK: the ACK and the MAC it came from."""
        for attempt in (1, 2):
            xid = self._xids()
            discover = self._message(MessageType.DISCOVER, xid)
            offer = self._exchange(discover, BROADCAST_MAC, _ALL, "DHCPOFFER", {MessageType.OFFER})
            server_id = offer.message.option(Opt.SERVER_ID)
            if server_id is None:
                raise DhcpError("the DHCPOFFER names no server identifier")
            request = self._message(
                MessageType.REQUEST,
                xid,
                extra=((Opt.REQUESTED_IP, offer.message.yiaddr.packed), (Opt.SERVER_ID, server_id)),
            )
            try:
                return self._expect_ack(request, BROADCAST_MAC, _ALL)
            except Refused:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def renew(self, address: IPv4Address, server: IPv4Address, server_mac: bytes) -> Reply:
        request = self._message(MessageType.REQUEST, self._xids(), ciaddr=address)
        return self._expect_ack(request, server_mac, server, src=address)

    def rebind(self, address: IPv4Address) -> Reply:
        request = self._message(MessageType.REQUEST, self._xids(), ciaddr=address)
        return self._expect_ack(request, BROADCAST_MAC, _ALL, src=address)

    def release(self, address: IPv4Address, server: IPv4Address, server_mac: bytes) -> None:
        release = self._message(
            MessageType.RELEASE, self._xids(), ciaddr=address, extra=((Opt.SERVER_ID, server.packed),), full=False
        )
        self._send(release, server_mac, server, address)

    # -- the parts -------------------------------------------------------------

    def _message(
        self,
        kind: MessageType,
        xid: int,
        *,
        ciaddr: IPv4Address = _ANY,
        extra: tuple[tuple[int, bytes], ...] = (),
        full: bool = True,
    ) -> Message:
        options: list[tuple[int, bytes]] = [(Opt.MESSAGE_TYPE, bytes((kind,))), *extra]
        if full:  # what a RELEASE carries is only its type, server and client id
            options += self.options.provided
            options.append((Opt.MAX_MESSAGE_SIZE, _MAX_MESSAGE_SIZE))
            if self.options.requested:
                options.append((Opt.PARAMETER_REQUEST_LIST, bytes(self.options.requested)))
        else:
            options += [(c, v) for c, v in self.options.provided if c == Opt.CLIENT_ID]
        flags = FLAG_BROADCAST if self.broadcast and ciaddr == _ANY else 0
        return Message(
            op=BOOTREQUEST, xid=xid, chaddr=self.link.mac, flags=flags, ciaddr=ciaddr, options=tuple(options)
        )

    def _expect_ack(self, request: Message, dst_mac: bytes, dst: IPv4Address, src: IPv4Address = _ANY) -> Reply:
        reply = self._exchange(request, dst_mac, dst, "DHCPACK", {MessageType.ACK, MessageType.NAK}, src=src)
        if reply.message.message_type is MessageType.NAK:
            text = (reply.message.option(Opt.MESSAGE) or b"").decode(errors="replace")
            raise Refused(f"the DHCP server refused the request (DHCPNAK{': ' + text if text else ''})")
        return reply

    def _send(self, message: Message, dst_mac: bytes, dst: IPv4Address, src: IPv4Address) -> None:
        self.link.send(frame_udp(src, dst, CLIENT_PORT, SERVER_PORT, encode(message)), dst_mac)

    def _exchange(
        self,
        request: Message,
        dst_mac: bytes,
        dst: IPv4Address,
        wanted: str,
        kinds: set[MessageType],
        *,
        src: IPv4Address = _ANY,
    ) -> Reply:
        start = self._monotonic()
        deadline = start + self.timing.timeout
        interval = 1.0
        while True:
            self._send(request, dst_mac, dst, src)
            resend_at = min(self._monotonic() + interval, deadline)
            interval = min(interval * 2, self.timing.resend_max)
            while (left := resend_at - self._monotonic()) > 0:
                got = self.link.receive(left)
                if got is None:
                    continue
                reply = _reply_to(request, *got)
                if reply is not None and reply.message.message_type in kinds:
                    return reply
            if self._monotonic() >= deadline:
                raise NoAnswer(f"no {wanted} within {self.timing.timeout:g}s (xid {request.xid:#010x})")


def _reply_to(request: Message, packet: bytes, src_mac: bytes) -> Reply | None:
    """The server's reply to ``request`` in ``packet``, or None for anything else on the link."""
    datagram = parse_udp(packet)
    if datagram is None or datagram.dport != CLIENT_PORT or datagram.sport != SERVER_PORT:
        return None
    try:
        message = decode(datagram.payload)
    except MalformedPacket:
        return None
    if message.op != BOOTREPLY or message.xid != request.xid or message.chaddr != request.chaddr:
        return None
    return Reply(message, src_mac)
