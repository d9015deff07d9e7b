"""A scripted DHCP server behind a fake ``Link``, for the dhcp client and daemon unit tests.

``FakeServer`` hands out addresses from 10.9.0.100 on and answers DISCOVER,
REQUEST (selecting, renewing, rebinding) and RELEASE as RFC 2131 says;
``FakeLink`` is the pod's side: what the client sends reaches the server at
once, and its replies wait in a queue for ``receive``. Switches make it drop
requests (``silent``), NAK them (``refuse``) or remember what it saw (``seen``).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from pycni.ipam.dhcp.packet import (
    BOOTREPLY,
    CLIENT_PORT,
    SERVER_PORT,
    Message,
    MessageType,
    Opt,
    decode,
    encode,
    frame_udp,
    parse_udp,
)

SERVER_IP = IPv4Address("10.9.0.1")
SERVER_MAC = bytes.fromhex("020000000001")


@dataclass
class Seen:
    kind: MessageType
    message: Message
    dst_mac: bytes
    dst_ip: IPv4Address
    src_ip: IPv4Address


@dataclass
class FakeServer:
    lease_time: int = 120
    t1: int | None = 60
    t2: int | None = 105
    silent: bool = False
    refuse: bool = False
    leases: dict[bytes, IPv4Address] = field(default_factory=dict)  # client id -> address
    seen: list[Seen] = field(default_factory=list)
    extra: tuple[tuple[int, bytes], ...] = ((Opt.ROUTER, SERVER_IP.packed),)
    _next: int = 100

    def handle(self, packet: bytes, dst_mac: bytes) -> Message | None:
        datagram = parse_udp(packet)
        assert datagram is not None and (datagram.sport, datagram.dport) == (CLIENT_PORT, SERVER_PORT)
        message = decode(datagram.payload)
        kind = message.message_type
        assert kind is not None
        self.seen.append(Seen(kind, message, dst_mac, datagram.dst, datagram.src))
        client = message.option(Opt.CLIENT_ID) or message.chaddr
        if self.silent or kind in (MessageType.RELEASE, MessageType.DECLINE):
            if kind is MessageType.RELEASE and not self.silent:
                self.leases.pop(client, None)
            return None
        if kind is MessageType.DISCOVER:
            return self._reply(message, MessageType.OFFER, self._address_for(client))
        if kind is MessageType.REQUEST:
            wanted = message.option(Opt.REQUESTED_IP)
            address = IPv4Address(wanted) if wanted else message.ciaddr
            if self.refuse or self.leases.get(client, address) != address:
                return self._reply(message, MessageType.NAK, IPv4Address(0))
            self.leases[client] = address
            return self._reply(message, MessageType.ACK, address)
        return None

    def _address_for(self, client: bytes) -> IPv4Address:
        if client not in self.leases:
            self.leases[client] = IPv4Address(f"10.9.0.{self._next}")
            self._next += 1
        return self.leases[client]

    def _reply(self, request: Message, kind: MessageType, address: IPv4Address) -> Message:
        options: list[tuple[int, bytes]] = [(Opt.MESSAGE_TYPE, bytes((kind,))), (Opt.SERVER_ID, SERVER_IP.packed)]
        if kind is not MessageType.NAK:
            options += [
                (Opt.LEASE_TIME, struct.pack("!I", self.lease_time)),
                (Opt.SUBNET_MASK, bytes((255, 255, 255, 0))),
            ]
            if self.t1 is not None:
                options.append((Opt.RENEWAL_TIME, struct.pack("!I", self.t1)))
            if self.t2 is not None:
                options.append((Opt.REBINDING_TIME, struct.pack("!I", self.t2)))
            options += self.extra
        return Message(op=BOOTREPLY, xid=request.xid, chaddr=request.chaddr, yiaddr=address, options=tuple(options))

    def kinds(self) -> list[MessageType]:
        return [s.kind for s in self.seen]


class FakeClock:
    """Time that passes only when a test (or a wait on a ``FakeLink``) says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLink:
    """The pod's interface: sends reach ``server`` at once; its replies (and any noise) wait in a queue.

    Waiting on an empty queue moves ``clock`` on by the whole timeout, as a real wait would.
    """

    def __init__(
        self, server: FakeServer, mac: bytes = bytes.fromhex("0a0000000002"), clock: FakeClock | None = None
    ) -> None:
        self.server = server
        self.clock = clock or FakeClock()
        self.mac = mac
        self.queue: deque[tuple[bytes, bytes]] = deque()
        self.closed = False
        self.waited = 0.0

    def send(self, packet: bytes, dst_mac: bytes) -> None:
        reply = self.server.handle(packet, dst_mac)
        if reply is not None:
            self.queue.append((frame_udp(SERVER_IP, IPv4Address("255.255.255.255"), 67, 68, encode(reply)), SERVER_MAC))

    def receive(self, timeout: float) -> tuple[bytes, bytes] | None:
        if self.queue:
            return self.queue.popleft()
        self.waited += timeout
        self.clock.now += timeout
        return None

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
