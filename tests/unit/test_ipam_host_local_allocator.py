"""host-local allocation: round-robin order, gateway skipping, exhaustion, requested IPs, atomicity."""

from __future__ import annotations

import itertools
from ipaddress import ip_address, ip_interface
from typing import Any

import pytest

from pycni.ipam.host_local.allocator import AllocationFailed, allocate, allocate_all, candidates
from pycni.ipam.host_local.config import RangeSet, parse_range_set
from pycni.ipam.host_local.store import MemoryStore, Reservation
from pycni.spec.fields import IPAddress
from pycni.spec.result import IPConfig


def rs(*ranges: dict[str, Any]) -> RangeSet:
    return parse_range_set(list(ranges), "ipam.ranges[0]")


def ips(*texts: str) -> list[IPAddress]:
    return [ip_address(t) for t in texts]


def order(range_set: RangeSet, last: str | None = None) -> list[IPAddress]:
    return [ip for _, ip in candidates(range_set, ip_address(last) if last else None)]


SMALL = rs({"subnet": "10.0.0.0/29"})  # .1 is the gateway; .2 - .6 allocatable


# -- candidate order --------------------------------------------------------------


def test_fresh_set_starts_after_the_gateway() -> None:
    assert order(SMALL) == ips("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6")


def test_round_robin_resumes_after_last_reserved() -> None:
    assert order(SMALL, "10.0.0.4") == ips("10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4")


def test_last_reserved_at_the_end_wraps_to_the_start() -> None:
    assert order(SMALL, "10.0.0.6") == ips("10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6")


def test_last_reserved_outside_the_set_is_ignored() -> None:
    # What happens after the range set's index changed: round-robin is lost once, nothing worse.
    assert order(SMALL, "192.168.0.9") == order(SMALL)
    assert order(SMALL, "10.0.0.7") == order(SMALL)  # in the subnet, not in start..end


def test_gateway_in_the_middle_is_skipped() -> None:
    r = rs({"subnet": "10.0.0.0/29", "gateway": "10.0.0.4"})
    assert order(r) == ips("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6")


def test_several_ranges_are_walked_in_turn() -> None:
    r = rs(
        {"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.12"},
        {"subnet": "10.9.0.0/30"},
    )
    assert str(r) == "10.0.0.10-10.0.0.12,10.9.0.1-10.9.0.2"
    assert order(r) == ips("10.0.0.10", "10.0.0.11", "10.0.0.12", "10.9.0.2")
    assert order(r, "10.0.0.11") == ips("10.0.0.12", "10.9.0.2", "10.0.0.10", "10.0.0.11")
    assert order(r, "10.9.0.2") == ips("10.0.0.10", "10.0.0.11", "10.0.0.12", "10.9.0.2")


def test_ipv6_order_and_a_huge_range_is_lazy() -> None:
    assert order(rs({"subnet": "fd00::/125"})) == ips("fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6", "fd00::7")
    huge = rs({"subnet": "fd00::/64"})
    first = list(itertools.islice(candidates(huge, ip_address("fd00::ffff:ffff:ffff:fffe")), 3))
    assert [ip for _, ip in first] == ips("fd00::ffff:ffff:ffff:ffff", "fd00::2", "fd00::3")


# -- allocate ---------------------------------------------------------------------------


def ip_config(text: str, gateway: str) -> IPConfig:
    return IPConfig(address=ip_interface(text), gateway=ip_address(gateway))


def test_sequential_allocation_and_last_reserved() -> None:
    store = MemoryStore()
    got = [allocate(store, SMALL, 0, f"c{i}", "eth0").address for i in range(3)]
    assert got == [ip_interface(a) for a in ("10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29")]
    assert store.last[0] == ip_address("10.0.0.4")
    assert store.held[ip_address("10.0.0.3")] == Reservation(ip_address("10.0.0.3"), "c1", "eth0")


def test_result_carries_prefix_and_gateway() -> None:
    r = rs({"subnet": "10.10.0.0/16", "rangeStart": "10.10.1.20", "gateway": "10.10.0.254"})
    assert allocate(MemoryStore(), r, 0, "c", "eth0") == ip_config("10.10.1.20/16", "10.10.0.254")


def test_released_address_is_not_reused_immediately() -> None:
    store = MemoryStore()
    allocate(store, SMALL, 0, "a", "eth0")
    allocate(store, SMALL, 0, "b", "eth0")
    store.release_ip(ip_address("10.0.0.2"))
    assert allocate(store, SMALL, 0, "c", "eth0").address.ip == ip_address("10.0.0.4")


def test_exhaustion() -> None:
    store = MemoryStore()
    for i in range(5):
        allocate(store, SMALL, 0, f"c{i}", "eth0")
    with pytest.raises(AllocationFailed) as info:
        allocate(store, SMALL, 0, "late", "eth0")
    assert info.value.msg == "no IP addresses available in range set: 10.0.0.1-10.0.0.6"
    assert info.value.code == 999


