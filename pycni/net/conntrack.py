"""Deleting connection-tracking entries, in the calling process's network namespace.

Why: a UDP "connection" lives in conntrack as long as packets keep coming,
and NAT is decided only on its first packet. A flow that started before a
port mapping existed (or while it pointed at a pod that is gone) keeps
its old fate: portmap clears such entries when it adds or removes a
mapping (plugins#123, #553, #1190).

How: Debian's ``conntrack`` tool (package conntrack), one process per
filter, all filters of a call run concurrently. A cold plugin process pays
about 25 ms for that, against 400+ ms to import pyroute2's conntrack
support, so the tool is the default; pyroute2's ``Conntrack`` is the
fallback when the tool is not installed.

Contract: ``delete_flows(filters)`` deletes every entry matching each
``FlowFilter`` and returns how many were deleted. Matching nothing is not
an error. Failures raise NetError; callers treat conntrack clean-up as
best effort.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pycni.net.errors import NetError

__all__ = ["FlowFilter", "delete_flows", "tool_available"]

_PROTO_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}


@dataclass(frozen=True)
class FlowFilter:
    """Entries of one protocol whose original destination port is ``orig_dport``.

    Optional narrowing: the original destination address (the host IP a
    client used), and the reply source address/port (the pod a DNAT sent
    the flow to).
    """

    family: Literal[4, 6]
    protocol: str  # tcp, udp or sctp
    orig_dport: int
    orig_dst: str | None = None
    reply_src: str | None = None
    reply_sport: int | None = None

    def tool_args(self) -> list[str]:
        args = ["-D", "-f", "ipv4" if self.family == 4 else "ipv6", "-p", self.protocol]
        args += ["--orig-port-dst", str(self.orig_dport)]
        if self.orig_dst:
            args += ["--orig-dst", self.orig_dst]
        if self.reply_src:
            args += ["--reply-src", self.reply_src]
        if self.reply_sport is not None:
            args += ["--reply-port-src", str(self.reply_sport)]
        return args


def tool_available() -> bool:
    """Whether ``conntrack`` is on PATH (shutil.which without importing shutil)."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory or ".", "conntrack")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return True
    return False


def delete_flows(filters: Sequence[FlowFilter], *, use_tool: bool | None = None) -> int:
    """Delete the entries matching any of ``filters``; the number deleted."""
    if not filters:
        return 0
    if use_tool is None:
        use_tool = tool_available()
    return _delete_with_tool(filters) if use_tool else _delete_with_pyroute2(filters)


def _delete_with_tool(filters: Sequence[FlowFilter]) -> int:
    procs = []
    try:
        for flt in filters:
            cmd = ["conntrack", *flt.tool_args()]
            procs.append((cmd, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    except OSError as exc:
        for _cmd, proc in procs:
            proc.kill()
            proc.wait()
        raise NetError(f"failed to run conntrack: {exc}") from exc
    deleted = 0
    errors = []
    for cmd, proc in procs:
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            errors.append(f"{' '.join(cmd)}: timed out")
            continue
        count = _deleted_count(err or "")
        if count is not None:  # exit status 1 just means "0 entries deleted"
            deleted += count
        elif proc.returncode != 0:
            errors.append(f"{' '.join(cmd)}: {(err or '').strip() or f'exit status {proc.returncode}'}")
    if errors:
        raise NetError("failed to delete conntrack entries", "; ".join(errors))
    return deleted


def _deleted_count(stderr: str) -> int | None:
    """N from the tool's "N flow entries have been deleted." line, None without one."""
    head, sep, _ = stderr.partition(" flow entries have been deleted")
    words = head.split()
    return int(words[-1]) if sep and words and words[-1].isdigit() else None


def _delete_with_pyroute2(filters: Sequence[FlowFilter]) -> int:
    import importlib
    import socket
    from ipaddress import ip_address

    from pycni.net.netlink.messages import pyroute2

    try:  # import_module: pyroute2 ships no type information
        conntrack_class = pyroute2().Conntrack
        attr_tuple = importlib.import_module("pyroute2.netlink.nfnetlink.nfctsocket").NFCTAttrTuple
    except (ImportError, AttributeError) as exc:
        raise NetError(f"failed to delete conntrack entries: neither the conntrack tool nor pyroute2: {exc}") from exc
    deleted = 0
    try:
        ct: Any = conntrack_class()
        try:
            for flt in filters:
                family = socket.AF_INET if flt.family == 4 else socket.AF_INET6
                orig = attr_tuple(
                    family=family, proto=_PROTO_NUMBERS[flt.protocol], dport=flt.orig_dport, daddr=flt.orig_dst
                )
                for entry in list(ct.dump_entries(tuple_orig=orig)):
                    reply = entry.tuple_reply
                    if flt.reply_src is not None and ip_address(reply.saddr) != ip_address(flt.reply_src):
                        continue
                    if flt.reply_sport is not None and reply.sport != flt.reply_sport:
                        continue
                    try:
                        ct.delete(entry)
                        deleted += 1
                    except OSError:  # gone meanwhile (timed out, or deleted by someone else)
                        pass
        finally:
            ct.close()
    except (OSError, KeyError) as exc:
        raise NetError(f"failed to delete conntrack entries: {exc}") from exc
    return deleted
