"""The subnet manager's one read: only config, history/ and subnets/, decoded on demand."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from pycni.cluster.kv import KeyValue
from pycni.cluster.lease_snapshot import read_snapshot
from pycni.cluster.subnets import SubnetManager
from pycni.testing.kv import MemoryKV
from tests.support.subnet_manager import config, ip, manager, memory_kv

kv = pytest.fixture(memory_kv)


class CountingLists(MemoryKV):
    """Records every prefix listed."""

    def __init__(self) -> None:
        super().__init__()
        self.listed: list[str] = []

    def list_prefixes(self, prefixes: Sequence[str]) -> tuple[list[list[KeyValue]], int]:
        self.listed += prefixes
        return super().list_prefixes(prefixes)


def test_an_acquire_lists_config_history_and_subnets_only() -> None:
    store = CountingLists()
    sm = manager(store, config())
    store.create("/pycni/endpoints/n1/abc/eth0", b"{}")
    store.create("/pycni/k8s/pods/default/a", b"{}")
    sm.acquire("a", ip(1), {})
    assert set(store.listed) == {"/pycni/config", "/pycni/history/", "/pycni/subnets/"}
    assert store.calls["list_prefix"] == 0


def test_leases_of_finds_a_node_by_its_name_in_any_json_spelling(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    for node in ("a", "ab", "b", "nœud"):
        sm.acquire(node, ip(len(node) + ord(node[-1]) % 50), {})
    snap = read_snapshot(kv, "/pycni", sm._parse_config)
    assert [lease.node for lease in snap.leases_of("a")] == ["a"]
    assert [lease.node for lease in snap.leases_of("nœud")] == ["nœud"]
    assert snap.leases_of("c") == []


def test_values_are_decoded_when_asked_for_and_bad_ones_left_out(kv: MemoryKV,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    sm = manager(kv, config())
    a = sm.acquire("a", ip(1), {})
    b = sm.acquire("b", ip(2), {})
    assert kv.update(b.key, b"not json", b.mod_revision, b.lease_id)
    assert sm.release("a")
    snap = read_snapshot(kv, "/pycni", sm._parse_config)
    assert set(snap.live) == {b.subnet}, "an unreadable lease still blocks its subnet"
    with caplog.at_level(logging.WARNING, logger="pycni.cluster"):
        assert snap.leases.get(b.subnet) is None and b.subnet not in snap.leases
    assert "does not parse" in caplog.text
    idle = snap.idle_history()
    assert list(idle) == [a.subnet] and idle[a.subnet].released
    assert set(snap.history) == {a.subnet, b.subnet}


def test_a_node_with_an_unreadable_peer_lease_still_gets_a_subnet(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    b = sm.acquire("b", ip(2), {})
    assert kv.update(b.key, b"{", b.mod_revision, b.lease_id)
    again = SubnetManager(kv, ttl=sm.ttl, clock=kv.now).acquire("c", ip(3), {})
    assert again.subnet != b.subnet
