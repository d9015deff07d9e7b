"""pycni.net.firewall.nft_dump's decoding of one rule message (the netns test compares with libnftables), and
when it takes a dump for whole."""

from __future__ import annotations

import errno
import struct

from pycni.net.firewall import nft_dump
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


def _expr(name: bytes, *data: bytes) -> bytes:
    return _nla(1, _nla(1, name + b"\0") + _nla(0x8000 | 2, b"".join(data)))


def test_summary_of_an_iptables_nft_rule() -> None:
    """``-s 10.1.0.1/32 -m comment --comment t -j CNI-ADMIN`` as iptables-nft encodes it."""
    from pycni.net.firewall.nft_dump import RuleSummary, summarize_rule

    comment_match = _expr(b"match", _nla(1, b"comment\0"), _nla(2, b"\0\0\0\0"), _nla(3, b"t".ljust(256, b"\0")))
    verdict = _nla(0x8000 | 2, _nla(1, struct.pack(">i", -3)) + _nla(2, b"CNI-ADMIN\0"))
    immediate = _expr(b"immediate", _nla(1, b"\0\0\0\0"), _nla(0x8000 | 2, verdict))
    exprs = _nla(0x8000 | 4, _expr(b"payload") + _expr(b"cmp") + comment_match + _expr(b"counter") + immediate)
    message = _message(_nla(1, b"filter\0"), _nla(3, (9).to_bytes(8, "big")), exprs)
    assert summarize_rule(message) == RuleSummary(
        9, "", "t", ("payload", "cmp", "match:comment", "counter", "immediate"), "jump CNI-ADMIN")
    accept = _expr(b"immediate", _nla(0x8000 | 2, _nla(0x8000 | 2, _nla(1, struct.pack(">i", 1)))))
    assert summarize_rule(_message(_nla(0x8000 | 4, accept))).verdict == "accept"


def _dump_message(msg_type: int, res_id: int = 0, flags: int = 0) -> bytes:
    body = nft_dump._NFGENMSG.pack(1, 0, res_id) if msg_type != nft_dump._NLMSG_DONE else b"\0\0\0\0"
    return nft_dump._HEADER.pack(nft_dump._HEADER.size + len(body), msg_type, flags, 1, 0) + body


def _collected(*messages: bytes) -> tuple[int, int]:
    import socket

    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with ours, kernel:
        kernel.send(b"".join(messages))
        found, code = nft_dump._collect(ours)
    return len(found), code


RULE = (nft_dump.NFNL_SUBSYS_NFTABLES << 8) | 6  # NFT_MSG_NEWRULE


def test_a_dump_whose_messages_come_from_one_generation_is_whole() -> None:
    assert _collected(_dump_message(RULE, 7), _dump_message(RULE, 7), _dump_message(nft_dump._NLMSG_DONE)) == (2, 0)


def test_a_dump_written_across_two_generations_is_asked_again() -> None:
    # The kernel samples the generation when a part of a dump starts: a commit during the last part is not
    # marked NLM_F_DUMP_INTR, but the messages written after it carry the new generation.
    done = _dump_message(nft_dump._NLMSG_DONE)
    assert _collected(_dump_message(RULE, 7), _dump_message(RULE, 8), done)[1] == errno.EINTR


def test_a_dump_the_kernel_marks_interrupted_is_asked_again() -> None:
    done = _dump_message(nft_dump._NLMSG_DONE, flags=nft_dump._NLM_F_DUMP_INTR)
    assert _collected(_dump_message(RULE, 7), done)[1] == errno.EINTR


def _rule_message(handle: int, res_id: int = 7) -> bytes:
    body = nft_dump._NFGENMSG.pack(1, 0, res_id) + _nla(1, b"t\0") + _nla(2, b"c\0")
    body += _nla(3, handle.to_bytes(8, "big"))
    return nft_dump._HEADER.pack(nft_dump._HEADER.size + len(body), RULE, 2, 1, 0) + body


def test_a_rule_dumped_twice_means_the_dump_raced_a_batch() -> None:
    # A batch links the rules it inserts into the chain before its commit; a dump that resumes by counting
    # entries then sends an earlier rule again, and nothing in the kernel's answer flags it.
    done = _dump_message(nft_dump._NLMSG_DONE)
    assert _collected(_rule_message(4), _rule_message(5), _rule_message(5), done)[1] == errno.EINTR
    assert _collected(_rule_message(4), _rule_message(5), _rule_message(6), done) == (3, 0)
