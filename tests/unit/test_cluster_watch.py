"""The pure lease watcher: snapshot diffs and watch events to added/removed lease events."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pycni.cluster.kv import KeyValue, WatchEvent
from pycni.cluster.lease import Lease
from pycni.cluster.watch import LeaseWatcher

P = "/pycni"


def lease(node: str, third: int, ip: str = "", revision: int = 10, **data: Any) -> Lease:
    subnet = IPv4Network(f"10.244.{third}.0/24")
    return Lease(node, subnet, IPv4Address(ip or f"192.0.2.{third}"), "vxlan", data, None,
                 f"{P}/subnets/10.244.{third}.0-24", revision, 7)


def put(item: Lease) -> WatchEvent:
    value = {"Node": item.node, "PublicIP": str(item.public_ip), "BackendType": item.backend_type,
             "BackendData": dict(item.backend_data)}
    return WatchEvent("put", KeyValue(item.key, json.dumps(value).encode(), item.mod_revision, item.mod_revision, 7))


def delete(item: Lease, revision: int) -> WatchEvent:
    return WatchEvent("delete", KeyValue(item.key, b"", revision, 0))


def shown(events: list[Any]) -> list[tuple[str, str, str]]:
    return [(e.type, e.lease.node, str(e.lease.public_ip)) for e in events]


def test_snapshot_diff_reports_only_changes() -> None:
    w = LeaseWatcher(P)
    a, b = lease("a", 1), lease("b", 2)
    assert shown(w.apply_snapshot([a, b])) == [("added", "a", "192.0.2.1"), ("added", "b", "192.0.2.2")]
    assert w.apply_snapshot([a, b]) == []
    # a renewed lease (new revision, same endpoint) is no change; b gone; c new; a's IP changed
    a2 = lease("a", 1, ip="198.51.100.1", revision=20)
    c = lease("c", 3)
    assert shown(w.apply_snapshot([a2, c])) == [
        ("removed", "a", "192.0.2.1"), ("removed", "b", "192.0.2.2"),
        ("added", "a", "198.51.100.1"), ("added", "c", "192.0.2.3")]
    assert [x.node for x in w.leases] == ["a", "c"]
    assert w.apply_snapshot([lease("c", 3, revision=99)]) and list(w.known) == [c.key]


def test_events_add_change_and_remove() -> None:
    w = LeaseWatcher(P)
    a = lease("a", 1, revision=5)
    assert shown(w.apply_events([put(a)])) == [("added", "a", "192.0.2.1")]
    # same endpoint at a newer revision (a takeover after an agent restart): nothing to do
    assert w.apply_events([put(lease("a", 1, revision=6))]) == []
    moved = lease("a", 1, ip="192.0.2.99", revision=7, VtepMAC="02:00:00:00:00:01")
    assert shown(w.apply_events([put(moved)])) == [("removed", "a", "192.0.2.1"), ("added", "a", "192.0.2.99")]
    assert w.known[a.key].backend_data == {"VtepMAC": "02:00:00:00:00:01"}
    assert shown(w.apply_events([delete(moved, 8)])) == [("removed", "a", "192.0.2.99")]
    assert w.known == {}


def test_replays_and_unknown_deletes_change_nothing() -> None:
    w = LeaseWatcher(P)
    a = lease("a", 1, revision=5)
    w.apply_snapshot([a])
    assert w.apply_events([put(a)]) == []  # the snapshot already had it
    assert w.apply_events([put(lease("a", 1, ip="192.0.2.50", revision=4))]) == []  # older than known
    assert w.apply_events([delete(a, 5)]) == []  # not after the known revision
    assert w.apply_events([delete(lease("zz", 9), 30)]) == []  # never reported
    assert w.apply_events([delete(a, 6)]) != []


def test_events_outside_the_subnets_prefix_are_ignored() -> None:
    w = LeaseWatcher(P)
    other = WatchEvent("put", KeyValue(f"{P}/history/10.244.1.0-24", b"{}", 3, 3))
    foreign = WatchEvent("put", KeyValue("/other/subnets/10.244.1.0-24", b"{}", 3, 3))
    assert w.apply_events([other, foreign]) == []


def test_a_malformed_lease_removes_what_was_there() -> None:
    w = LeaseWatcher(P)
    a = lease("a", 1, revision=5)
    w.apply_snapshot([a])
    broken = WatchEvent("put", KeyValue(a.key, b"not json", 6, 5))
    assert shown(w.apply_events([broken])) == [("removed", "a", "192.0.2.1")]
    assert w.malformed and "not JSON" in w.malformed[-1]
    bad_key = WatchEvent("put", KeyValue(f"{P}/subnets/garbage", b"{}", 7, 7))
    assert w.apply_events([bad_key]) == []


def test_snapshot_then_events_match_a_single_snapshot() -> None:
    """Falling behind is just a snapshot diff: both paths end in the same known set."""
    a, b, c = lease("a", 1, revision=5), lease("b", 2, revision=6), lease("c", 3, revision=9)
    by_events = LeaseWatcher(P)
    by_events.apply_snapshot([a])
    by_events.apply_events([put(b), delete(a, 8), put(c)])
    by_snapshot = LeaseWatcher(P)
    by_snapshot.apply_snapshot([a])
    by_snapshot.apply_snapshot([b, c])
    assert by_events.leases == by_snapshot.leases
