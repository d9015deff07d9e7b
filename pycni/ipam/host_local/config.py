"""host-local configuration: range sets, routes, dataDir, resolvConf, requested IPs.

Contract: ``parse_config(config, cni_args)`` takes the whole request config
(IPAM plugins receive the calling plugin's config) and returns a validated,
canonical ``HostLocalConfig`` or raises InvalidConfig naming the field
(``ipam.ranges[0][0].subnet: '10.0.0.0/33' is not a CIDR``).

Range sets are numbered as in the Go reference, because the number names
the ``last_reserved_ip.N`` file both implementations share: first the
``runtimeConfig.ipRanges`` sets (capability ``ipRanges``), then the legacy
top-level ``ipam.subnet`` range, then ``ipam.ranges``. Requested IPs are the
union, in this order, of CNI_ARGS ``IP=``, ``args.cni.ips`` and
``runtimeConfig.ips`` (capability ``ips``); each may carry a prefix, which
is ignored.

Validation follows the reference: a subnet has no host bits and at least
two host bits; gateway, rangeStart and rangeEnd lie in the subnet (defaults:
network+1, network+1, last address, minus the broadcast for IPv4); a range
set is one family and its ranges do not overlap; range sets do not overlap
each other; config versions before 0.3.0 allow one set per family. Stricter
than Go: rangeStart may not be the network address, rangeEnd not the IPv4
broadcast address (Go would hand them out), and rangeEnd may not precede
rangeStart.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Network

from pycni.spec.args import CniArgs
from pycni.spec.errors import InvalidConfig
from pycni.spec.fields import (
    IPAddress,
    IPNetwork,
    check_one_address_per_family,
    join,
    lookup,
    parse_address,
    parse_address_maybe_prefixed,
    parse_network,
    parse_routes,
    read_list,
    read_object,
    read_str,
)
from pycni.spec.record import record
from pycni.spec.result import Route

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~4 ms, with re and enum, of a cold plugin call)
if TYPE_CHECKING:
    from typing import Any

__all__ = ["DEFAULT_DATA_DIR", "HostLocalConfig", "Range", "RangeSet", "parse_config", "parse_range_set"]

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


@record
class Range:
    """One pool: ``start``..``end`` (inclusive) inside ``subnet``; ``gateway`` is never handed out."""

    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    gateway: IPAddress

    @property
    def family(self) -> int:
        return self.subnet.version

    def contains(self, ip: IPAddress) -> bool:
        """True when ``ip`` may be allocated from this range (the gateway included: callers refuse it)."""
        return ip.version == self.family and ip in self.subnet and self.start <= ip <= self.end  # type: ignore[operator]

    def overlaps(self, other: Range) -> bool:
        return self.family == other.family and self.start <= other.end and other.start <= self.end  # type: ignore[operator]

    def capacity(self) -> int:
        """How many addresses this range can hand out."""
        size = int(self.end) - int(self.start) + 1
        return size - 1 if self.start <= self.gateway <= self.end else size  # type: ignore[operator]

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"  # Go's Range.String(), used in error messages


@record
class RangeSet:
    """Ranges of one family; ADD takes one address from each set."""

    ranges: tuple[Range, ...]

    @property
    def family(self) -> int:
        return self.ranges[0].family

    def range_for(self, ip: IPAddress) -> Range | None:
        return next((r for r in self.ranges if r.contains(ip)), None)

    def contains(self, ip: IPAddress) -> bool:
        return self.range_for(ip) is not None

    def capacity(self) -> int:
        return sum(r.capacity() for r in self.ranges)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


@record
class HostLocalConfig:
    network: str  # the network name: the store directory under data_dir
    cni_version: str
    range_sets: tuple[RangeSet, ...]
    routes: tuple[Route, ...] = ()
    data_dir: str = DEFAULT_DATA_DIR
    resolv_conf: str = ""
    requested_ips: tuple[IPAddress, ...] = ()


def parse_config(
    config: Mapping[str, Any], cni_args: CniArgs | None = None, *, require_ranges: bool = True
) -> HostLocalConfig:
    """Validate the request config. ``require_ranges=False`` accepts a config with no range set.

    DEL, GC and STATUS pass False: releasing needs only the network name and
    dataDir, and their requests may lack the runtime's ``ipRanges``.
    """
    ipam = read_object(config, "ipam", "")
    if ipam is None:
        raise InvalidConfig("IPAM config missing 'ipam' key")
    runtime = read_object(config, "runtimeConfig", "") or {}
    cni_version = read_str(config, "cniVersion", "")

    located = [
        _parse_set(raw, f"runtimeConfig.ipRanges[{i}]")
        for i, raw in enumerate(read_list(runtime, "ipRanges", "runtimeConfig"))
    ]
    if lookup(ipam, "subnet"):  # the deprecated single range, written directly under ipam
        located.append(_checked_set([_parse_range(ipam, "ipam")], ("ipam",)))
    located += [_parse_set(raw, f"ipam.ranges[{i}]") for i, raw in enumerate(read_list(ipam, "ranges", "ipam"))]
    if not located and require_ranges:
        raise InvalidConfig("ipam: no IP ranges specified")
    _check_sets_disjoint(located)
    range_sets = tuple(range_set for range_set, _ in located)
    check_one_address_per_family(cni_version, (s.family for s in range_sets))

    return HostLocalConfig(
        network=read_str(config, "name", ""),
        cni_version=cni_version,
        range_sets=range_sets,
        routes=parse_routes(ipam, "routes", "ipam"),
        data_dir=read_str(ipam, "dataDir", "ipam") or DEFAULT_DATA_DIR,
        resolv_conf=read_str(ipam, "resolvConf", "ipam"),
        requested_ips=_requested_ips(config, runtime, cni_args),
    )


def parse_range_set(raw: Any, path: str) -> RangeSet:
    """A list of ranges of one family that do not overlap. ``path`` names it in errors."""
    return _parse_set(raw, path)[0]


#: A range set with the JSON path of each of its ranges, for error messages.
_Located = tuple[RangeSet, tuple[str, ...]]


def _parse_set(raw: Any, path: str) -> _Located:
    if not isinstance(raw, list):
        raise InvalidConfig(f"{path}: expected an array of ranges")
    if not raw:
        raise InvalidConfig(f"{path}: empty range set")
    paths = tuple(f"{path}[{j}]" for j in range(len(raw)))
    return _checked_set([_parse_range(item, p) for item, p in zip(raw, paths, strict=True)], paths)


def _checked_set(ranges: list[Range], paths: tuple[str, ...]) -> _Located:
    first = ranges[0]
    for r, p in zip(ranges[1:], paths[1:], strict=True):
        if r.family != first.family:
            raise InvalidConfig(
                f"{p}.subnet: '{r.subnet}' is IPv{r.family} but {paths[0]} is IPv{first.family}"
                " (a range set holds one address family)"
            )
    for j, r in enumerate(ranges):
        for k in range(j):
            if r.overlaps(ranges[k]):
                raise InvalidConfig(f"{paths[j]}: overlaps {paths[k]} ({ranges[k].subnet})")
    return RangeSet(tuple(ranges)), paths


def _parse_range(raw: Any, path: str) -> Range:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{path}: expected a range object")
    subnet_path = join(path, "subnet")
    text = lookup(raw, "subnet")
    if not text:
        raise InvalidConfig(f"{subnet_path}: missing")
    subnet = parse_network(text, subnet_path, strict=True)
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise InvalidConfig(f"{subnet_path}: '{subnet}' is too small to allocate from")
    first_host = subnet.network_address + 1
    last_host = subnet.broadcast_address - 1 if isinstance(subnet, IPv4Network) else subnet.broadcast_address

    gateway = _optional_ip(raw, "gateway", path, subnet, default=first_host)
    start = _optional_ip(raw, "rangeStart", path, subnet, default=first_host)
    end = _optional_ip(raw, "rangeEnd", path, subnet, default=last_host)
    if start == subnet.network_address:
        raise InvalidConfig(f"{join(path, 'rangeStart')}: '{start}' is the network address of {subnet}")
    if isinstance(subnet, IPv4Network) and end == subnet.broadcast_address:
        raise InvalidConfig(f"{join(path, 'rangeEnd')}: '{end}' is the broadcast address of {subnet}")
    if end < start:  # type: ignore[operator]
        raise InvalidConfig(f"{join(path, 'rangeEnd')}: '{end}' is before rangeStart {start}")
    return Range(subnet=subnet, start=start, end=end, gateway=gateway)


def _optional_ip(raw: Mapping[str, Any], key: str, base: str, subnet: IPNetwork, *, default: IPAddress) -> IPAddress:
    text = lookup(raw, key)
    if text is None or text == "":  # Go's net.IP reads "" as unset
        return default
    path = join(base, key)
    ip = parse_address(text, path)
    if ip.version != subnet.version or ip not in subnet:
        raise InvalidConfig(f"{path}: '{ip}' is not in subnet {subnet}")
    return ip


def _check_sets_disjoint(located: list[_Located]) -> None:
    """Two sets sharing an address could give one attachment that address twice."""
    for i, (later, later_paths) in enumerate(located):
        for earlier, earlier_paths in located[:i]:
            for r, p in zip(later.ranges, later_paths, strict=True):
                for other, q in zip(earlier.ranges, earlier_paths, strict=True):
                    if r.overlaps(other):
                        raise InvalidConfig(f"{p}: overlaps {q} ({other.subnet})")


def _requested_ips(
    config: Mapping[str, Any], runtime: Mapping[str, Any], cni_args: CniArgs | None
) -> tuple[IPAddress, ...]:
    found: list[IPAddress] = []
    if cni_args is not None:
        # Go's LoadArgs: unknown CNI_ARGS keys are an error unless IgnoreUnknown is set.
        text = cni_args.take({"IP"}).get("IP", "")
        if text:
            found.append(parse_address_maybe_prefixed(text, "CNI_ARGS IP"))
    args = read_object(config, "args", "") or {}
    cni = read_object(args, "cni", "args") or {}
    for base, obj in (("args.cni", cni), ("runtimeConfig", runtime)):
        for i, text in enumerate(read_list(obj, "ips", base)):
            found.append(parse_address_maybe_prefixed(text, f"{base}.ips[{i}]"))
    return tuple(dict.fromkeys(found))  # one request per address, first mention first
