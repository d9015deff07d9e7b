"""SubnetManager on the in-memory KV with a hand-driven clock: leases, quarantine, races, the node view."""

from __future__ import annotations

import json
import threading
from ipaddress import IPv4Network
from typing import Any

import pytest

from pycni.cluster.config import BackendConfig
from pycni.cluster.lease import ClusterNotInitialized, Lease, LeaseLost, NetworkFull
from pycni.cluster.nodes import describe_in, format_table, node_rows
from pycni.cluster.subnets import SubnetManager
from pycni.spec.errors import InvalidConfig, TryAgainLater
from pycni.testing.kv import MemoryKV
from tests.support.subnet_manager import QUARANTINE, TTL, config, ip, manager, memory_kv

kv = pytest.fixture(memory_kv)


def subnets(leases: list[Lease]) -> list[str]:
    return [str(lease.subnet) for lease in leases]


def test_acquire_gives_each_node_its_own_subnet_and_writes_flannels_layout(kv: MemoryKV) -> None:
    sm = manager(kv, config(backend=BackendConfig(type="host-gw")))
    a = sm.acquire("a", ip(1), {})
    b = sm.acquire("b", ip(2), {"Extra": 1})
    assert (str(a.subnet), str(b.subnet)) == ("10.244.1.0/24", "10.244.2.0/24")
    assert a.key == "/pycni/subnets/10.244.1.0-24" and a.backend_type == "host-gw"
    assert a.expires_at == 1000.0 + TTL and a.lease_id and a.lease_id != b.lease_id
    stored = kv.get(b.key)
    assert stored is not None and stored.lease == b.lease_id and stored.mod_revision == b.mod_revision
    assert json.loads(stored.value) == {"Node": "b", "PublicIP": "192.0.2.2", "BackendType": "host-gw",
                                        "BackendData": {"Extra": 1}}
    history = kv.get("/pycni/history/10.244.2.0-24")
    assert history is not None and history.lease == 0
    assert json.loads(history.value) == {"Node": "b", "PublicIP": "192.0.2.2", "AcquiredAt": 1000.0,
                                         "ExpiredAt": None, "Released": False}
    assert subnets(sm.list_leases()[0]) == ["10.244.1.0/24", "10.244.2.0/24"]


def test_acquire_without_config_says_to_init(kv: MemoryKV) -> None:
    with pytest.raises(ClusterNotInitialized, match=r"no cluster config at /pycni/config; run 'pycni cluster init'"):
        manager(kv).acquire("a", ip(1), {})


