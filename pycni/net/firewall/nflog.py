"""NFLOG: packets nftables logs with ``log group N``, read from a netfilter netlink socket.

pyroute2 (0.9) has no NFLOG support, so this is a small struct-based
implementation of the nfnetlink_log protocol (linux/netfilter/nfnetlink_log.h).

Contract:

- ``subscribe(group, copy_range=128)`` opens a ``NETLINK_NETFILTER`` socket in
  the calling thread's network namespace (a socket's netns is fixed when it
  is created), binds it to the log group, asks for the first ``copy_range``
  bytes of each packet (headers only) and for every packet to be sent at
  once (queue threshold 1). Only one socket per namespace may hold a group:
  a second subscriber fails with ``NflogError`` naming the group (the
  kernel answers EPERM).
- ``NflogSocket.receive(timeout)`` returns the packets that arrived within
  ``timeout`` seconds ([] when none), parsed into ``LoggedPacket``s. When the
  socket's buffer overflowed (the kernel dropped messages: ENOBUFS) the
  packets are lost, ``dropped`` counts the overflows, and receiving goes on.
- ``parse_messages(data)`` and ``parse_headers(payload, family)`` are the pure
  parsers: one ``recv``'s bytes to packets, and an IP packet's first bytes to
  addresses, protocol and ports. Unit-tested without a kernel.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
from dataclasses import dataclass
from types import TracebackType

from pycni.net.errors import NetError
from pycni.net.netlink.wire import HEADER, NLM_F_REQUEST, attributes, nla

__all__ = ["LoggedPacket", "NflogError", "NflogSocket", "parse_headers", "parse_messages", "subscribe"]

NETLINK_NETFILTER = 12
_SUBSYS_ULOG = 4
_MSG_PACKET = 0
_MSG_CONFIG = 1
_NLMSG_ERROR = 2
_NLM_F_ACK = 0x4
_NFGENMSG = struct.Struct("!BBH")  # family, version, resource id (the group), network order
_NFNETLINK_V0 = 0

# config attributes and commands
_CFG_CMD = 1
_CFG_MODE = 2
_CFG_QTHRESH = 5
_CMD_BIND = 1
_COPY_PACKET = 2

# packet attributes
_ATTR_PACKET_HDR = 1
_ATTR_TIMESTAMP = 3
_ATTR_IFINDEX_INDEV = 4
_ATTR_IFINDEX_OUTDEV = 5
_ATTR_PAYLOAD = 9
_ATTR_PREFIX = 10

_PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP", 136: "UDPLite"}
_WITH_PORTS = {6, 17, 132, 136}
_IPV6_EXTENSIONS = {0, 43, 60}  # hop-by-hop, routing, destination options (fragment handled apart)
_IPV6_FRAGMENT = 44


class NflogError(NetError):
    """The NFLOG subscription failed."""


@dataclass(frozen=True)
class LoggedPacket:
    """One logged packet: the rule's log prefix and the packet's headers (what ``copy_range`` let through).

    ``protocol`` is a name (``TCP``, ``UDP``, ``SCTP``, ``ICMP``, ``ICMPv6``) or the number as text;
    ports are None for protocols without them or when the copy stops before them."""

    group: int
    prefix: str
    family: int  # 4 or 6
    src: str
    dst: str
    protocol: str
    sport: int | None = None
    dport: int | None = None
    timestamp: float | None = None  # the kernel's, when the packet carried one
    indev: int = 0
    outdev: int = 0


def parse_headers(payload: bytes, family: int) -> tuple[str, str, str, int | None, int | None] | None:
    """(src, dst, protocol, sport, dport) of an IPv4 or IPv6 packet's first bytes; None if too short."""
    if family == 4:
        if len(payload) < 20:
            return None
        header_length = (payload[0] & 0x0F) * 4
        proto = payload[9]
        src, dst = str(ipaddress.IPv4Address(payload[12:16])), str(ipaddress.IPv4Address(payload[16:20]))
        fragment_offset = struct.unpack_from("!H", payload, 6)[0] & 0x1FFF
        offset: int | None = header_length if fragment_offset == 0 else None
    elif family == 6:
        if len(payload) < 40:
            return None
        proto = payload[6]
        src, dst = str(ipaddress.IPv6Address(payload[8:24])), str(ipaddress.IPv6Address(payload[24:40]))
        offset = 40
        while proto in _IPV6_EXTENSIONS or proto == _IPV6_FRAGMENT:
            if offset + 8 > len(payload):
                offset = None
                break
            if proto == _IPV6_FRAGMENT:
                not_first = struct.unpack_from("!H", payload, offset + 2)[0] & 0xFFF8
                proto, offset = payload[offset], (None if not_first else offset + 8)
                if offset is None:
                    break
            else:
                proto, offset = payload[offset], offset + (payload[offset + 1] + 1) * 8
    else:
        return None
    name = _PROTOCOLS.get(proto, str(proto))
    if proto in _WITH_PORTS and offset is not None and offset + 4 <= len(payload):
        sport, dport = struct.unpack_from("!HH", payload, offset)
        return src, dst, name, sport, dport
    return src, dst, name, None, None


