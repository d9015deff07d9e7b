"""The handles and comments of a chain's nftables rules, read straight from nfnetlink.

Finding an attachment's rules by the owner tag in their comment needs only
two fields of each rule. libnftables answers the same question by building
its cache, rendering every expression of every rule to JSON and parsing
that JSON back: ~1.5 ms for a chain of 100 rules here, growing with the
node's pods, on every ADD and DEL. One NFT_MSG_GETRULE dump filtered to the
chain, of which only the handle and the comment (a TLV in the rule's user
data, where nft keeps it) are decoded, costs a few tens of microseconds.

Contract: ``rule_comments(family, table, chain)`` returns ``(handle,
comment)`` for every rule of the chain in the calling thread's network
namespace ("" for a rule without comment), and [] when the table or the
chain does not exist. ``chain_rules`` returns a ``RuleSummary`` per rule
(also the iptables comment, the expression kinds and the verdict: what
iptables-nft's rules are recognised by), [] likewise; ``chain_exists``
tells a missing chain from an empty one; ``delete_rules`` deletes rules by
handle in one batch (no libnftables cache to build). Other kernel errors raise ``NftError``. Pure decoding
(``parse_rule``, ``summarize_rule``) is separate from the socket round trip. ``ask`` (one request, an
interrupted dump asked again) and ``transact`` (one batch, all or nothing) are the round trips
themselves, shared with ``nft_sets``.

Sockets: closing a netfilter netlink socket waits until the kernel has
freed what the last transactions deleted (an RCU grace period, 10-30 ms
here, on every close that follows a delete). The process's own network
namespace (the host's, where the plugins' tables live) keeps its dump
sockets open and reuses them; dumps in other namespaces open and close one,
unless a thread that stays there asked for them to be kept
(``keep_sockets_here``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

from pycni.net.firewall.nft import NftError

__all__ = [
    "FAMILIES",
    "RuleSummary",
    "ask",
    "chain_exists",
    "chain_expressions",
    "chain_rules",
    "delete_rules",
    "keep_sockets_here",
    "parse_rule",
    "rule_comments",
    "summarize_rule",
    "transact",
]

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETCHAIN = 4
NFT_MSG_NEWRULE = 6
NFT_MSG_GETRULE = 7
NFT_MSG_DELRULE = 8
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NFTA_CHAIN_NAME = 3
NFTA_RULE_TABLE = 1
NFTA_RULE_CHAIN = 2
NFTA_RULE_HANDLE = 3
NFTA_RULE_EXPRESSIONS = 4
NFTA_RULE_USERDATA = 7
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME = 1
NFTA_EXPR_DATA = 2
NFTA_MATCH_NAME = 1
NFTA_MATCH_INFO = 3
NFTA_IMMEDIATE_DATA = 2
NFTA_DATA_VERDICT = 2
NFTA_VERDICT_CODE = 1
NFTA_VERDICT_CHAIN = 2
NFTNL_UDATA_RULE_COMMENT = 0
#: nf_tables verdict codes (NF_DROP, NF_ACCEPT, NFT_CONTINUE, NFT_BREAK, NFT_JUMP, NFT_GOTO, NFT_RETURN)
_VERDICTS = {0: "drop", 1: "accept", -1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return"}
FAMILIES = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}

_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLM_F_CREATE = 0x400
_NLM_F_DUMP = 0x300
_NLM_F_DUMP_INTR = 0x10  # the dump was interrupted by a change: it may be inconsistent
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_HEADER = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")
_NLA_TYPE_MASK = 0x3FFF
_NLA_F_NESTED = 0x8000


def _nla(attr_type: int, payload: bytes) -> bytes:
    return _NLA.pack(4 + len(payload), attr_type) + payload + b"\0" * (-len(payload) % 4)


def _nest(attr_type: int, payload: bytes) -> bytes:
    """A nested attribute (NLA_F_NESTED set, as libmnl sends them)."""
    return _nla(attr_type | _NLA_F_NESTED, payload)


def _request(family: str, table: str, chain: str, message: int = NFT_MSG_GETRULE, flags: int = _NLM_F_DUMP) -> bytes:
    name_attr = NFTA_CHAIN_NAME if message == NFT_MSG_GETCHAIN else NFTA_RULE_CHAIN  # the table is 1 in both
    body = _NFGENMSG.pack(FAMILIES[family], 0, 0)
    body += _nla(NFTA_RULE_TABLE, table.encode() + b"\0") + _nla(name_attr, chain.encode() + b"\0")
    msg_type = (NFNL_SUBSYS_NFTABLES << 8) | message
    return _HEADER.pack(_HEADER.size + len(body), msg_type, _NLM_F_REQUEST | flags, 1, 0) + body


def _comment(userdata: bytes) -> str:
    offset = 0
    while offset + 2 <= len(userdata):
        kind, length = userdata[offset], userdata[offset + 1]
        value = userdata[offset + 2 : offset + 2 + length]
        if kind == NFTNL_UDATA_RULE_COMMENT:
            return value.split(b"\0", 1)[0].decode("utf-8", "replace")
        offset += 2 + length
    return ""


def _attributes(data: bytes, offset: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    end = len(data) if end is None else end
    while offset + 4 <= end:
        length, attr_type = _NLA.unpack_from(data, offset)
        if length < 4:
            return
        yield attr_type & _NLA_TYPE_MASK, data[offset + 4 : offset + length]
        offset += (length + 3) & ~3


def _string(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode("utf-8", "replace")


class RuleSummary(NamedTuple):
    """What identifies a rule without rendering it."""

    handle: int
    comment: str  # nft's comment (user data), "" without
    xt_comment: str  # the comment of an xtables "comment" match (how iptables-nft stores ``-m comment``), "" without
    exprs: tuple[str, ...]  # expression kinds in order; xtables matches as "match:<name>" ("payload", "counter", ...)
    verdict: str  # "accept", "drop", "return", "jump <chain>", "goto <chain>"; "" when no immediate verdict


def _verdict(data: bytes) -> str:
    for kind, payload in _attributes(data):
        if kind != NFTA_IMMEDIATE_DATA:
            continue
        for kind2, verdict in _attributes(payload):
            if kind2 != NFTA_DATA_VERDICT:
                continue
            code, chain = None, ""
            for kind3, value in _attributes(verdict):
                if kind3 == NFTA_VERDICT_CODE and len(value) >= 4:
                    code = struct.unpack(">i", value[:4])[0]
                elif kind3 == NFTA_VERDICT_CHAIN:
                    chain = _string(value)
            name = _VERDICTS.get(code, "") if code is not None else ""
            return f"{name} {chain}" if chain else name
    return ""


def summarize_rule(message: bytes) -> RuleSummary:
    """The ``RuleSummary`` of one NFT_MSG_NEWRULE message (header included)."""
    handle, comment, xt_comment, verdict = 0, "", "", ""
    exprs: list[str] = []
    for kind, payload in _attributes(message, _HEADER.size + _NFGENMSG.size):
        if kind == NFTA_RULE_HANDLE:
            handle = int.from_bytes(payload[:8], "big")
        elif kind == NFTA_RULE_USERDATA:
            comment = _comment(payload)
        elif kind == NFTA_RULE_EXPRESSIONS:
            for elem_kind, elem in _attributes(payload):
                if elem_kind != NFTA_LIST_ELEM:
                    continue
                name, data = "", b""
                for attr, value in _attributes(elem):
                    if attr == NFTA_EXPR_NAME:
                        name = _string(value)
                    elif attr == NFTA_EXPR_DATA:
                        data = value
                if name == "match":
                    fields = dict(_attributes(data))
                    match = _string(fields.get(NFTA_MATCH_NAME, b""))
                    name = f"match:{match}"
                    if match == "comment":
                        xt_comment = _string(fields.get(NFTA_MATCH_INFO, b""))
                elif name == "immediate":
                    verdict = _verdict(data) or verdict
                exprs.append(name)
    return RuleSummary(handle, comment, xt_comment, tuple(exprs), verdict)


def parse_rule(message: bytes) -> tuple[int, str]:
    """(handle, comment) of one NFT_MSG_NEWRULE message (header included)."""
    offset, end = _HEADER.size + _NFGENMSG.size, len(message)
    handle, comment = 0, ""
    while offset + 4 <= end:
        length, attr_type = _NLA.unpack_from(message, offset)
        if length < 4:
            break
        payload = message[offset + 4 : offset + length]
        kind = attr_type & _NLA_TYPE_MASK
        if kind == NFTA_RULE_HANDLE:
            handle = int.from_bytes(payload[:8], "big")
        elif kind == NFTA_RULE_USERDATA:
            comment = _comment(payload)
        offset += (length + 3) & ~3
    return handle, comment


def _netns() -> tuple[int, int] | None:
    try:
        st = os.stat("/proc/thread-self/ns/net")
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _Sockets:
    """Idle dump sockets of the process's own network namespace, reused (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[int, int] | None, list[socket.socket]] = {}
        self._home: tuple[int, int] | None = None
        self._kept: set[tuple[int, int]] = set()  # other namespaces whose sockets are kept (keep_sockets_here)
        self._pid = 0

    def _after_fork_locked(self) -> None:
        if self._pid != os.getpid():  # a forked child does not share its parent's sockets
            self._idle, self._kept, self._pid = {}, set(), os.getpid()
            with contextlib.suppress(OSError):
                st = os.stat(f"/proc/{os.getpid()}/ns/net")
                self._home = (st.st_dev, st.st_ino)

    def keep_here(self) -> None:
        here = _netns()
        if here is not None:
            with self._lock:
                self._after_fork_locked()
                self._kept.add(here)

    @contextlib.contextmanager
    def get(self) -> Iterator[socket.socket]:
        here = _netns()
        with self._lock:
            self._after_fork_locked()
            reuse = here is not None and (here == self._home or here in self._kept)
            idle = self._idle.setdefault(here, []) if reuse else []
            sock = idle.pop() if idle else None
        if sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        try:
            if sock.getsockname()[0] == 0:  # new: not bound yet
                sock.bind((0, 0))
            yield sock
        except BaseException:
            sock.close()  # an answer may be left unread on it
            raise
        if reuse:
            with self._lock:
                if self._pid == os.getpid():
                    self._idle.setdefault(here, []).append(sock)
                    return
        sock.close()


