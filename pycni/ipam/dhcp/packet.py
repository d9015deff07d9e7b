"""DHCPv4 messages (RFC 2131/2132) and the IPv4/UDP datagrams that carry them: bytes in, values out.

Contract:

- ``Message`` is one BOOTP/DHCP message. ``options`` keeps the order they
  are sent in; a code appears once (``decode`` concatenates the pieces of a
  long option as RFC 3396 says, ``encode`` splits values over 255 bytes).
- ``decode`` reads the options of the ``file`` and ``sname`` fields too when
  option 52 (overload) says so, and raises ``MalformedPacket`` on anything
  that is not a well-formed BOOTP message with the DHCP magic cookie.
- ``frame_udp`` / ``parse_udp`` build and read the IPv4+UDP headers the
  client needs on a packet socket (no IP options; checksums computed on
  the way out; on the way in only the IP header's is checked, see
  ``parse_udp``). ``parse_udp`` returns None for anything else.

No I/O, no clock, no randomness: the caller picks xids.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from enum import IntEnum
from ipaddress import IPv4Address

__all__ = [
    "BOOTREPLY",
    "BOOTREQUEST",
    "CLIENT_PORT",
    "FLAG_BROADCAST",
    "SERVER_PORT",
    "Datagram",
    "MalformedPacket",
    "Message",
    "MessageType",
    "Opt",
    "decode",
    "encode",
    "frame_udp",
    "parse_udp",
]

BOOTREQUEST = 1
BOOTREPLY = 2
CLIENT_PORT = 68
SERVER_PORT = 67
FLAG_BROADCAST = 0x8000
MAGIC_COOKIE = b"\x63\x82\x53\x63"
_FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")  # op .. file: 236 bytes
_ZERO = IPv4Address(0)


class MessageType(IntEnum):
    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Opt(IntEnum):
    """The option codes this client reads or writes (any other code passes through as a number)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS_SERVERS = 6
    HOST_NAME = 12
    DOMAIN_NAME = 15
    STATIC_ROUTES = 33
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS_ID = 60
    CLIENT_ID = 61
    USER_CLASS = 77
    CLASSLESS_ROUTES = 121
    END = 255


class MalformedPacket(ValueError):
    """Bytes that are not a DHCP message (the reason is the message)."""


@dataclass(frozen=True)
class Message:
    op: int
    xid: int
    chaddr: bytes  # the client's hardware address (6 bytes on Ethernet)
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = _ZERO
    yiaddr: IPv4Address = _ZERO
    siaddr: IPv4Address = _ZERO
    giaddr: IPv4Address = _ZERO
    options: tuple[tuple[int, bytes], ...] = field(default=())

    def option(self, code: int) -> bytes | None:
        """The value of option ``code``, or None when absent."""
        for have, value in self.options:
            if have == code:
                return value
        return None

    @property
    def message_type(self) -> MessageType | None:
        raw = self.option(Opt.MESSAGE_TYPE)
        if raw is None or len(raw) != 1:
            return None
        try:
            return MessageType(raw[0])
        except ValueError:
            return None

    def with_option(self, code: int, value: bytes) -> Message:
        """This message with option ``code`` set to ``value`` (replacing it in place, else appended)."""
        kept = [(c, v) for c, v in self.options if c != code]
        if len(kept) == len(self.options):
            return replace(self, options=(*self.options, (code, value)))
        return replace(self, options=tuple((c, value if c == code else v) for c, v in self.options))


def encode(message: Message) -> bytes:
    """The wire form of ``message``: fixed fields, magic cookie, options, END, padded to 300 bytes (BOOTP's minimum)."""
    if len(message.chaddr) > 16:
        raise ValueError(f"chaddr is {len(message.chaddr)} bytes, at most 16 fit")
    head = _FIXED.pack(
        message.op,
        1 if len(message.chaddr) == 6 else 0,  # htype: Ethernet
        len(message.chaddr),
        0,  # hops
        message.xid,
        message.secs,
        message.flags,
        message.ciaddr.packed,
        message.yiaddr.packed,
        message.siaddr.packed,
        message.giaddr.packed,
        message.chaddr.ljust(16, b"\0"),
        b"",
        b"",
    )
    out = bytearray(head + MAGIC_COOKIE)
    for code, value in message.options:
        if code in (Opt.PAD, Opt.END):
            raise ValueError(f"option {code} carries no value")
        for start in range(0, max(len(value), 1), 255):  # RFC 3396: long values in several pieces
            piece = value[start : start + 255]
            out += bytes((code, len(piece))) + piece
    out.append(Opt.END)
    return bytes(out.ljust(300, b"\0"))


