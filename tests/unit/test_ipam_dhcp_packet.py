"""pycni.ipam.dhcp.packet: DHCP messages and their IPv4/UDP framing, bytes in and out."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address

import pytest

from pycni.ipam.dhcp.packet import (
    BOOTREPLY,
    BOOTREQUEST,
    MAGIC_COOKIE,
    MalformedPacket,
    Message,
    MessageType,
    Opt,
    decode,
    encode,
    frame_udp,
    parse_udp,
)

MAC = bytes.fromhex("0a1b2c3d4e5f")


def test_a_discover_encodes_as_rfc_2131_lays_it_out_and_decodes_back() -> None:
    message = Message(
        op=BOOTREQUEST,
        xid=0x12345678,
        chaddr=MAC,
        flags=0x8000,
        options=((Opt.MESSAGE_TYPE, b"\x01"), (Opt.CLIENT_ID, b"\x00abc"), (Opt.PARAMETER_REQUEST_LIST, b"\x03\x01")),
    )
    wire = encode(message)
    assert len(wire) == 300  # padded to BOOTP's minimum
    assert wire[:4] == bytes((1, 1, 6, 0))  # op, htype Ethernet, hlen, hops
    assert wire[4:8] == bytes.fromhex("12345678") and wire[10:12] == b"\x80\x00"
    assert wire[28:34] == MAC and wire[236:240] == MAGIC_COOKIE
    assert wire[240:243] == bytes((53, 1, 1))
    assert decode(wire) == message
    assert decode(wire).message_type is MessageType.DISCOVER


def test_addresses_round_trip() -> None:
    message = Message(
        op=BOOTREPLY,
        xid=7,
        chaddr=MAC,
        ciaddr=IPv4Address("10.0.0.9"),
        yiaddr=IPv4Address("10.0.0.10"),
        siaddr=IPv4Address("10.0.0.1"),
        giaddr=IPv4Address("10.0.0.2"),
    )
    assert decode(encode(message)) == message


def test_long_options_are_split_on_the_way_out_and_joined_on_the_way_in() -> None:
    value = bytes(range(256)) * 2  # 512 bytes: three pieces (RFC 3396)
    wire = encode(Message(op=BOOTREQUEST, xid=1, chaddr=MAC, options=((Opt.CLASSLESS_ROUTES, value),)))
    assert wire.count(bytes((121, 255))) == 2
    assert decode(wire).option(Opt.CLASSLESS_ROUTES) == value


def test_options_overloaded_into_file_and_sname_are_read() -> None:
    wire = bytearray(encode(Message(op=BOOTREPLY, xid=1, chaddr=MAC, options=((Opt.OVERLOAD, b"\x03"),))))
    wire[108:114] = bytes((Opt.HOST_NAME, 4)) + b"pod1"  # file
    wire[114] = Opt.END
    wire[44:50] = bytes((Opt.DOMAIN_NAME, 3)) + b"lan" + bytes((Opt.END,))  # sname
    decoded = decode(bytes(wire))
    assert decoded.option(Opt.HOST_NAME) == b"pod1" and decoded.option(Opt.DOMAIN_NAME) == b"lan"


def test_pad_options_are_skipped() -> None:
    wire = bytearray(encode(Message(op=BOOTREPLY, xid=1, chaddr=MAC)))
    wire[240:246] = bytes((0, 0, 53, 1, 5, 255))
    assert decode(bytes(wire)).message_type is MessageType.ACK


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda w: w[:100], "too short"),
        (lambda w: w[:236] + b"XXXX" + w[240:], "no DHCP magic cookie"),
        (lambda w: bytes((9,)) + w[1:], "op 9"),
        (lambda w: w[:240] + bytes((53, 10, 1)), "runs past the end"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(mangle, reason: str) -> None:
    wire = encode(Message(op=BOOTREQUEST, xid=1, chaddr=MAC, options=((Opt.MESSAGE_TYPE, b"\x01"),)))
    with pytest.raises(MalformedPacket, match=reason):
        decode(mangle(wire))


def test_message_type_of_an_odd_value_is_none() -> None:
    assert Message(op=BOOTREPLY, xid=1, chaddr=MAC, options=((Opt.MESSAGE_TYPE, b"\x63"),)).message_type is None
    assert Message(op=BOOTREPLY, xid=1, chaddr=MAC).message_type is None


def test_with_option_replaces_in_place_or_appends() -> None:
    m = Message(op=BOOTREQUEST, xid=1, chaddr=MAC, options=((53, b"\x01"), (61, b"a")))
    assert m.with_option(53, b"\x03").options == ((53, b"\x03"), (61, b"a"))
    assert m.with_option(12, b"h").options == ((53, b"\x01"), (61, b"a"), (12, b"h"))


def test_udp_framing_round_trips_with_valid_checksums() -> None:
    src, dst = IPv4Address("0.0.0.0"), IPv4Address("255.255.255.255")
    packet = frame_udp(src, dst, 68, 67, b"hello")
    assert packet[0] == 0x45 and packet[9] == 17 and struct.unpack("!H", packet[2:4])[0] == 20 + 8 + 5
    datagram = parse_udp(packet)
    assert datagram is not None
    assert (datagram.src, datagram.dst, datagram.sport, datagram.dport, datagram.payload) == (
        src,
        dst,
        68,
        67,
        b"hello",
    )
    # The UDP checksum verifies as the kernel would check it: over the pseudo-header, summing to zero.
    pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 17, 13)
    total = sum(struct.unpack("!" + "H" * ((len(pseudo) + 14) // 2), pseudo + packet[20:] + b"\0"))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF


def test_parse_udp_ignores_what_is_not_one_whole_udp_datagram() -> None:
    packet = frame_udp(IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 67, 68, b"x" * 10)
    assert parse_udp(packet[:10]) is None
    assert parse_udp(packet[:9] + b"\x06" + packet[10:]) is None  # TCP
    assert parse_udp(packet[:6] + b"\x20\x00" + packet[8:]) is None  # a fragment
    assert parse_udp(packet[:12] + b"\x00\x00" + packet[14:]) is None  # bad IP header checksum
    assert parse_udp(packet[:-4]) is None  # shorter than its total length
    # The UDP checksum is not checked: a veth peer's packets arrive before it is filled in.
    assert parse_udp(packet[:26] + b"\x12\x34" + packet[28:]) is not None