def test_duplicate_attachment_is_refused() -> None:
    store = MemoryStore()
    allocate(store, SMALL, 0, "c1", "eth0")
    with pytest.raises(
        AllocationFailed, match=r"^10\.0\.0\.2 has been allocated to c1, duplicate allocation is not allowed$"
    ):
        allocate(store, SMALL, 0, "c1", "eth0")
    with pytest.raises(AllocationFailed, match="duplicate allocation"):
        allocate(store, SMALL, 0, "c1", "eth0", ip_address("10.0.0.5"))
    # Another interface of the same container is another attachment.
    assert allocate(store, SMALL, 0, "c1", "eth1").address.ip == ip_address("10.0.0.3")
    # A duplicate in another range set does not count.
    assert allocate(store, rs({"subnet": "10.1.0.0/29"}), 1, "c1", "eth0").address.ip == ip_address("10.1.0.2")


def test_legacy_reservation_counts_as_a_duplicate() -> None:
    store = MemoryStore()
    store.held[ip_address("10.0.0.5")] = Reservation(ip_address("10.0.0.5"), "c1", None)
    with pytest.raises(AllocationFailed, match=r"10\.0\.0\.5 has been allocated to c1"):
        allocate(store, SMALL, 0, "c1", "eth0")


def test_requested_address() -> None:
    store = MemoryStore()
    assert allocate(store, SMALL, 0, "c1", "eth0", ip_address("10.0.0.5")) == ip_config("10.0.0.5/29", "10.0.0.1")
    assert store.last[0] == ip_address("10.0.0.5")
    with pytest.raises(AllocationFailed) as info:
        allocate(store, SMALL, 0, "c2", "eth0", ip_address("10.0.0.5"))
    assert info.value.msg == "requested IP address 10.0.0.5 is not available in range set 10.0.0.1-10.0.0.6"
    with pytest.raises(AllocationFailed, match=r"^requested ip 10\.0\.0\.1 is subnet's gateway$"):
        allocate(store, SMALL, 0, "c2", "eth0", ip_address("10.0.0.1"))
    with pytest.raises(AllocationFailed, match=r"^10\.0\.0\.7 not in range set 10\.0\.0\.1-10\.0\.0\.6$"):
        allocate(store, SMALL, 0, "c2", "eth0", ip_address("10.0.0.7"))


# -- allocate_all ------------------------------------------------------------------------

V4 = rs({"subnet": "10.0.0.0/29"})
V6 = parse_range_set([{"subnet": "fd00::/125"}], "ipam.ranges[1]")


def test_one_address_per_set_in_set_order() -> None:
    store = MemoryStore()
    got = allocate_all(store, [V4, V6], "c1", "eth0")
    assert got == (ip_config("10.0.0.2/29", "10.0.0.1"), ip_config("fd00::2/125", "fd00::1"))
    assert store.last == {0: ip_address("10.0.0.2"), 1: ip_address("fd00::2")}


def test_second_set_exhausted_releases_the_first() -> None:
    store = MemoryStore()
    for i in range(6):
        store.reserve(ip_address(f"fd00::{i + 2}"), f"other{i}", "eth0", 1)
    before = dict(store.held)
    with pytest.raises(AllocationFailed) as info:
        allocate_all(store, [V4, V6], "c1", "eth0")
    assert info.value.msg == "failed to allocate for range 1: no IP addresses available in range set: fd00::1-fd00::7"
    assert store.held == before  # the v4 address taken for set 0 was given back


def test_requested_addresses_go_to_the_set_that_contains_them() -> None:
    store = MemoryStore()
    got = allocate_all(store, [V4, V6], "c1", "eth0", ips("fd00::5", "10.0.0.6"))
    assert [c.address.ip for c in got] == ips("10.0.0.6", "fd00::5")


def test_leftover_request_fails_everything() -> None:
    store = MemoryStore()
    with pytest.raises(AllocationFailed) as info:
        allocate_all(store, [V4, V6], "c1", "eth0", ips("10.0.0.3", "10.0.0.4", "192.168.1.1"))
    assert info.value.msg == "failed to allocate all requested IPs: 10.0.0.4 192.168.1.1"
    assert store.held == {}


def test_failing_request_in_a_later_set_is_prefixed_and_rolled_back() -> None:
    store = MemoryStore()
    with pytest.raises(AllocationFailed) as info:
        allocate_all(store, [V4, V6], "c1", "eth0", ips("fd00::1"))
    assert info.value.msg == "failed to allocate for range 1: requested ip fd00::1 is subnet's gateway"
    assert store.held == {}


def test_store_errors_keep_their_code() -> None:
    from pycni.spec.errors import IOFailure

    class BrokenStore(MemoryStore):
        def reserve(self, ip: IPAddress, container_id: str, ifname: str, range_id: int) -> bool:
            if range_id == 1:
                raise IOFailure("failed to reserve address: disk full")
            return super().reserve(ip, container_id, ifname, range_id)

    store = BrokenStore()
    with pytest.raises(IOFailure) as info:
        allocate_all(store, [V4, V6], "c1", "eth0")
    assert info.value.msg == "failed to allocate for range 1: failed to reserve address: disk full"
    assert info.value.code == 5
    assert store.held == {}