def parse_messages(data: bytes) -> list[LoggedPacket]:
    """Every NFULNL packet message in one ``recv``'s bytes; other messages are skipped."""
    packets = []
    offset = 0
    while offset + HEADER.size <= len(data):
        length, msg_type, _flags, _seq, _pid = HEADER.unpack_from(data, offset)
        if length < HEADER.size:
            break
        if msg_type == (_SUBSYS_ULOG << 8) | _MSG_PACKET and length >= HEADER.size + _NFGENMSG.size:
            packet = _packet(data, offset + HEADER.size, offset + length)
            if packet is not None:
                packets.append(packet)
        offset += (length + 3) & ~3
    return packets


def _packet(data: bytes, start: int, end: int) -> LoggedPacket | None:
    af, _version, group = _NFGENMSG.unpack_from(data, start)
    attrs = attributes(data, start + _NFGENMSG.size, end)
    family = 4 if af == socket.AF_INET else 6 if af == socket.AF_INET6 else 0
    headers = parse_headers(attrs.get(_ATTR_PAYLOAD, b""), family)
    if headers is None:
        return None
    src, dst, protocol, sport, dport = headers
    prefix = attrs.get(_ATTR_PREFIX, b"").split(b"\0", 1)[0].decode(errors="replace")
    stamp = attrs.get(_ATTR_TIMESTAMP)
    timestamp = None
    if stamp is not None and len(stamp) >= 16:
        seconds, micros = struct.unpack_from("!QQ", stamp)
        timestamp = seconds + micros / 1e6
    indev = attrs.get(_ATTR_IFINDEX_INDEV)
    outdev = attrs.get(_ATTR_IFINDEX_OUTDEV)
    return LoggedPacket(group, prefix, family, src, dst, protocol, sport, dport, timestamp,
                        struct.unpack("!I", indev)[0] if indev and len(indev) == 4 else 0,
                        struct.unpack("!I", outdev)[0] if outdev and len(outdev) == 4 else 0)


def _config(group: int, seq: int, *attrs: bytes) -> bytes:
    body = _NFGENMSG.pack(socket.AF_UNSPEC, _NFNETLINK_V0, group) + b"".join(attrs)
    return HEADER.pack(HEADER.size + len(body), (_SUBSYS_ULOG << 8) | _MSG_CONFIG, NLM_F_REQUEST | _NLM_F_ACK,
                       seq, 0) + body


class NflogSocket:
    def __init__(self, group: int, copy_range: int = 128, receive_buffer: int = 1 << 20) -> None:
        self.group = group
        self.dropped = 0
        self._backlog: list[LoggedPacket] = []
        self._seq = 0
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            self._sock.bind((0, 0))
            self._request(struct.pack("B", _CMD_BIND).ljust(4, b"\0"), _CFG_CMD)
            self._request(struct.pack("!IBB", copy_range, _COPY_PACKET, 0), _CFG_MODE)
            self._request(struct.pack("!I", 1), _CFG_QTHRESH)
        except OSError as exc:
            self._sock.close()
            why = exc.strerror or str(exc)
            if exc.errno in (errno.EBUSY, errno.EPERM):  # the kernel answers EPERM when another socket has it
                why += " (another listener holds the group, or CAP_NET_ADMIN is missing)"
            raise NflogError(f"failed to subscribe to NFLOG group {group}: {why}") from exc

    def _request(self, payload: bytes, attr_type: int) -> None:
        self._seq += 1
        self._sock.send(_config(self.group, self._seq, nla(attr_type, payload)))
        while True:  # packets may come before the acknowledgement: keep them
            data = self._sock.recv(1 << 16)
            offset = 0
            while offset + HEADER.size <= len(data):
                length, msg_type, _flags, seq, _pid = HEADER.unpack_from(data, offset)
                if length < HEADER.size:
                    break
                if msg_type == _NLMSG_ERROR and seq == self._seq:
                    code = -struct.unpack_from("=i", data, offset + HEADER.size)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return
                self._backlog += parse_messages(data[offset:offset + length])
                offset += (length + 3) & ~3

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self, timeout: float | None = None) -> list[LoggedPacket]:
        """Packets that arrived within ``timeout`` seconds (None: wait for some)."""
        packets, self._backlog = self._backlog, []
        if packets:
            return packets
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return []
        while True:
            try:
                data = self._sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return packets
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.dropped += 1  # the kernel dropped messages; the socket goes on
                continue
            packets += parse_messages(data)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> NflogSocket:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def subscribe(group: int, copy_range: int = 128) -> NflogSocket:
    """Listen to NFLOG ``group`` in the calling thread's network namespace."""
    return NflogSocket(group, copy_range)
