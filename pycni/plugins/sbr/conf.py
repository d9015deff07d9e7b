"""sbr's configuration and which of prevResult's addresses it routes. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING, Any

from pycni.spec.errors import InvalidConfig
from pycni.spec.fields import parse_address, read_bool, read_strings, read_uint

if TYPE_CHECKING:
    from pycni.spec.result import IPConfig, Result

__all__ = ["SbrConf", "parse_conf", "relevant_ips"]

_RESERVED_TABLES = {0: "unspec", 253: "default", 254: "main", 255: "local"}
_U32_MAX = 0xFFFFFFFF


@dataclass(frozen=True)
class SbrConf:
    table: int | None
    gateways: tuple[IPv4Address | IPv6Address, ...]  # at most one per family
    add_source_hints: bool

    def gateway(self, family: int) -> IPv4Address | IPv6Address | None:
        return next((gw for gw in self.gateways if gw.version == family), None)


def parse_conf(config: Mapping[str, Any]) -> SbrConf:
    table = read_uint(config, "table", "")
    if table is not None:
        if table > _U32_MAX:
            raise InvalidConfig(f"table: {table} is not a routing table id (at most {_U32_MAX})")
        if table in _RESERVED_TABLES:
            raise InvalidConfig(f"table: {table} is the kernel's '{_RESERVED_TABLES[table]}' table")
    gateways = tuple(parse_address(gw, f"gateways[{i}]") for i, gw in enumerate(read_strings(config, "gateways", "")))
    for family in (4, 6):
        if sum(gw.version == family for gw in gateways) > 1:
            raise InvalidConfig(f"gateways: at most one IPv{family} gateway, got {len(gateways)} addresses")
    return SbrConf(table=table, gateways=gateways, add_source_hints=read_bool(config, "addSourceHints", ""))


def relevant_ips(prev: Result, ifname: str) -> list[IPConfig]:
    """prevResult's addresses on ``ifname``, or on no interface in particular."""
    return [
        ip
        for ip in prev.ips
        if ip.interface is None
        or (0 <= ip.interface < len(prev.interfaces) and prev.interfaces[ip.interface].name == ifname)
    ]
