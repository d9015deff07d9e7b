"""Link, address and route messages encoded and decoded by hand, for the attributes the hot path sends.

Contract:

- ``RtMessage(kind)`` is an ``ifinfmsg``, ``ifaddrmsg`` or ``rtmsg`` shaped
  like pyroute2's: header fields by name (``msg["index"]``, 0 unless set),
  ``msg["attrs"]`` a list of ``(NLA name, value)`` pairs with pyroute2's
  names and value shapes (``("IFLA_MTU", 1400)``, nested attributes as
  ``{"attrs": [...]}``), ``msg["header"]`` the netlink header's fields.
- ``encode()`` puts the whole message (netlink header included) in
  ``msg.data``, the same bytes pyroute2 encodes. A name this module does
  not know raises ``Unencodable`` before anything is sent: the caller then
  encodes the message with pyroute2 (``messages.request`` does); so does
  a value of a shape it does not handle.
- ``RtMessage.decoded(kind, raw)`` reads one answer: header fields, and
  ``get_attr(name)`` for the attributes known here (addresses as text, as
  pyroute2 gives them); any other name is asked of pyroute2's own decoding
  of the same bytes, imported then.

Why: pyroute2's message classes cost ~25 ms to import (their package pulls
in logging, multiprocessing, platform), most of a cold plugin call's
budget; the hot path sends a dozen kinds of attribute.
"""

from __future__ import annotations

import struct

from pycni.net.netlink.wire import HEADER, nla

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["RtMessage", "Unencodable"]

_AF_INET, _AF_INET6 = 2, 10


class Unencodable(KeyError):
    """A message carries an attribute this module does not encode."""


# Per message kind: its header struct and field names, in wire order.
_HEADERS: dict[str, tuple[struct.Struct, tuple[str, ...]]] = {
    "ifinfmsg": (struct.Struct("=BxHiII"), ("family", "ifi_type", "index", "flags", "change")),
    "ifaddrmsg": (struct.Struct("=BBBBI"), ("family", "prefixlen", "flags", "scope", "index")),
    "rtmsg": (
        struct.Struct("=BBBBBBBBI"),
        ("family", "dst_len", "src_len", "tos", "table", "proto", "scope", "type", "flags"),
    ),
}

# An attribute table: NLA name -> (type, codec), codec one of "u8", "u32",
# "asciiz", "ip", "l2addr", or a nested table's name ("nested:<table>").
_Table = dict[str, tuple[int, str]]
_TABLES: dict[str, _Table] = {
    "ifinfmsg": {
        "IFLA_ADDRESS": (1, "l2addr"),
        "IFLA_IFNAME": (3, "asciiz"),
        "IFLA_MTU": (4, "u32"),
        "IFLA_LINK": (5, "u32"),
        "IFLA_MASTER": (10, "u32"),
        "IFLA_LINKINFO": (18, "linkinfo"),
        "IFLA_NET_NS_PID": (19, "u32"),
        "IFLA_IFALIAS": (20, "asciiz"),
        "IFLA_NET_NS_FD": (28, "u32"),
    },
    "linkinfo": {
        "IFLA_INFO_KIND": (1, "asciiz"),
        "IFLA_INFO_DATA": (2, "info_data"),  # its table depends on IFLA_INFO_KIND
        "IFLA_INFO_SLAVE_KIND": (4, "asciiz"),
        "IFLA_INFO_SLAVE_DATA": (5, "info_data"),  # on IFLA_INFO_SLAVE_KIND
    },
    "veth": {"VETH_INFO_PEER": (1, "ifinfmsg")},
    "bridge_slave": {"IFLA_BRPORT_MODE": (4, "u8"), "IFLA_BRPORT_ISOLATED": (33, "u8")},
    "ifaddrmsg": {
        "IFA_ADDRESS": (1, "ip"),
        "IFA_LOCAL": (2, "ip"),
        "IFA_LABEL": (3, "asciiz"),
        "IFA_BROADCAST": (4, "ip"),
        "IFA_FLAGS": (8, "u32"),
    },
    "rtmsg": {
        "RTA_DST": (1, "ip"),
        "RTA_OIF": (4, "u32"),
        "RTA_GATEWAY": (5, "ip"),
        "RTA_PRIORITY": (6, "u32"),
        "RTA_PREFSRC": (7, "ip"),
        "RTA_METRICS": (8, "metrics"),
        "RTA_TABLE": (15, "u32"),
    },
    "metrics": {"RTAX_MTU": (2, "u32"), "RTAX_ADVMSS": (8, "u32")},
}
# IFLA_INFO_DATA / IFLA_INFO_SLAVE_DATA tables by link kind.
_INFO_DATA = {"veth": "veth", "bridge": "bridge_slave"}
_U32 = struct.Struct("=I")
_U8 = struct.Struct("=B")


