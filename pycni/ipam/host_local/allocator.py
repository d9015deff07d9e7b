"""Which address host-local hands out. Pure logic: all state goes through a ``Store``.

Contract (the Go reference's strategy, so the two implementations take
turns sensibly on a shared dataDir):

- Without a requested address, range set N is walked round-robin: it
  starts just after ``last_reserved_ip.N`` when that address lies in one of
  the set's ranges, else at the first range's ``start``; it runs to each
  range's ``end``, moves to the next range (wrapping to the first) and stops
  after coming back to where it started. The gateway is skipped (network
  and broadcast addresses are never inside a validated range). The first
  address whose reservation succeeds wins.
- A requested address must lie in the set's ranges, must not be the
  gateway and must be free.
- An attachment may hold one address per range set: a second ADD for the
  same (container ID, ifname) is refused (``duplicate allocation is not
  allowed``), whether or not an address was requested.
- ``allocate_all`` takes one address from every set or none: on any
  failure the addresses it reserved are released before the error is raised.

Callers hold ``store.lock()`` around the call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from ipaddress import ip_interface

from pycni.ipam.host_local.config import Range, RangeSet
from pycni.ipam.host_local.store import Store, find_attachment
from pycni.spec.errors import CniError
from pycni.spec.fields import IPAddress
from pycni.spec.result import IPConfig

__all__ = ["AllocationFailed", "allocate", "allocate_all", "candidates"]


class AllocationFailed(CniError):
    """No address could be given; code 999, as the reference reports it (the spec has no better code)."""


def candidates(range_set: RangeSet, last_reserved: IPAddress | None) -> Iterator[tuple[Range, IPAddress]]:
    """Every allocatable address of the set, each once, in round-robin order after ``last_reserved``."""
    ranges = range_set.ranges
    first, begin = 0, ranges[0].start
    if last_reserved is not None:
        for index, r in enumerate(ranges):
            if r.contains(last_reserved):
                if last_reserved == r.end:
                    first = (index + 1) % len(ranges)
                    begin = ranges[first].start
                else:
                    first, begin = index, last_reserved + 1
                break
    order = [ranges[(first + k) % len(ranges)] for k in range(len(ranges))]
    yield from _span(order[0], begin, order[0].end)
    for r in order[1:]:
        yield from _span(r, r.start, r.end)
    if begin != order[0].start:  # the part of the first range before where we began
        yield from _span(order[0], order[0].start, begin - 1)


def _span(r: Range, low: IPAddress, high: IPAddress) -> Iterator[tuple[Range, IPAddress]]:
    # Integers, not address objects: a v6 range may hold 2**64 addresses and we stop at the first free one.
    cls = type(r.start)
    gateway = int(r.gateway)
    for value in range(int(low), int(high) + 1):
        if value != gateway:
            yield r, cls(value)


def _ip_config(r: Range, ip: IPAddress) -> IPConfig:
    return IPConfig(address=ip_interface((ip, r.subnet.prefixlen)), gateway=r.gateway)


def allocate(
    store: Store,
    range_set: RangeSet,
    range_id: int,
    container_id: str,
    ifname: str,
    requested: IPAddress | None = None,
) -> IPConfig:
    """One address from ``range_set`` for the attachment (``requested`` if given)."""
    for held in find_attachment(store, container_id, ifname):
        if range_set.contains(held):
            raise AllocationFailed(f"{held} has been allocated to {container_id}, duplicate allocation is not allowed")

    if requested is not None:
        r = range_set.range_for(requested)
        if r is None:
            raise AllocationFailed(f"{requested} not in range set {range_set}")
        if requested == r.gateway:
            raise AllocationFailed(f"requested ip {requested} is subnet's gateway")
        if not store.reserve(requested, container_id, ifname, range_id):
            raise AllocationFailed(f"requested IP address {requested} is not available in range set {range_set}")
        return _ip_config(r, requested)

    for r, ip in candidates(range_set, store.last_reserved_ip(range_id)):
        if store.reserve(ip, container_id, ifname, range_id):
            return _ip_config(r, ip)
    raise AllocationFailed(f"no IP addresses available in range set: {range_set}")


def allocate_all(
    store: Store,
    range_sets: Sequence[RangeSet],
    container_id: str,
    ifname: str,
    requested: Sequence[IPAddress] = (),
) -> tuple[IPConfig, ...]:
    """One address per range set, in set order, or none at all.

    Each requested address goes to the first set that contains it; one left
    over (it fits no set, or two fit the same set) fails the whole call.
    """
    remaining = list(requested)
    taken: list[IPConfig] = []
    try:
        for index, range_set in enumerate(range_sets):
            wanted = next((ip for ip in remaining if range_set.contains(ip)), None)
            if wanted is not None:
                remaining.remove(wanted)
            try:
                taken.append(allocate(store, range_set, index, container_id, ifname, wanted))
            except CniError as err:
                raise _prefixed(err, f"failed to allocate for range {index}: ") from err
        if remaining:
            raise AllocationFailed("failed to allocate all requested IPs: " + " ".join(str(ip) for ip in remaining))
    except BaseException:
        for config in taken:
            store.release_ip(config.address.ip)
        raise
    return tuple(taken)


def _prefixed(err: CniError, prefix: str) -> CniError:
    """The same kind of error (class and code) with ``prefix`` before its message."""
    if type(err) is CniError:
        return CniError(prefix + err.msg, err.details, code=err.code)
    return type(err)(prefix + err.msg, err.details)
