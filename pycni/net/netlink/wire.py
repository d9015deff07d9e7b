"""rtnetlink on the wire: constants, the attribute codec, and one request per blocking socket.

Contract:

- ``exchange(data, strict=False)`` sends one encoded request on a netlink
  socket opened for it in the calling thread's netns (a socket's netns is
  fixed at creation, and threads here move between namespaces) and returns
  the raw answer messages, after the kernel's ack or the end of a dump.
  ``NLM_F_ACK`` is added to a request that is not a dump.
- A kernel error raises ``OSError(errno, text)`` where ``text`` is the
  kernel's extended ack when it sent one (e.g. "Unknown device type"), else
  the errno's description: the shape ``errors.failing`` translates.
- ``nla`` encodes one attribute, ``attributes`` decodes a run of them (by
  type, flags stripped). Pure functions over bytes; no pyroute2 here.
"""

from __future__ import annotations

import _socket  # not socket: its import builds enums (~3 ms on a cold plugin call)
import os
import struct

__all__ = [
    "HEADER",
    "NLA",
    "NLM_F_APPEND",
    "NLM_F_CREATE",
    "NLM_F_DUMP",
    "NLM_F_EXCL",
    "NLM_F_REPLACE",
    "NLM_F_REQUEST",
    "RTM_DELADDR",
    "RTM_DELLINK",
    "RTM_DELROUTE",
    "RTM_GETADDR",
    "RTM_GETLINK",
    "RTM_NEWADDR",
    "RTM_NEWLINK",
    "RTM_NEWROUTE",
    "RTM_SETLINK",
    "attributes",
    "exchange",
    "message_type",
    "nla",
]

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_GETLINK = 18
RTM_SETLINK = 19
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_DELROUTE = 25

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800

#: struct nlmsghdr: length, type, flags, sequence number, port id
HEADER = struct.Struct("=IHHII")
#: struct nlattr: length, type
NLA = struct.Struct("=HH")

_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLM_F_CAPPED = 0x100  # in an error message: the request is not echoed whole
_NLM_F_ACK_TLVS = 0x200  # in an error message: extended ack attributes follow
_NLMSGERR_ATTR_MSG = 1
_SOL_NETLINK = 270
_NETLINK_EXT_ACK = 11
_NETLINK_GET_STRICT_CHK = 12
_NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED / NLA_F_NET_BYTEORDER
_ERRNO = struct.Struct("=i")


def exchange(data: bytes, *, strict: bool = False) -> list[bytes]:
    """Send one encoded request on a fresh socket; the answer messages (raw), after the ack or end of dump.

    ``strict`` asks the kernel to honour a dump's filter fields (an
    ifindex, a family). Kernel errors raise OSError.
    """
    flags = HEADER.unpack_from(data)[2]
    if flags & NLM_F_DUMP != NLM_F_DUMP:
        data = data[:6] + struct.pack("=H", flags | NLM_F_ACK) + data[8:]
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, _socket.NETLINK_ROUTE)
    try:
        sock.setsockopt(_SOL_NETLINK, _NETLINK_EXT_ACK, 1)
        if strict:
            sock.setsockopt(_SOL_NETLINK, _NETLINK_GET_STRICT_CHK, 1)
        sock.bind((0, 0))
        sock.send(data)
        return _answers(sock)
    finally:
        sock.close()


def message_type(raw: bytes) -> int:
    """The nlmsg_type of one raw message."""
    return int(HEADER.unpack_from(raw)[1])


def nla(attr_type: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    padding = b"\0" * (-len(payload) % 4)
    return NLA.pack(4 + len(payload), attr_type) + payload + padding


def attributes(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    """The attributes in ``data[offset:end]``, payloads by type (nested/byte-order flags stripped)."""
    found: dict[int, bytes] = {}
    while offset + 4 <= end:
        length, attr_type = NLA.unpack_from(data, offset)
        if length < 4:
            break
        found[attr_type & _NLA_TYPE_MASK] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def _answers(sock: _socket.socket) -> list[bytes]:
    found: list[bytes] = []
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + HEADER.size <= len(data):
            length, msg_type, msg_flags, _seq, _pid = HEADER.unpack_from(data, offset)
            if length < HEADER.size:
                raise OSError(0, "malformed netlink answer")
            if msg_type == _NLMSG_ERROR:
                code = -_ERRNO.unpack_from(data, offset + HEADER.size)[0]
                if code:
                    raise OSError(code, _ack_text(data[offset : offset + length], msg_flags) or os.strerror(code))
                return found  # the acknowledgement
            if msg_type == _NLMSG_DONE:
                if length >= HEADER.size + 4:
                    code = -_ERRNO.unpack_from(data, offset + HEADER.size)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                return found
            found.append(data[offset : offset + length])
            offset += (length + 3) & ~3


def _ack_text(error: bytes, flags: int) -> str:
    """NLMSGERR_ATTR_MSG of an extended ack, or ""."""
    if not flags & _NLM_F_ACK_TLVS:
        return ""
    # error header, errno, then the request's header (capped) or whole request
    offset = HEADER.size + 4
    if flags & _NLM_F_CAPPED:
        offset += HEADER.size
    else:
        offset += HEADER.unpack_from(error, offset)[0]
    while offset + 4 <= len(error):
        length, attr_type = NLA.unpack_from(error, offset)
        if length < 4:
            break
        if attr_type == _NLMSGERR_ATTR_MSG:
            return error[offset + 4 : offset + length].split(b"\0", 1)[0].decode(errors="replace")
        offset += (length + 3) & ~3
    return ""