def test_restarted_agent_keeps_its_live_subnet_on_a_fresh_lease(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    first = sm.acquire("a", ip(1), {"VtepMAC": "02:00:00:00:00:01"})
    again = sm.acquire("a", ip(11), {"VtepMAC": "02:00:00:00:00:02"})
    assert again.subnet == first.subnet and again.lease_id != first.lease_id
    assert first.lease_id not in kv.lease_ids(), "the old etcd lease is revoked"
    leases, _ = sm.list_leases()
    assert len(leases) == 1 and leases[0].public_ip == ip(11)
    assert leases[0].backend_data == {"VtepMAC": "02:00:00:00:00:02"}


def test_renew_extends_and_an_expired_lease_takes_the_same_subnet_again(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    lease = sm.acquire("a", ip(1), {})
    kv.advance(TTL - 1)
    lease = sm.renew(lease)
    assert lease.expires_at == kv.now() + TTL
    kv.advance(TTL - 1)
    assert sm.list_leases()[0], "renewed: still alive"
    kv.advance(2)
    assert sm.list_leases()[0] == [], "expired: etcd deleted the key"
    back = sm.renew(lease)
    assert back.subnet == lease.subnet and back.lease_id != lease.lease_id
    assert subnets(sm.list_leases()[0]) == [str(lease.subnet)]


def test_renew_raises_lease_lost_when_another_node_took_the_subnet(kv: MemoryKV) -> None:
    sm = manager(kv, config("10.0.0.0/28", subnet_len=29, quarantine=0))  # two subnets, no quarantine
    a = sm.acquire("a", ip(1), {})
    sm.acquire("b", ip(2), {})
    kv.advance(TTL + 1)  # both expire
    c = sm.acquire("c", ip(3), {})
    assert c.subnet == IPv4Network("10.0.0.0/29"), "lowest free first; quarantine is 0"
    assert c.subnet == a.subnet
    with pytest.raises(LeaseLost, match=r"subnet 10.0.0.0/29 of node a is now held by c"):
        sm.renew(a)


def test_renew_after_node_remove_takes_the_subnet_back(kv: MemoryKV) -> None:
    """An agent still running on a removed node registers again, with the same subnet if free."""
    sm = manager(kv, config())
    lease = sm.acquire("a", ip(1), {})
    assert sm.release("a")
    again = sm.renew(lease)
    assert again.subnet == lease.subnet


def test_a_node_that_comes_back_gets_its_old_subnet_even_in_quarantine(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    a = sm.acquire("a", ip(1), {})
    b = sm.acquire("b", ip(2), {})
    kv.advance(TTL + 1)
    sm.renew(sm.acquire("b", ip(2), {}))  # b stays
    # a is gone; its subnet is quarantined for others
    c = sm.acquire("c", ip(3), {})
    assert c.subnet not in (a.subnet, b.subnet)
    kv.advance(QUARANTINE / 2)
    again = sm.acquire("a", ip(1), {})
    assert again.subnet == a.subnet


def test_an_expired_subnet_is_quarantined_then_free_for_others(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    a = sm.acquire("a", ip(1), {})
    kv.advance(TTL + 1)
    b = sm.acquire("b", ip(2), {})
    assert b.subnet != a.subnet, "a's subnet is quarantined"
    _, states = sm.subnet_states()
    quarantined = [s for s in states if s.status == "quarantined"]
    assert [str(s.subnet) for s in quarantined] == [str(a.subnet)]
    assert quarantined[0].free_at == kv.now() + QUARANTINE
    kv.advance(QUARANTINE - 1)
    assert sm.acquire("c", ip(3), {}).subnet not in (a.subnet, b.subnet)
    kv.advance(2)
    assert sm.acquire("d", ip(4), {}).subnet == a.subnet, "quarantine over: the lowest free subnet again"
    # a comes back now: its subnet is d's, so it gets another one
    assert sm.acquire("a", ip(1), {}).subnet not in (a.subnet, b.subnet)


def test_the_clusters_quarantine_wins_over_the_managers(kv: MemoryKV) -> None:
    sm = manager(kv, config(quarantine=5))
    a = sm.acquire("a", ip(1), {})
    kv.advance(TTL + 1)
    assert sm.acquire("b", ip(2), {}).subnet != a.subnet
    kv.advance(6)
    assert sm.acquire("c", ip(3), {}).subnet == a.subnet
    assert sm.quarantine == 5


def test_network_full_says_how_full_and_when_quarantine_ends(kv: MemoryKV) -> None:
    sm = manager(kv, config("10.0.0.0/22"))  # 4 x /24, the first left out: 3 subnets
    leases = [sm.acquire(n, ip(i), {}) for i, n in enumerate("abc", 1)]
    assert subnets(leases) == ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]
    with pytest.raises(NetworkFull) as info:
        sm.acquire("d", ip(4), {})
    assert info.value.msg == "no free subnet left in 10.0.0.0/22 (3 of 3 leased or quarantined)"
    assert isinstance(info.value, TryAgainLater) and info.value.code == 11
    sm.renew(leases[0])
    sm.renew(leases[1])
    kv.advance(TTL - 1)
    sm.renew(leases[0])
    sm.renew(leases[1])
    kv.advance(2)  # c expires
    with pytest.raises(NetworkFull) as info:
        sm.acquire("d", ip(4), {})
    assert info.value.msg == ("no free subnet left in 10.0.0.0/22 (3 of 3 leased or quarantined); "
                              "1 quarantined, the first is free again in 60s")


def test_release_frees_the_subnet_at_once(kv: MemoryKV) -> None:
    sm = manager(kv, config("10.0.0.0/28", subnet_len=29))
    a = sm.acquire("a", ip(1), {})
    sm.acquire("b", ip(2), {})
    assert sm.release("a")
    assert a.lease_id not in kv.lease_ids()
    assert sm.acquire("c", ip(3), {}).subnet == a.subnet, "released: no quarantine"
    assert not sm.release("nobody")


def test_release_ends_a_quarantine(kv: MemoryKV) -> None:
    sm = manager(kv, config("10.0.0.0/28", subnet_len=29))
    a = sm.acquire("a", ip(1), {})
    sm.acquire("b", ip(2), {})
    kv.advance(TTL + 1)
    sm.acquire("b", ip(2), {})
    with pytest.raises(NetworkFull):
        sm.acquire("c", ip(3), {})
    assert sm.release("a")
    assert sm.acquire("c", ip(3), {}).subnet == a.subnet


class SameSnapshotKV(MemoryKV):
    """Each racer thread's first read waits until all racers have read: they all see the same free subnets."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties)
        self.seen: set[str] = set()

    def list_prefixes(self, prefixes: Any) -> Any:
        result = super().list_prefixes(prefixes)
        me = threading.current_thread().name
        if me.startswith("racer-") and me not in self.seen:
            self.seen.add(me)
            self.barrier.wait(5)
        return result


def race(sm_for: Any, nodes: list[str]) -> tuple[dict[str, Lease], dict[str, BaseException]]:
    got: dict[str, Lease] = {}
    failed: dict[str, BaseException] = {}

    def run(node: str) -> None:
        try:
            got[node] = sm_for(node).acquire(node, ip(len(got) + 1), {})
        except BaseException as exc:
            failed[node] = exc

    threads = [threading.Thread(target=run, args=(n,), name=f"racer-{n}") for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    return got, failed


def test_agents_racing_on_the_same_snapshot_never_share_a_subnet() -> None:
    kv = SameSnapshotKV(parties=6)
    SubnetManager(kv).init_config(config())
    got, failed = race(lambda node: SubnetManager(kv, ttl=TTL), [f"n{i}" for i in range(6)])
    assert failed == {}
    assert len({lease.subnet for lease in got.values()}) == 6
    assert kv.calls["txn"] > 6, "the same snapshot made them collide, and the losers tried again"
    leases, _ = SubnetManager(kv).list_leases()
    assert sorted(lease.node for lease in leases) == sorted(got)


def test_racing_on_an_almost_full_network_fills_it_exactly_and_says_full() -> None:
    kv = SameSnapshotKV(parties=12)
    SubnetManager(kv).init_config(config("10.0.0.0/24", subnet_len=28))  # 15 subnets
    pre = SubnetManager(kv, ttl=TTL)
    for i in range(11):
        pre.acquire(f"old{i}", ip(100 + i), {})
    got, failed = race(lambda node: SubnetManager(kv, ttl=TTL), [f"new{i}" for i in range(12)])
    assert len(got) == 4 and len({lease.subnet for lease in got.values()}) == 4
    assert len(failed) == 8 and all(isinstance(e, NetworkFull) for e in failed.values())
    leases, _ = pre.list_leases()
    assert len(leases) == 15 and len({lease.subnet for lease in leases}) == 15
    assert kv.lease_ids() == sorted(lease.lease_id for lease in leases), "losers revoked their etcd leases"


def test_init_config_is_idempotent_and_guards_changes(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    sm.init_config(config())
    with pytest.raises(InvalidConfig, match=r"a different cluster config exists at /pycni/config .* pass --force"):
        sm.init_config(config("10.245.0.0/16"))
    sm.acquire("a", ip(1), {})  # 10.244.1.0/24
    with pytest.raises(InvalidConfig, match=r"live leases fall outside the new one \(a 10.244.1.0/24\)"):
        sm.init_config(config("10.245.0.0/16"), force=True)
    with pytest.raises(InvalidConfig, match=r"outside the new one"):
        sm.init_config(config(subnet_len=25), force=True)
    sm.init_config(config(backend=BackendConfig(type="host-gw")), force=True)
    assert sm.load_config().backend.type == "host-gw"


def test_an_unreadable_config_is_named(kv: MemoryKV) -> None:
    kv.create("/pycni/config", b'{"Network": "10.0.0.0/33"}')
    with pytest.raises(InvalidConfig, match=r"^cluster config at /pycni/config: Network: '10.0.0.0/33' is not a CIDR"):
        manager(kv).load_config()
    manager(kv).init_config(config(), force=True)
    assert manager(kv).load_config() == config()


def test_prefixes_keep_clusters_apart(kv: MemoryKV) -> None:
    one, two = manager(kv, config()), SubnetManager(kv, "/other/", ttl=TTL, clock=kv.now)
    two.init_config(config("10.50.0.0/16"))
    one.acquire("a", ip(1), {})
    assert two.acquire("a", ip(1), {}).subnet == IPv4Network("10.50.1.0/24")
    assert two.list_leases()[0][0].key == "/other/subnets/10.50.1.0-24"
    assert len(one.list_leases()[0]) == 1


def test_bad_node_names_are_refused(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    for name in ("", "a b", "a/b", "x" * 254):
        with pytest.raises(InvalidConfig, match=r"node name"):
            sm.acquire(name, ip(1), {})


# -- the node view (pycni node list) ------------------------------------------------


def test_node_rows_show_up_expired_and_removed_nodes(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    sm.acquire("a", ip(1), {})
    sm.acquire("b", ip(2), {})
    sm.acquire("c", ip(3), {})
    kv.advance(TTL + 1)
    sm.acquire("a", ip(1), {})  # a comes back; b's and c's expiries are stamped
    sm.release("c")
    _, states = sm.subnet_states()
    rows = {row.name: row for row in node_rows(states)}
    now = kv.now()
    assert rows["a"].state == "up" and rows["a"].status(now) == f"up, lease ends in {TTL}s unless renewed"
    assert rows["b"].status(now) == "expired now; subnet quarantined, free in 1m"
    assert rows["c"].state == "removed" and rows["c"].status(now) == "removed now; subnet free"
    assert [r.name for r in node_rows(states)] == ["a", "b", "c"]


def test_describe_in_and_tables() -> None:
    assert describe_in(None, 0) == "-"
    assert describe_in(100, 100.2) == "now"
    assert describe_in(125, 100) == "in 25s"
    assert describe_in(100, 290) == "3m10s ago"
    assert describe_in(100 + 3 * 3600 + 60, 100) == "in 3h01m"
    assert describe_in(100 + 50 * 3600, 100) == "in 2d2h"
    assert format_table(("A", "LONGER"), [("xx", "1"), ("y", "22")]) == "A   LONGER\nxx  1\ny   22"
