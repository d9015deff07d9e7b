"""What the options mean: names for codes, the lease an ACK grants, and the options a client sends.

Contract (as the reference plugin):

- An option is named by a number (0-255) or by one of ``OPTION_NAMES``
  (dhcp-options(5) spelling); anything else is ``InvalidConfig``.
- ``ipam.request`` lists ``{"option": ..., "skipDefault": bool}``: their codes
  go into the parameter request list, after the defaults (routers,
  subnet-mask) unless some entry says ``skipDefault``.
- ``ipam.provide`` lists ``{"option": ..., "value": str, "fromArg": NAME}``:
  the option is sent with ``value``, or with the value of CNI_ARGS ``NAME``
  when that argument is given (it wins). Values are sent as their UTF-8
  bytes, at most 255 of them.
- The client identifier is ``<containerID>/<network>/<ifname>`` cut to 254
  bytes, sent with type byte 0; the config may override it by providing
  option 61.
- ``grant(ack)`` reads the address and prefix (subnet mask required), the
  gateway (first router), routes (option 121 when present, which then hides
  option 33 and the router's default route; else option 33 as classful
  routes, plus a default route through the router), lease time (required)
  and T1/T2 (defaults 50% and 87.5% of the lease; a T2 past the lease or a
  T1 past T2 is replaced by the default, as RFC 2131 4.4.5 says).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from pycni.ipam.dhcp.packet import Message, Opt
from pycni.spec.errors import InvalidConfig
from pycni.spec.result import Route

__all__ = [
    "DEFAULT_REQUESTED",
    "OPTION_NAMES",
    "Grant",
    "OptionPlan",
    "client_identifier",
    "describe_client",
    "grant",
    "parse_option_name",
    "plan_options",
]

OPTION_NAMES: Mapping[str, int] = {
    "subnet-mask": Opt.SUBNET_MASK,
    "routers": Opt.ROUTER,
    "domain-name-servers": Opt.DNS_SERVERS,
    "host-name": Opt.HOST_NAME,
    "domain-name": Opt.DOMAIN_NAME,
    "static-routes": Opt.STATIC_ROUTES,
    "dhcp-lease-time": Opt.LEASE_TIME,
    "dhcp-renewal-time": Opt.RENEWAL_TIME,
    "dhcp-rebinding-time": Opt.REBINDING_TIME,
    "vendor-class-identifier": Opt.VENDOR_CLASS_ID,
    "dhcp-client-identifier": Opt.CLIENT_ID,
    "user-class": Opt.USER_CLASS,
    "classless-static-route": Opt.CLASSLESS_ROUTES,
}
DEFAULT_REQUESTED = (int(Opt.ROUTER), int(Opt.SUBNET_MASK))
# Options the client itself owns in every message: the config cannot provide them.
_RESERVED = {Opt.MESSAGE_TYPE, Opt.PARAMETER_REQUEST_LIST, Opt.REQUESTED_IP, Opt.SERVER_ID, Opt.OVERLOAD, Opt.END}


def parse_option_name(value: Any, path: str) -> int:
    """The code of a named or numbered option; InvalidConfig naming ``path`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InvalidConfig(f"{path}: expected an option name or number")
    if text in OPTION_NAMES:
        return OPTION_NAMES[text]
    if text.isdigit() and 0 < int(text) < 255:
        return int(text)
    raise InvalidConfig(f"{path}: unknown DHCP option {text!r} (a number 1-254 or one of {', '.join(OPTION_NAMES)})")


@dataclass(frozen=True)
class OptionPlan:
    """What every request of one lease carries: the parameter request list and the provided options."""

    requested: tuple[int, ...]
    provided: tuple[tuple[int, bytes], ...]

    def to_json(self) -> dict[str, Any]:
        return {"requested": list(self.requested), "provided": [[c, v.hex()] for c, v in self.provided]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OptionPlan:
        return cls(
            tuple(int(c) for c in data["requested"]), tuple((int(c), bytes.fromhex(v)) for c, v in data["provided"])
        )


def describe_client(client_id: bytes) -> str:
    """A client identifier as log lines name it: ours without its type byte, any other as readable text."""
    return (client_id[1:] if client_id[:1] == b"\0" else client_id).decode(errors="replace")


def client_identifier(container_id: str, network: str, ifname: str) -> bytes:
    """Option 61's value: type 0 and ``<containerID>/<network>/<ifname>`` (254 bytes at most)."""
    return b"\0" + f"{container_id}/{network}/{ifname}".encode()[:254]


def plan_options(
    request: Sequence[Any], provide: Sequence[Any], cni_args: Mapping[str, str], client_id: bytes
) -> OptionPlan:
    """The options of ``ipam.request`` and ``ipam.provide`` as a lease sends them (InvalidConfig names the entry)."""
    requested: list[int] = []
    skip_default = False
    for i, entry in enumerate(request):
        path = f"ipam.request[{i}]"
        if not isinstance(entry, dict):
            raise InvalidConfig(f"{path}: expected an object")
        skip = entry.get("skipDefault", False)
        if not isinstance(skip, bool):
            raise InvalidConfig(f"{path}.skipDefault: expected true or false")
        skip_default = skip_default or skip
        if "option" in entry:
            code = parse_option_name(entry["option"], f"{path}.option")
            if code not in requested:
                requested.append(code)
    if not skip_default:
        requested += [code for code in DEFAULT_REQUESTED if code not in requested]
    provided: dict[int, bytes] = {Opt.CLIENT_ID: client_id}
    for i, entry in enumerate(provide):
        path = f"ipam.provide[{i}]"
        if not isinstance(entry, dict):
            raise InvalidConfig(f"{path}: expected an object")
        code = parse_option_name(entry.get("option"), f"{path}.option")
        if code in _RESERVED:
            raise InvalidConfig(f"{path}.option: option {code} is the client's own, it cannot be provided")
        value, from_arg = entry.get("value", ""), entry.get("fromArg", "")
        if not isinstance(value, str) or not isinstance(from_arg, str):
            raise InvalidConfig(f"{path}: 'value' and 'fromArg' must be strings")
        where = f"{path}.value"
        if from_arg and from_arg in cni_args:
            value, where = cni_args[from_arg], f"CNI_ARGS {from_arg} (for {path})"
        if not value:
            continue
        raw = value.encode()
        if len(raw) > 255:
            raise InvalidConfig(f"{where}: value too long for option {code} ({len(raw)} bytes, at most 255)")
        provided[code] = raw
    return OptionPlan(tuple(requested), tuple(provided.items()))


@dataclass(frozen=True)
class Grant:
    """What one ACK grants, with durations in seconds from the moment it arrived."""

    address: IPv4Interface
    server_id: IPv4Address
    gateway: IPv4Address | None
    routes: tuple[Route, ...]
    lease_time: float
    renew_after: float  # T1
    rebind_after: float  # T2


def grant(ack: Message) -> Grant:
    """The lease ``ack`` grants; ValueError naming what is missing or malformed."""
    mask = _one_address(ack, Opt.SUBNET_MASK, "subnet mask")
    if mask is None:
        raise ValueError("DHCP option Subnet Mask not found in DHCPACK")
    try:
        address = IPv4Interface(f"{ack.yiaddr}/{mask}")
    except ValueError as exc:
        raise ValueError(f"DHCPACK subnet mask {mask} is not a netmask") from exc
    lease_time = _seconds(ack, Opt.LEASE_TIME)
    if lease_time is None:
        raise ValueError("DHCP option Lease Time not found in DHCPACK")
    given_rebind = _seconds(ack, Opt.REBINDING_TIME)
    rebind = lease_time * 7 / 8 if given_rebind is None or given_rebind > lease_time else float(given_rebind)
    given_renew = _seconds(ack, Opt.RENEWAL_TIME)
    renew = lease_time / 2 if given_renew is None or given_renew > rebind else float(given_renew)
    server_id = _one_address(ack, Opt.SERVER_ID, "server identifier") or ack.siaddr
    routers = ack.option(Opt.ROUTER) or b""
    gateway = IPv4Address(routers[:4]) if len(routers) >= 4 else None
    return Grant(address, server_id, gateway, _routes(ack, gateway), float(lease_time), float(renew), float(rebind))


def _one_address(message: Message, code: int, name: str) -> IPv4Address | None:
    raw = message.option(code)
    if raw is None:
        return None
    if len(raw) != 4:
        raise ValueError(f"DHCP option {name} is {len(raw)} bytes, not 4")
    return IPv4Address(raw)


def _seconds(message: Message, code: int) -> int | None:
    raw = message.option(code)
    if raw is None:
        return None
    if len(raw) != 4:
        raise ValueError(f"DHCP option {code} is {len(raw)} bytes, not 4")
    value: int = struct.unpack("!I", raw)[0]
    return value


def _routes(ack: Message, gateway: IPv4Address | None) -> tuple[Route, ...]:
    classless = ack.option(Opt.CLASSLESS_ROUTES)
    if classless:
        routes = parse_classless_routes(classless)
        if routes:  # RFC 3442: then option 33 and the router option do not make routes
            return routes
    routes = parse_static_routes(ack.option(Opt.STATIC_ROUTES) or b"")
    if gateway is not None:
        routes += (Route(dst=IPv4Network("0.0.0.0/0"), gw=gateway),)
    return routes


def parse_classless_routes(raw: bytes) -> tuple[Route, ...]:
    """Option 121 (RFC 3442): width, significant destination bytes, router; ValueError when truncated."""
    routes: list[Route] = []
    i = 0
    while i < len(raw):
        width = raw[i]
        if width > 32:
            raise ValueError(f"classless route width {width} is over 32")
        size = (width + 7) // 8
        if i + 1 + size + 4 > len(raw):
            raise ValueError("classless static routes option is truncated")
        dst = IPv4Network((raw[i + 1 : i + 1 + size].ljust(4, b"\0"), width), strict=False)
        router = IPv4Address(raw[i + 1 + size : i + 5 + size])
        routes.append(Route(dst=dst, gw=None if router == IPv4Address(0) else router))
        i += 5 + size
    return tuple(routes)


def parse_static_routes(raw: bytes) -> tuple[Route, ...]:
    """Option 33: destination and router pairs; the destination's prefix is its class's (as the reference)."""
    routes: list[Route] = []
    for i in range(0, len(raw) - len(raw) % 8, 8):
        dst, router = IPv4Address(raw[i : i + 4]), IPv4Address(raw[i + 4 : i + 8])
        routes.append(Route(dst=IPv4Network((dst, _classful_prefix(dst)), strict=False), gw=router))
    return tuple(routes)


def _classful_prefix(address: IPv4Address) -> int:
    first = address.packed[0]
    return 8 if first < 128 else 16 if first < 192 else 24
