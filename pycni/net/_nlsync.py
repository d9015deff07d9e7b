"""Synchronous rtnetlink requests for the plugins' hot path: pyroute2 marshals, a blocking socket carries.

Why: pyroute2 0.9 runs every request through an asyncio event loop and
request pipeline: about 0.5 ms of Python per request and 0.8 ms to open
and close a handle, where the kernel's own work for setting a link up or
adding an address is a few microseconds. A plugin ADD makes a dozen such
requests, each in a namespace thread that needs its own handle. Here the
message is still built and encoded by pyroute2's message classes
(``ifinfmsg``, ``ifaddrmsg``, ``rtmsg``: the well-kept part of the
library), and the bytes go over a plain blocking netlink socket opened for
the request (~20 µs), in the calling thread's namespace.

Contract:

- ``request(msg, msg_type, flags)`` sends one request and waits for the
  kernel's acknowledgement (``NLM_F_ACK`` is always set); with
  ``NLM_F_DUMP`` it returns the decoded messages of the dump instead.
- A kernel error raises ``OSError(errno, text)`` where ``text`` is the
  kernel's extended ack when it sent one (e.g. "Unknown device type"), else
  the errno's description: the shape ``_netlink.failing`` translates.
- ``msg`` is a pyroute2 message whose fields and ``attrs`` the caller set;
  this module sets its header.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Sequence
from typing import Any

__all__ = [
    "NLM_F_APPEND",
    "NLM_F_CREATE",
    "NLM_F_DUMP",
    "NLM_F_EXCL",
    "NLM_F_REPLACE",
    "RTM_DELADDR",
    "RTM_DELLINK",
    "RTM_DELROUTE",
    "RTM_GETADDR",
    "RTM_NEWADDR",
    "RTM_NEWLINK",
    "RTM_NEWROUTE",
    "RTM_SETLINK",
    "addr_msg",
    "exchange",
    "link_msg",
    "request",
    "route_msg",
]

RTM_NEWLINK = 16
RTM_DELLINK = 17
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

_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLM_F_CAPPED = 0x100  # in an error message: the request is not echoed whole
_NLM_F_ACK_TLVS = 0x200  # in an error message: extended ack attributes follow
_NLMSGERR_ATTR_MSG = 1
_SOL_NETLINK = 270
_NETLINK_EXT_ACK = 11
_NETLINK_GET_STRICT_CHK = 12
_HEADER = struct.Struct("=IHHII")
_ERRNO = struct.Struct("=i")
_NLATTR = struct.Struct("=HH")


def request(msg: Any, msg_type: int, flags: int = 0) -> list[Any]:
    """Send ``msg`` as ``msg_type``; the decoded answers of a dump, else [] once the kernel acknowledged it."""
    dump = flags & NLM_F_DUMP == NLM_F_DUMP
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = NLM_F_REQUEST | flags
    msg["header"]["sequence_number"] = 1
    msg["header"]["pid"] = 0
    msg.encode()
    found = []
    for raw in exchange(msg.data, strict=dump):
        answer = type(msg)(raw)
        answer.decode()
        found.append(answer)
    return found


def exchange(data: bytes, *, strict: bool = False) -> list[bytes]:
    """Send one encoded request on a fresh socket; the answer messages (raw), after the ack or end of dump.

    ``NLM_F_ACK`` is added to a request that is not a dump (a dump ends with
    NLMSG_DONE); ``strict`` asks the kernel to honour a dump's filter fields
    (an ifindex, a family). Kernel errors raise OSError.
    """
    flags = _HEADER.unpack_from(data)[2]
    if flags & NLM_F_DUMP != NLM_F_DUMP:
        data = data[:6] + struct.pack("=H", flags | NLM_F_ACK) + data[8:]
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE) as sock:
        sock.setsockopt(_SOL_NETLINK, _NETLINK_EXT_ACK, 1)
        if strict:
            sock.setsockopt(_SOL_NETLINK, _NETLINK_GET_STRICT_CHK, 1)
        sock.bind((0, 0))
        sock.send(data)
        return _answers(sock)


def _answers(sock: socket.socket) -> list[bytes]:
    found: list[bytes] = []
    while True:
        data = sock.recv(1 << 20)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, msg_type, msg_flags, _seq, _pid = _HEADER.unpack_from(data, offset)
            if length < _HEADER.size:
                raise OSError(0, "malformed netlink answer")
            if msg_type == _NLMSG_ERROR:
                code = -_ERRNO.unpack_from(data, offset + _HEADER.size)[0]
                if code:
                    raise OSError(code, _ack_text(data[offset : offset + length], msg_flags) or os.strerror(code))
                return found  # the acknowledgement
            if msg_type == _NLMSG_DONE:
                if length >= _HEADER.size + 4:
                    code = -_ERRNO.unpack_from(data, offset + _HEADER.size)[0]
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
    offset = _HEADER.size + 4
    if flags & _NLM_F_CAPPED:
        offset += _HEADER.size
    else:
        offset += _HEADER.unpack_from(error, offset)[0]
    while offset + 4 <= len(error):
        length, attr_type = _NLATTR.unpack_from(error, offset)
        if length < 4:
            break
        if attr_type == _NLMSGERR_ATTR_MSG:
            return error[offset + 4 : offset + length].split(b"\0", 1)[0].decode(errors="replace")
        offset += (length + 3) & ~3
    return ""


# -- messages (pyroute2's classes; imported on first use) ----------------------

Attrs = Sequence[tuple[str, Any]]


def _new(module: str, name: str) -> Any:
    from pycni.net._netlink import pyroute2_submodule

    return getattr(pyroute2_submodule(module), name)()


def link_msg(index: int = 0, *, flags: int = 0, change: int = 0, attrs: Attrs = ()) -> Any:
    """An ``ifinfmsg`` (RTM_*LINK) for the link ``index`` (0: named by IFLA_IFNAME)."""
    msg = _new("netlink.rtnl.ifinfmsg", "ifinfmsg")
    msg["index"] = index
    msg["flags"] = flags
    msg["change"] = change
    msg["attrs"] = list(attrs)
    return msg


def addr_msg(family: int, prefixlen: int, index: int, attrs: Attrs = ()) -> Any:
    """An ``ifaddrmsg`` (RTM_*ADDR) for an address on the link ``index``."""
    msg = _new("netlink.rtnl.ifaddrmsg", "ifaddrmsg")
    msg["family"] = family
    msg["prefixlen"] = prefixlen
    msg["index"] = index
    msg["attrs"] = list(attrs)
    return msg


def route_msg(family: int, dst_len: int, *, table: int, proto: int, scope: int, rtype: int, attrs: Attrs = ()) -> Any:
    """An ``rtmsg`` (RTM_*ROUTE); the table goes in RTA_TABLE too, for tables above 255."""
    msg = _new("netlink.rtnl.rtmsg", "rtmsg")
    msg["family"] = family
    msg["dst_len"] = dst_len
    msg["table"] = table if table < 256 else 252  # RT_TABLE_COMPAT; RTA_TABLE carries the real one
    msg["proto"] = proto
    msg["scope"] = scope
    msg["type"] = rtype
    msg["attrs"] = [*attrs, ("RTA_TABLE", table)]
    return msg
