"""The NFLOG parsers over bytes built as the kernel builds them (no kernel needed)."""

from __future__ import annotations

import ipaddress
import socket
import struct

from pycni.net.firewall.nflog import LoggedPacket, parse_headers, parse_messages


def nla(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def ipv4_tcp(src: str, dst: str, sport: int, dport: int, fragment: int = 0) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 60, 1, fragment, 64, 6, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    return header + struct.pack("!HHII", sport, dport, 1, 0)


def ipv6_udp(src: str, dst: str, sport: int, dport: int, hop_by_hop: bool = False) -> bytes:
    next_header = 0 if hop_by_hop else 17
    header = struct.pack("!IHBB16s16s", 6 << 28, 8, next_header, 64,
                         ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed)
    extension = bytes([17, 0]) + b"\0" * 6 if hop_by_hop else b""
    return header + extension + struct.pack("!HHHH", sport, dport, 8, 0)


def message(family: int, group: int, prefix: str, payload: bytes, stamp: tuple[int, int] | None = None) -> bytes:
    body = struct.pack("!BBH", family, 0, group)
    body += nla(1, struct.pack("!HBB", 0x0800, 2, 0)) + nla(10, prefix.encode() + b"\0")
    if stamp is not None:
        body += nla(3, struct.pack("!QQ", *stamp))
    body += nla(4, struct.pack("!I", 7)) + nla(9, payload)
    return struct.pack("=IHHII", 16 + len(body), (4 << 8) | 0, 0, 0, 0) + body


def test_ipv4_tcp_and_ipv6_udp_headers() -> None:
    assert parse_headers(ipv4_tcp("10.244.1.10", "10.244.1.11", 40000, 80), 4) == (
        "10.244.1.10", "10.244.1.11", "TCP", 40000, 80)
    assert parse_headers(ipv6_udp("fd00:1::10", "fd00:1::11", 5353, 53, hop_by_hop=True), 6) == (
        "fd00:1::10", "fd00:1::11", "UDP", 5353, 53)
    # a later fragment has no ports; a copy cut before the ports neither
    assert parse_headers(ipv4_tcp("10.0.0.1", "10.0.0.2", 1, 2, fragment=10), 4) == ("10.0.0.1", "10.0.0.2", "TCP",
                                                                                    None, None)
    assert parse_headers(ipv4_tcp("10.0.0.1", "10.0.0.2", 1, 2)[:22], 4) == ("10.0.0.1", "10.0.0.2", "TCP", None, None)
    assert parse_headers(b"\x45" * 10, 4) is None


def test_messages_in_one_receive() -> None:
    data = message(socket.AF_INET, 2, "pycni D I x/b ", ipv4_tcp("10.244.1.10", "10.244.1.11", 40000, 80),
                   stamp=(1_700_000_000, 250_000))
    data += struct.pack("=IHHII", 20, 2, 0, 0, 0) + b"\0" * 4  # an ack in between is skipped
    data += message(socket.AF_INET6, 2, "pycni D E y/a ", ipv6_udp("fd00:1::12", "fd00:2::10", 5353, 53))
    assert parse_messages(data) == [
        LoggedPacket(2, "pycni D I x/b ", 4, "10.244.1.10", "10.244.1.11", "TCP", 40000, 80, 1_700_000_000.25, 7, 0),
        LoggedPacket(2, "pycni D E y/a ", 6, "fd00:1::12", "fd00:2::10", "UDP", 5353, 53, None, 7, 0),
    ]
