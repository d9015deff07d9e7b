"""pycni.net.firewall.nft_dump's decoding of one rule message (the netns test compares with libnftables)."""

from __future__ import annotations

import struct

from pycni.net.firewall.nft_dump import parse_rule


def _nla(kind: int, payload: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def _message(*attrs: bytes) -> bytes:
    body = struct.pack("=BBH", 1, 0, 0) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), (10 << 8) | 6, 0, 1, 0) + body


def test_handle_and_comment() -> None:
    comment = b"abc, net: n\0"
    userdata = bytes([1, 2, 9, 9]) + bytes([0, len(comment)]) + comment  # another TLV first, then the comment
    message = _message(_nla(1, b"t\0"), _nla(3, (1234).to_bytes(8, "big")), _nla(0x8000 | 4, b""), _nla(7, userdata))
    assert parse_rule(message) == (1234, "abc, net: n")


def test_a_rule_without_user_data_has_no_comment() -> None:
    assert parse_rule(_message(_nla(3, (7).to_bytes(8, "big")))) == (7, "")
