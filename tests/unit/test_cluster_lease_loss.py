"""A node that loses its lease (issue 16, item 4): it asks for the subnet its pods use, and says what it left behind.

SubnetManager on the in-memory KV with a hand-driven clock, and the pure
parts of ``pycni.cluster.stranded``; the kernel side is
tests/cluster/test_lease_loss.py's.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Interface, ip_address
from pathlib import Path

import pytest

from pycni.cluster.agent_metrics import AgentMetrics
from pycni.cluster.conflist import render_subnet_env
from pycni.cluster.lease import Lease
from pycni.cluster.lease_keeper import LeaseKeeper
from pycni.cluster.stranded import STRANDED_FILE, LeftBehind, foreign_gateways, previous_subnet, stranded
from pycni.ipam.host_local.store import DiskStore, Reservation
from pycni.testing.kv import MemoryKV
from tests.support.subnet_manager import QUARANTINE, TTL, config, ip, manager, memory_kv

kv = pytest.fixture(memory_kv)
NET = IPv4Network


def forget(kv: MemoryKV, subnet: IPv4Network) -> None:
    """The store loses every record of ``subnet`` (restored from an old backup, keys deleted by hand)."""
    key = f"{subnet.network_address}-{subnet.prefixlen}"
    for prefix in ("/pycni/subnets/", "/pycni/history/"):
        kv.delete(prefix + key)


def test_a_node_whose_record_is_gone_gets_the_subnet_it_asks_for_not_the_lowest_free(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    a, b = sm.acquire("a", ip(1), {}), sm.acquire("b", ip(2), {})
    sm.release("a")  # the lowest subnet is free for anyone now
    forget(kv, b.subnet)

    assert sm.acquire("b", ip(2), {}, prefer=b.subnet).subnet == b.subnet
    assert sm.acquire("c", ip(3), {}).subnet == a.subnet


def test_asking_for_a_subnet_someone_holds_gets_another(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    a = sm.acquire("a", ip(1), {})
    got = sm.acquire("b", ip(2), {}, prefer=a.subnet)
    assert got.subnet != a.subnet


def test_asking_for_a_subnet_in_another_nodes_quarantine_gets_another(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    a = sm.acquire("a", ip(1), {})
    kv.advance(TTL + 1)  # a's lease expired: its subnet is quarantined for a
    assert sm.acquire("b", ip(2), {}, prefer=a.subnet).subnet != a.subnet
    kv.advance(QUARANTINE + 1)
    assert sm.acquire("c", ip(3), {}, prefer=a.subnet).subnet == a.subnet


def test_the_own_quarantined_subnet_and_subnets_outside_the_network(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    a = sm.acquire("a", ip(1), {})
    kv.advance(TTL + 1)
    assert sm.acquire("a", ip(1), {}, prefer=a.subnet).subnet == a.subnet, "quarantine protects it for a"
    outside = sm.acquire("b", ip(2), {}, prefer=NET("10.99.0.0/24"))
    wrong_length = sm.acquire("c", ip(3), {}, prefer=NET("10.244.64.0/20"))
    assert outside.subnet.subnet_of(NET("10.244.0.0/16")) and wrong_length.subnet.prefixlen == 24


def test_the_lease_keeper_asks_for_what_prefer_says_on_every_acquire(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    sm.acquire("other", ip(9), {})
    wanted = NET("10.244.200.0/24")
    got: list[Lease] = []
    keeper = LeaseKeeper(sm, "n1", IPv4Address("192.0.2.1"), {}, ttl=TTL, on_lease=got.append,
                         metrics=AgentMetrics(), prefer=lambda: wanted)
    keeper.step()
    assert [lease.subnet for lease in got] == [wanted]


def test_previous_subnet_reads_the_subnet_env_the_agent_writes(tmp_path: Path) -> None:
    assert previous_subnet(str(tmp_path)) is None
    (tmp_path / "subnet.env").write_text(render_subnet_env(NET("10.244.0.0/16"), NET("10.244.7.0/24"), 1450,
                                                           "vxlan"))
    assert previous_subnet(str(tmp_path)) == NET("10.244.7.0/24")
    (tmp_path / "subnet.env").write_text("PYCNI_SUBNET=garbage\n")
    assert previous_subnet(str(tmp_path)) is None


def res(ip_text: str, cid: str) -> Reservation:
    return Reservation(ip_address(ip_text), cid, "eth0")


def test_stranded_pods_are_the_reservations_outside_the_subnet() -> None:
    found = [res("10.244.7.3", "new"), res("10.244.1.9", "old2"), res("10.244.1.2", "old1"), res("fd00::2", "v6")]
    assert [r.container_id for r in stranded(found, NET("10.244.7.0/24"))] == ["old1", "old2"]


def test_foreign_gateways_are_gateway_shaped_cluster_addresses_outside_the_subnet() -> None:
    on_bridge: list[IPv4Interface | IPv6Interface] = [
        IPv4Interface("10.244.1.1/24"), IPv4Interface("10.244.7.1/24"), IPv4Interface("192.168.1.5/24"),
        IPv4Interface("10.244.2.9/24"), IPv4Interface("10.244.3.1/16"), IPv6Interface("fd00::1/64")]
    assert foreign_gateways(on_bridge, NET("10.244.0.0/16"), NET("10.244.7.0/24")) == [
        IPv4Interface("10.244.1.1/24")]


def test_left_behind_reports_stranded_pods_once_and_clears_the_report(tmp_path: Path) -> None:
    store = DiskStore(str(tmp_path / "ipam"), "pycni")
    with store.lock():
        store.reserve(ip_address("10.244.1.2"), "old", "eth0", 0)
        store.reserve(ip_address("10.244.7.2"), "new", "eth0", 0)
    metrics = AgentMetrics()
    left = LeftBehind(bridge="pcx-no-such-br", network="pycni", data_dir=str(tmp_path / "ipam"),
                      run_dir=str(tmp_path), cluster=NET("10.244.0.0/16"), metrics=metrics)

    assert [r.container_id for r in left.check(NET("10.244.7.0/24"))] == ["old"]
    assert json.loads((tmp_path / STRANDED_FILE).read_text()) == [
        {"ip": "10.244.1.2", "containerID": "old", "ifname": "eth0"}]
    assert metrics.get("pycni_agent_stranded_pods") == 1
    with store.lock():
        store.release_ip(ip_address("10.244.1.2"))
    assert left.check(NET("10.244.7.0/24")) == []
    assert not (tmp_path / STRANDED_FILE).exists() and metrics.get("pycni_agent_stranded_pods") == 0


def test_a_running_node_whose_subnet_another_node_took_moves_once_and_says_so(kv: MemoryKV) -> None:
    sm = manager(kv, config())
    got: list[Lease] = []
    keeper = LeaseKeeper(sm, "a", ip(1), {}, ttl=TTL, on_lease=got.append, metrics=AgentMetrics(),
                         prefer=lambda: got[-1].subnet if got else None)  # what the agent's subnet.env says
    keeper.step()
    first = got[-1].subnet
    sm.release("a")
    assert sm.acquire("b", ip(2), {}, prefer=first).subnet == first  # b takes it before a renews

    keeper.step()  # the renewal finds b on the subnet: lease lost
    keeper.step()  # acquire again: the subnet a asks for is b's, so a free one

    assert [lease.subnet for lease in got][:1] == [first] and len(got) == 2
    assert got[1].subnet != first and keeper.lease is not None and keeper.lease.subnet == got[1].subnet