_sockets = _Sockets()


def keep_sockets_here() -> None:
    """Keep this thread's network namespace's sockets open for reuse, as the process's own namespace's are.

    For a long-lived thread that stays in a namespace of its own and commits often (a policy agent
    applying inside a node's namespace): each close after a delete would wait for an RCU grace period.
    Never for a pod's namespace: a kept socket keeps its namespace alive.
    """
    _sockets.keep_here()


def ask(request: bytes, tries: int = 100) -> tuple[list[bytes], int]:
    """Send one request and collect its answer: (messages, 0) or ([], the kernel's errno).

    A dump the ruleset changed under (the kernel marks it NLM_F_DUMP_INTR: it may lack objects that
    were there all along) is asked again, as libnftables does; still interrupted after ``tries``: EINTR.
    Two more signs of a dump that raced a writer are asked again too (CI saw a rule dumped twice):
    a rule handle seen twice, and messages written in different ruleset generations (nfgenmsg's
    res_id). A batch links the rules it adds into the chain's list while it is processed, inactive
    until its commit, and a dump resumes by counting list entries, so a rule inserted ahead of the
    resume point shifts the count and an earlier rule is sent again, with no commit yet to flag.
    A dump of a long chain takes several reads, and a writer committing every few milliseconds can
    interrupt it many times running: after the first few, each retry waits a random 0-2 ms, so it starts
    at another point of the writer's rhythm (20 immediate retries were not enough in CI).
    """
    code = errno.EINTR
    for attempt in range(tries):
        if attempt >= 3:
            time.sleep(random.uniform(0.0, 0.002))
        try:
            with _sockets.get() as sock:
                sock.send(request)
                messages, code = _collect(sock)
        except OSError as exc:
            return [], exc.errno or errno.EIO
        if code != errno.EINTR:
            return (messages, 0) if code == 0 else ([], code)
    return [], code


