"""Link, address and route messages, sent through ``wire``; pyroute2's message classes where ours stop.

Contract:

- ``link_msg``, ``addr_msg`` and ``route_msg`` build an ``ifinfmsg``,
  ``ifaddrmsg`` or ``rtmsg`` (``codec.RtMessage``) whose fields and
  ``attrs`` (pyroute2's NLA names: ``("IFLA_MTU", 1400)``) the caller
  chose; ``request(msg, type, flags)`` sets the header, encodes it (with
  ``codec``; with pyroute2 when it carries an attribute ``codec`` does not
  know: the same bytes either way), sends it with ``wire.exchange`` and
  waits for the kernel's ack (``NLM_F_ACK`` is always set). With
  ``NLM_F_DUMP`` it returns the decoded answers instead (``get_attr``,
  ``msg["field"]``). Kernel errors raise OSError, as ``wire`` does.
  pyroute2's own messages may be passed to ``request`` too.
- ``create_link(kind, ifname, attrs, info_data)``: RTM_NEWLINK (create,
  exclusive) for a link of ``kind`` in the calling thread's netns; kernel
  errors as ``failing`` translates them, a kind whose driver the kernel
  lacks as UnsupportedKernelFeature "kernel does not support link type".
- ``attr(msg, name, default)`` reads one attribute of a decoded message.
- ``pyroute2()`` is the whole pyroute2 package (``IPRoute``, ``Conntrack``);
  ``pyroute2_module(name)`` one of its submodules. Both import on first use,
  without pyroute2's package ``__init__`` (see ``pyroute2_package``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pycni.net.errors import UnsupportedKernelFeature
from pycni.net.netlink.codec import RtMessage, Unencodable
from pycni.net.netlink.errors import failing
from pycni.net.netlink.pyroute2_package import pyroute2, pyroute2_module
from pycni.net.netlink.wire import NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, RTM_NEWLINK, exchange

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Attrs",
    "Message",
    "addr_msg",
    "attr",
    "create_link",
    "link_msg",
    "pyroute2",
    "pyroute2_module",
    "request",
    "route_msg",
]

# pyroute2 has no type information; its messages are Any here and never
# escape pycni.net as anything but our own dataclasses.
# (Names for annotations only.)
if TYPE_CHECKING:
    Message = Any
    Attrs = Sequence[tuple[str, Any]]
else:
    Message = Attrs = object


def _new(module: str, name: str) -> Any:
    return getattr(pyroute2_module(module), name)()


def link_msg(index: int = 0, *, flags: int = 0, change: int = 0, attrs: Attrs = ()) -> Message:
    """An ``ifinfmsg`` (RTM_*LINK) for the link ``index`` (0: named by IFLA_IFNAME)."""
    msg = RtMessage("ifinfmsg")
    msg["index"] = index
    msg["flags"] = flags
    msg["change"] = change
    msg["attrs"] = list(attrs)
    return msg


def addr_msg(family: int, prefixlen: int, index: int, attrs: Attrs = ()) -> Message:
    """An ``ifaddrmsg`` (RTM_*ADDR) for an address on the link ``index``."""
    msg = RtMessage("ifaddrmsg")
    msg["family"] = family
    msg["prefixlen"] = prefixlen
    msg["index"] = index
    msg["attrs"] = list(attrs)
    return msg


def route_msg(
    family: int, dst_len: int, *, table: int, proto: int, scope: int, rtype: int, attrs: Attrs = ()
) -> Message:
    """An ``rtmsg`` (RTM_*ROUTE); the table goes in RTA_TABLE too, for tables above 255."""
    msg = RtMessage("rtmsg")
    msg["family"] = family
    msg["dst_len"] = dst_len
    msg["table"] = table if table < 256 else 252  # RT_TABLE_COMPAT; RTA_TABLE carries the real one
    msg["proto"] = proto
    msg["scope"] = scope
    msg["type"] = rtype
    msg["attrs"] = [*attrs, ("RTA_TABLE", table)]
    return msg


def request(msg: Message, msg_type: int, flags: int = 0) -> list[Message]:
    """Send ``msg`` as ``msg_type``; the decoded answers of a dump, else [] once the kernel acknowledged it."""
    dump = flags & NLM_F_DUMP == NLM_F_DUMP
    if isinstance(msg, RtMessage):
        try:
            _set_header(msg, msg_type, flags)
            msg.encode()
        except Unencodable:
            msg = _as_pyroute2(msg)  # an attribute only pyroute2 knows: its encoding, as before
        else:
            return [RtMessage.decoded(msg.kind, raw) for raw in exchange(msg.data, strict=dump)]
    _set_header(msg, msg_type, flags)
    msg.encode()
    found = []
    for raw in exchange(msg.data, strict=dump):
        answer = type(msg)(raw)
        answer.decode()
        found.append(answer)
    return found


def _set_header(msg: Message, msg_type: int, flags: int) -> None:
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = NLM_F_REQUEST | flags
    msg["header"]["sequence_number"] = 1
    msg["header"]["pid"] = 0


def _as_pyroute2(msg: RtMessage) -> Message:
    """The same message as pyroute2's class, for the attributes ``codec`` does not encode."""
    module = {"ifinfmsg": "netlink.rtnl.ifinfmsg", "ifaddrmsg": "netlink.rtnl.ifaddrmsg"}.get(
        msg.kind, "netlink.rtnl.rtmsg"
    )
    converted = _new(module, msg.kind)
    for key, value in msg.fields.items():
        converted[key] = value
    return converted


def create_link(kind: str, ifname: str, *, attrs: Attrs = (), info_data: Attrs = ()) -> None:
    """Create the link ``ifname`` of ``kind`` here; ``attrs`` go after IFLA_IFNAME, ``info_data`` in IFLA_INFO_DATA."""
    info: list[tuple[str, Any]] = [("IFLA_INFO_KIND", kind)]
    if info_data:
        info.append(("IFLA_INFO_DATA", {"attrs": list(info_data)}))
    msg = link_msg(attrs=[("IFLA_IFNAME", ifname), *attrs, ("IFLA_LINKINFO", {"attrs": info})])
    try:
        with failing(f"create {kind} '{ifname}'"):
            request(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)
    except UnsupportedKernelFeature as exc:
        # EOPNOTSUPP with "Unknown device type" (or no extended ack at
        # all) means the kind's driver is neither built in nor loadable;
        # with any other kernel text it is an option of a known kind.
        text = str(exc)
        if "Unknown device type" not in text and not text.endswith("operation not supported"):
            raise
        raise UnsupportedKernelFeature(
            f"failed to create {kind} '{ifname}': kernel does not support link type '{kind}'", errno=exc.errno
        ) from exc


def attr(msg: Message, name: str, default: Any = None) -> Any:
    """One netlink attribute by its full NLA name (``IFLA_MTU``), or ``default``."""
    value = msg.get_attr(name)
    return default if value is None else value
