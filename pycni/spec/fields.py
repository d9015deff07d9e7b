"""Config readers shared by every plugin: addresses, routes, DNS (and the JSON fields).

The JSON field readers (``read_str``, ``read_uint``, ...) live in
pycni.spec.readers and are re-exported here, so a plugin imports all its
readers from one place.

Contract: every reader takes the JSON path of what it reads and raises
InvalidConfig whose message starts with that path
(``ipam.routes[0].dst: '10.0.0.0/33' is not a CIDR``). Addresses are
returned canonical: an IPv4-mapped IPv6 address is read as IPv4, as Go's
``To4()`` does, so that the same address always has the same file name
and family. Keys are matched like Go's encoding/json: the exact spelling
first, then case-insensitively. Pure: no I/O (``parse_resolv_conf`` takes
the file's text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_address,
    ip_interface,
    ip_network,
)

from pycni.spec.errors import InvalidConfig
from pycni.spec.readers import (
    describe_json,
    join,
    lookup,
    read_bool,
    read_choice,
    read_int,
    read_list,
    read_object,
    read_optional_bool,
    read_str,
    read_strings,
    read_uint,
)
from pycni.spec.result import DNS, Route
from pycni.spec.version import parse_version

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "IPAddress",
    "IPInterface",
    "IPNetwork",
    "canonical_ip",
    "check_one_address_per_family",
    "describe_json",
    "join",
    "lookup",
    "parse_address",
    "parse_address_maybe_prefixed",
    "parse_cidr_address",
    "parse_dns",
    "parse_network",
    "parse_resolv_conf",
    "parse_routes",
    "read_bool",
    "read_choice",
    "read_int",
    "read_list",
    "read_object",
    "read_optional_bool",
    "read_str",
    "read_strings",
    "read_uint",
]

IPAddress = IPv4Address | IPv6Address
IPInterface = IPv4Interface | IPv6Interface
IPNetwork = IPv4Network | IPv6Network


# -- addresses ---------------------------------------------------------------


def canonical_ip(addr: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (``::ffff:a.b.c.d``) is IPv4, as in Go."""
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _plain_prefix(text: str) -> bool:
    """``addr/NN`` with a decimal prefix: Go's ParseCIDR takes no netmask form and no zone."""
    addr, sep, prefix = text.partition("/")
    return bool(sep) and prefix.isascii() and prefix.isdigit() and "%" not in addr


def parse_address(text: Any, path: str) -> IPAddress:
    """A plain IP address (no prefix, no zone)."""
    if isinstance(text, str) and "%" not in text:
        try:
            return canonical_ip(ip_address(text))
        except ValueError:
            pass
    raise InvalidConfig(f"{path}: {text!r} is not an IP address")


def parse_address_maybe_prefixed(text: Any, path: str) -> IPAddress:
    """``ip`` or ``ip/prefix``; the prefix is dropped (Go's ``ip.IP`` for requested IPs)."""
    if isinstance(text, str) and "/" in text:
        return parse_cidr_address(text, path).ip
    return parse_address(text, path)


def parse_cidr_address(text: Any, path: str) -> IPInterface:
    """An address with its prefix length, e.g. ``10.1.0.5/24``."""
    if isinstance(text, str) and _plain_prefix(text):
        try:
            iface = ip_interface(text)
        except ValueError:
            pass
        else:
            mapped = canonical_ip(iface.ip)
            if mapped.version != iface.version:
                # ::ffff:a.b.c.d/120 is a v4 address; Go keeps the v6 mask, we keep its v4 meaning.
                return IPv4Interface(f"{mapped}/{max(0, iface.network.prefixlen - 96)}")
            return iface
    raise InvalidConfig(f"{path}: {text!r} is not an IP address with a prefix (CIDR notation)")


def parse_network(text: Any, path: str, *, strict: bool = False) -> IPNetwork:
    """A CIDR. Host bits are masked off unless ``strict``, where they are an error."""
    if isinstance(text, str) and _plain_prefix(text):
        try:
            network = ip_network(text, strict=False)
        except ValueError:
            pass
        else:
            if strict and ip_interface(text).ip != network.network_address:
                raise InvalidConfig(f"{path}: {text!r} has host bits set (the network is {network})")
            return network
    raise InvalidConfig(f"{path}: {text!r} is not a CIDR")


# -- routes and DNS ------------------------------------------------------------


def _parse_route(raw: Any, path: str) -> Route:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{path}: expected an object, got {describe_json(raw)}")
    dst_text = lookup(raw, "dst")
    if dst_text is None:
        raise InvalidConfig(f"{path}.dst: missing")
    dst = parse_network(dst_text, f"{path}.dst")
    gw = None
    if read_str(raw, "gw", path):
        gw = parse_address(lookup(raw, "gw"), f"{path}.gw")
        # A main plugin could not install it, and result readers reject it.
        if gw.version != dst.version:
            raise InvalidConfig(f"{path}.gw: '{gw}' is IPv{gw.version} but dst {dst} is IPv{dst.version}")
    return Route(
        dst=dst,
        gw=gw,
        mtu=read_uint(raw, "mtu", path),
        advmss=read_uint(raw, "advmss", path),
        priority=read_uint(raw, "priority", path),
        table=read_uint(raw, "table", path),
        scope=read_uint(raw, "scope", path),
    )


def parse_routes(obj: Mapping[str, Any], key: str, base: str) -> tuple[Route, ...]:
    path = join(base, key)
    return tuple(_parse_route(raw, f"{path}[{i}]") for i, raw in enumerate(read_list(obj, key, base)))


def parse_dns(obj: Mapping[str, Any], key: str, base: str) -> DNS:
    """The spec's DNS object: nameservers, domain, search, options."""
    raw = read_object(obj, key, base)
    if raw is None:
        return DNS()
    path = join(base, key)
    return DNS(
        nameservers=read_strings(raw, "nameservers", path),
        domain=read_str(raw, "domain", path),
        search=read_strings(raw, "search", path),
        options=read_strings(raw, "options", path),
    )


def parse_resolv_conf(text: str) -> DNS:
    """resolv.conf lines as the reference reads them.

    ``nameserver`` appends its first word, ``domain`` keeps the last one,
    ``search`` and ``options`` append all their words; ``#``/``;`` comments,
    blank lines, one-word lines and unknown keywords are skipped.
    """
    nameservers: list[str] = []
    domain = ""
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        words = line.split()
        if len(words) < 2:
            continue
        keyword, rest = words[0], words[1:]
        if keyword == "nameserver":
            nameservers.append(rest[0])
        elif keyword == "domain":
            domain = rest[0]
        elif keyword == "search":
            search.extend(rest)
        elif keyword == "options":
            options.extend(rest)
    return DNS(nameservers=tuple(nameservers), domain=domain, search=tuple(search), options=tuple(options))


def check_one_address_per_family(cni_version: str, families: Iterable[int]) -> None:
    """0.1.0/0.2.0 results hold one ip4 and one ip6: refuse a config that would produce more."""
    counts = {4: 0, 6: 0}
    for family in families:
        counts[family] += 1
    if max(counts.values()) > 1 and parse_version(cni_version) < (0, 3, 0):
        raise InvalidConfig(f"CNI version {cni_version} does not support more than 1 address per family")