def _dump(family: str, table: str, chain: str, message: int = NFT_MSG_GETRULE) -> list[bytes] | None:
    """The answer's messages (a chain's rules; or the chain itself); None on ENOENT."""
    flags = _NLM_F_DUMP if message == NFT_MSG_GETRULE else _NLM_F_ACK
    messages, code = ask(_request(family, table, chain, message, flags))
    if code == errno.ENOENT:
        return None
    if code:
        reason = os.strerror(code)
        raise NftError(f"failed to list the rules of {family} {table} {chain}: {reason}")
    return messages


def rule_comments(family: str, table: str, chain: str) -> list[tuple[int, str]]:
    """(handle, comment) of each rule of ``family table chain``; [] when it does not exist."""
    return [parse_rule(message) for message in _dump(family, table, chain) or []]


def chain_rules(family: str, table: str, chain: str, containing: str | None = None) -> list[RuleSummary]:
    """A ``RuleSummary`` of each rule of ``family table chain``; [] when it does not exist.

    ``containing``: only the rules whose message holds this text (a comment, a chain name) somewhere, found
    by a byte search before any decoding (a chain of a node's pods costs little when we want one of them).
    """
    messages = _dump(family, table, chain) or []
    if containing is not None:
        wanted = containing.encode()
        messages = [message for message in messages if wanted in message]
    return [summarize_rule(message) for message in messages]


def chain_expressions(family: str, table: str, chain: str) -> list[bytes]:
    """Each rule's expressions as the kernel encodes them (no handle, no position): what a rule does, comparable."""
    found = []
    for message in _dump(family, table, chain) or []:
        found.append(b"".join(payload for kind, payload in _attributes(message, _HEADER.size + _NFGENMSG.size)
                              if kind == NFTA_RULE_EXPRESSIONS))
    return found