def decode(data: bytes) -> Message:
    """The message in ``data``; MalformedPacket when it is not one."""
    if len(data) < _FIXED.size + len(MAGIC_COOKIE):
        raise MalformedPacket(f"{len(data)} bytes is too short for a DHCP message")
    op, _htype, hlen, _hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, file = _FIXED.unpack_from(data)
    if data[_FIXED.size : _FIXED.size + 4] != MAGIC_COOKIE:
        raise MalformedPacket("no DHCP magic cookie")
    if op not in (BOOTREQUEST, BOOTREPLY):
        raise MalformedPacket(f"op {op} is neither BOOTREQUEST nor BOOTREPLY")
    if hlen > 16:
        raise MalformedPacket(f"hlen {hlen} is over 16")
    pieces: list[tuple[int, bytes]] = []
    _read_options(data[_FIXED.size + 4 :], pieces)
    overload = next((v for c, v in pieces if c == Opt.OVERLOAD), b"")
    if overload[:1] in (b"\x01", b"\x03"):
        _read_options(file, pieces)
    if overload[:1] in (b"\x02", b"\x03"):
        _read_options(sname, pieces)
    merged: dict[int, bytes] = {}
    for code, value in pieces:
        merged[code] = merged.get(code, b"") + value
    return Message(
        op=op,
        xid=xid,
        chaddr=chaddr[:hlen],
        secs=secs,
        flags=flags,
        ciaddr=IPv4Address(ci),
        yiaddr=IPv4Address(yi),
        siaddr=IPv4Address(si),
        giaddr=IPv4Address(gi),
        options=tuple(merged.items()),
    )


def _read_options(area: bytes, out: list[tuple[int, bytes]]) -> None:
    i = 0
    while i < len(area):
        code = area[i]
        if code == Opt.END:
            return
        if code == Opt.PAD:
            i += 1
            continue
        if i + 1 >= len(area) or i + 2 + area[i + 1] > len(area):
            raise MalformedPacket(f"option {code} runs past the end of the message")
        length = area[i + 1]
        out.append((code, bytes(area[i + 2 : i + 2 + length])))
        i += 2 + length


# -- IPv4 + UDP ------------------------------------------------------------------

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_PROTO_UDP = 17


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame_udp(src: IPv4Address, dst: IPv4Address, sport: int, dport: int, payload: bytes, *, ttl: int = 64) -> bytes:
    """An IPv4 packet (no options, DF clear) carrying one UDP datagram, checksums filled in."""
    udp_len = _UDP.size + len(payload)
    pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, _PROTO_UDP, udp_len)
    udp_sum = _checksum(pseudo + _UDP.pack(sport, dport, udp_len, 0) + payload) or 0xFFFF
    udp = _UDP.pack(sport, dport, udp_len, udp_sum) + payload
    header = _IPV4.pack(0x45, 0x10, _IPV4.size + len(udp), 0, 0, ttl, _PROTO_UDP, 0, src.packed, dst.packed)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + udp


@dataclass(frozen=True)
class Datagram:
    src: IPv4Address
    dst: IPv4Address
    sport: int
    dport: int
    payload: bytes


def parse_udp(packet: bytes) -> Datagram | None:
    """The UDP datagram in an IPv4 packet; None for other protocols, fragments or a bad IP header checksum."""
    if len(packet) < _IPV4.size:
        return None
    ver_ihl, _tos, total, _ident, frag, _ttl, proto, _sum, src, dst = _IPV4.unpack_from(packet)
    ihl = (ver_ihl & 0xF) * 4
    if ver_ihl >> 4 != 4 or proto != _PROTO_UDP or frag & 0x3FFF or ihl < 20 or total > len(packet):
        return None
    if _checksum(packet[:ihl]) != 0:
        return None
    udp = packet[ihl:total]
    if len(udp) < _UDP.size:
        return None
    sport, dport, length, _udp_sum = _UDP.unpack_from(udp)
    if length < _UDP.size or length > len(udp):
        return None
    # The UDP checksum is not checked: a packet socket sees a veth peer's packets before their checksum is
    # filled in (checksum offload leaves only the pseudo-header's sum there), as dhclient found long ago.
    return Datagram(IPv4Address(src), IPv4Address(dst), sport, dport, bytes(udp[_UDP.size :]))