class RtMessage:
    """One rtnetlink link, address or route message (see the module docstring)."""

    __slots__ = ("_raw_attrs", "data", "fields", "header", "kind")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.fields: dict[str, Any] = {"attrs": []}
        self.header: dict[str, int] = {}
        self.data = b""
        self._raw_attrs: dict[int, bytes] | None = None

    def __getitem__(self, key: str) -> Any:
        if key == "header":
            return self.header
        return self.fields.get(key, 0)

    def __setitem__(self, key: str, value: Any) -> None:
        self.fields[key] = value

    def __repr__(self) -> str:
        return f"RtMessage({self.kind!r}, {self.fields!r})"

    # -- encoding ------------------------------------------------------------------

    def encode(self) -> None:
        try:
            body = _encode_message(self.kind, self.fields)
        except Unencodable:
            raise
        except Exception as exc:  # a value of a shape not handled here: pyroute2 may take it
            raise Unencodable(str(exc)) from exc
        header = self.header
        self.data = (
            HEADER.pack(
                HEADER.size + len(body),
                header.get("type", 0),
                header.get("flags", 0),
                header.get("sequence_number", 0),
                header.get("pid", 0),
            )
            + body
        )

    # -- decoding ------------------------------------------------------------------

    @classmethod
    def decoded(cls, kind: str, raw: bytes) -> RtMessage:
        """One answer message (netlink header included) read back."""
        from pycni.net.netlink.wire import attributes

        msg = cls(kind)
        msg.data = raw
        header_struct, names = _HEADERS[kind]
        msg.fields.update(zip(names, header_struct.unpack_from(raw, HEADER.size), strict=True))
        _length, msg_type, flags, seq, pid = HEADER.unpack_from(raw)
        msg.header = {"length": _length, "type": msg_type, "flags": flags, "sequence_number": seq, "pid": pid}
        msg._raw_attrs = attributes(raw, HEADER.size + header_struct.size, len(raw))
        msg.fields["attrs"] = []  # decoded on demand: get_attr
        return msg

    def get_attr(self, name: str) -> Any:
        """The attribute ``name``'s value, or None."""
        if self._raw_attrs is None:  # built here, not decoded: look in the list
            for key, value in self.fields["attrs"]:
                if key == name:
                    return value
            return None
        known = _TABLES[self.kind].get(name)
        if known is None or known[1] not in ("u8", "u32", "asciiz", "ip", "l2addr"):
            return self._pyroute2_decoded().get_attr(name)
        payload = self._raw_attrs.get(known[0])
        return None if payload is None else _decode_value(known[1], payload)

    def _pyroute2_decoded(self) -> Any:
        from pycni.net.netlink.pyroute2_package import pyroute2_module

        module = {"ifinfmsg": "netlink.rtnl.ifinfmsg", "ifaddrmsg": "netlink.rtnl.ifaddrmsg"}.get(
            self.kind, "netlink.rtnl.rtmsg"
        )
        msg = getattr(pyroute2_module(module), self.kind)(self.data)
        msg.decode()
        return msg


def _encode_message(kind: str, fields: dict[str, Any]) -> bytes:
    header_struct, names = _HEADERS[kind]
    head = header_struct.pack(*(int(fields.get(name, 0)) for name in names))
    return head + _encode_attrs(kind, fields.get("attrs", ()))


def _encode_attrs(table_name: str, attrs: Any) -> bytes:
    table = _TABLES[table_name]
    kind = ""
    out = []
    for name, value in attrs:
        try:
            attr_type, codec = table[name]
        except KeyError:
            raise Unencodable(name) from None
        if codec == "asciiz" and name in ("IFLA_INFO_KIND", "IFLA_INFO_SLAVE_KIND"):
            kind = value
        out.append(nla(attr_type, _encode_value(codec, value, kind)))
    return b"".join(out)


def _encode_value(codec: str, value: Any, kind: str) -> bytes:
    if codec == "u32":
        return _U32.pack(int(value))
    if codec == "u8":
        return _U8.pack(int(value))
    if codec == "asciiz":
        return (value.encode() if isinstance(value, str) else bytes(value)) + b"\0"
    if codec == "ip":
        from _socket import inet_pton

        text = str(value)
        return inet_pton(_AF_INET6 if ":" in text else _AF_INET, text)
    if codec == "l2addr":
        return bytes(int(part, 16) for part in str(value).split(":"))
    if codec == "ifinfmsg":
        return _encode_message("ifinfmsg", value)
    if codec == "info_data":
        table = _INFO_DATA.get(kind)
        if table is None:
            raise Unencodable(f"IFLA_INFO_DATA of {kind!r}")
        return _encode_attrs(table, value["attrs"])
    return _encode_attrs(codec, value["attrs"])  # nested: linkinfo, metrics


def _decode_value(codec: str, payload: bytes) -> Any:
    if codec == "u32":
        return _U32.unpack_from(payload)[0]
    if codec == "u8":
        return payload[0]
    if codec == "asciiz":
        return payload.split(b"\0", 1)[0].decode(errors="replace")
    if codec == "ip":
        from _socket import inet_ntop

        return inet_ntop(_AF_INET6 if len(payload) == 16 else _AF_INET, payload)
    return ":".join(f"{byte:02x}" for byte in payload)  # l2addr