def chain_exists(family: str, table: str, chain: str) -> bool:
    """Whether ``family table`` holds ``chain`` (one NFT_MSG_GETCHAIN round trip)."""
    return _dump(family, table, chain, NFT_MSG_GETCHAIN) is not None


def _batch_message(msg_type: int, seq: int, family: int, body: bytes, flags: int = 0) -> bytes:
    payload = _NFGENMSG.pack(family, 0, socket.htons(NFNL_SUBSYS_NFTABLES) if msg_type < 0x100 else 0) + body
    return _HEADER.pack(_HEADER.size + len(payload), msg_type, _NLM_F_REQUEST | flags, seq, 0) + payload


def delete_rules(family: str, table: str, chain: str, handles: list[int]) -> None:
    """Delete rules by handle in one transaction (one nfnetlink batch): all of them, or none and NftError.

    A rule already gone fails the whole batch (ENOENT): the caller reads the chain again.
    """
    if not handles:
        return
    names = _nla(NFTA_RULE_TABLE, table.encode() + b"\0") + _nla(NFTA_RULE_CHAIN, chain.encode() + b"\0")
    delete = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_DELRULE
    messages = [_batch_message(NFNL_MSG_BATCH_BEGIN, 1, 0, b"")]
    messages += [_batch_message(delete, 2 + i, FAMILIES[family], names + _nla(NFTA_RULE_HANDLE, h.to_bytes(8, "big")),
                                _NLM_F_ACK) for i, h in enumerate(handles)]
    messages.append(_batch_message(NFNL_MSG_BATCH_END, 2 + len(handles), 0, b""))
    try:
        transact(b"".join(messages), len(handles))
    except OSError as exc:
        raise NftError(f"failed to delete rules {handles} of {family} {table} {chain}: {exc.strerror or exc}") from exc


def transact(batch: bytes, expected: int) -> None:
    """Send one nfnetlink batch and read the acks of its ``expected`` messages; OSError with the first refusal.

    The kernel applies a batch whole or not at all. After a refusal acks may be left unread, so that
    socket is closed, not reused.
    """
    with _sockets.get() as sock:
        sock.settimeout(10.0)
        sock.send(batch)
        answered, failed = 0, 0
        while answered < expected and not failed:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, msg_type, _flags, _seq, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    raise OSError(errno.EIO, "malformed netlink answer")
                if msg_type == _NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                    answered += 1
                    failed = failed or code
                offset += (length + 3) & ~3
        sock.settimeout(None)
        if failed:
            raise OSError(failed, os.strerror(failed))


_NEWRULE = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE  # what a rule dump answers with


def _rule_handle(data: bytes, offset: int, end: int) -> bytes:
    """The raw NFTA_RULE_HANDLE of the rule message at ``data[offset:end]`` (b"" if it has none)."""
    position = offset + _HEADER.size + _NFGENMSG.size
    while position + 4 <= end:
        length, attr_type = _NLA.unpack_from(data, position)
        if length < 4:
            break
        if attr_type & _NLA_TYPE_MASK == NFTA_RULE_HANDLE:
            return data[position + 4 : position + length]
        position += (length + 3) & ~3
    return b""


def _collect(sock: socket.socket) -> tuple[list[bytes], int]:
    """The messages of one complete answer, and the kernel's error code (0: none; EINTR: an interrupted dump)."""
    found: list[bytes] = []
    interrupted = False
    generation = -1  # res_id of the first message: the ruleset's generation (low 16 bits) it was written in
    handles: set[bytes] = set()  # of the rules dumped: one seen twice means the dump raced a batch
    while True:
        data = sock.recv(1 << 20)
        if not data:
            raise OSError(errno.EIO, "netlink socket closed mid-dump")
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, msg_type, msg_flags, _seq, _pid = _HEADER.unpack_from(data, offset)
            if length < _HEADER.size:
                raise OSError(errno.EIO, "malformed netlink answer")
            interrupted = interrupted or bool(msg_flags & _NLM_F_DUMP_INTR)
            if msg_type == _NLMSG_DONE:
                return found, errno.EINTR if interrupted else 0
            if msg_type == _NLMSG_ERROR:
                return found, -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
            if length >= _HEADER.size + _NFGENMSG.size:
                res_id = _NFGENMSG.unpack_from(data, offset + _HEADER.size)[2]
                interrupted = interrupted or generation not in (-1, res_id)
                generation = res_id
            if msg_type == _NEWRULE and (handle := _rule_handle(data, offset, offset + length)):
                interrupted = interrupted or handle in handles
                handles.add(handle)
            found.append(data[offset : offset + length])
            offset += (length + 3) & ~3
