"""The agent's loops on the in-memory KV, with a recording backend: no root, no kernel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from pycni.cluster.agent_metrics import AgentMetrics
from pycni.cluster.backends.base import Changes, Desired, Peer, RouteSpec
from pycni.cluster.config import BackendConfig, ClusterConfig
from pycni.cluster.conflist import CONFLIST_NAME
from pycni.cluster.lease import Lease
from pycni.cluster.lease_keeper import LeaseKeeper
from pycni.cluster.peer_watcher import PeerWatcher, describe_changes
from pycni.cluster.reconciler import NodeFiles, Reconciler
from pycni.cluster.subnets import SubnetManager
from pycni.testing.kv import MemoryKV
from tests.support.wait import wait_until

CLUSTER = IPv4Network("10.244.0.0/16")


class RecordingBackend:
    type = "host-gw"

    def __init__(self) -> None:
        self.converged: list[tuple[Peer, Desired]] = []

    def pod_mtu(self) -> int:
        return 1500

    def backend_data(self) -> dict[str, object]:
        return {}

    def plan(self, own: Peer, peers: Iterable[Peer]) -> Desired:
        return Desired(routes=frozenset(RouteSpec(p.subnet, p.public_ip, "eth0") for p in peers))

    def converge(self, own: Peer, desired: Desired) -> Changes:
        self.converged.append((own, desired))
        return Changes(added=tuple(str(r.dst) for r in desired.routes))

    def teardown(self) -> None:
        pass


@pytest.fixture
def kv() -> Iterator[MemoryKV]:
    store = MemoryKV(clock=time.monotonic)
    SubnetManager(store).init_config(ClusterConfig(network=CLUSTER, backend=BackendConfig(type="host-gw")))
    yield store
    store.close()


def keeper(kv: MemoryKV, node: str, ip: str, got: list[Lease]) -> LeaseKeeper:
    return LeaseKeeper(SubnetManager(kv, ttl=9), node, IPv4Address(ip), {}, ttl=9, on_lease=got.append,
                       metrics=AgentMetrics())


def test_lease_keeper_acquires_renews_and_rides_out_an_outage(kv: MemoryKV) -> None:
    got: list[Lease] = []
    k = keeper(kv, "n1", "192.168.77.11", got)
    assert k.step() == pytest.approx(3.0)
    assert [lease.node for lease in got] == ["n1"] and got[0].subnet.subnet_of(CLUSTER)
    assert k.step() == pytest.approx(3.0)
    assert len(got) == 1  # a renewal that changes nothing is not news
    assert k.metrics.get("pycni_agent_lease_renewals_total") == 1
    kv.set_available(False)
    assert k.step() == 1.0
    assert k.lease is not None and k.metrics.get("pycni_agent_datastore_errors_total", component="lease") == 1
    kv.set_available(True)
    k.step()
    assert k.lease.subnet == got[0].subnet


def test_a_restarted_agent_gets_its_subnet_back(kv: MemoryKV) -> None:
    first: list[Lease] = []
    keeper(kv, "n1", "192.168.77.11", first).step()
    again: list[Lease] = []
    keeper(kv, "n1", "192.168.77.11", again).step()
    assert again[0].subnet == first[0].subnet


def test_peer_watcher_follows_joins_changes_and_leaves(kv: MemoryKV) -> None:
    seen: list[dict[str, Lease]] = []
    watcher = PeerWatcher(SubnetManager(kv), on_peers=seen.append, metrics=AgentMetrics())
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,), daemon=True)
    got: list[Lease] = []
    keeper(kv, "n1", "192.168.77.11", got).step()
    thread.start()
    try:
        wait_until(lambda: seen and set(seen[-1]) == {"n1"})
        keeper(kv, "n2", "192.168.77.12", got).step()
        wait_until(lambda: set(seen[-1]) == {"n1", "n2"})
        keeper(kv, "n2", "192.168.77.22", got).step()  # n2 comes back with another address
        wait_until(lambda: set(seen[-1]) == {"n1", "n2"} and str(seen[-1]["n2"].public_ip) == "192.168.77.22")
        SubnetManager(kv).release("n2")
        wait_until(lambda: set(seen[-1]) == {"n1"})
        assert watcher.metrics.get("pycni_agent_peers") == 1
    finally:
        stop.set()
        thread.join(5)


def test_describe_changes() -> None:
    def lease(node: str, ip: str) -> Lease:
        return Lease(node=node, subnet=IPv4Network("10.244.2.0/24"), public_ip=IPv4Address(ip),
                     backend_type="host-gw", backend_data={}, expires_at=None, key=f"/k/{node}", mod_revision=1)

    old = {"a": lease("a", "192.0.2.1"), "b": lease("b", "192.0.2.2")}
    new = {"a": lease("a", "192.0.2.9"), "c": lease("c", "192.0.2.3")}
    lines = describe_changes(old, new)
    assert lines[0].startswith("peer c appeared") and lines[1].startswith("peer b left")
    assert lines[2].startswith("peer a changed") and "192.0.2.9" in lines[2]


def test_reconciler_waits_for_the_first_peer_list_then_converges_and_writes_files(kv: MemoryKV,
                                                                                   tmp_path: Path) -> None:
    backend = RecordingBackend()
    files = NodeFiles(conf_dir=str(tmp_path / "net.d"), run_dir=str(tmp_path / "run"), ipam_data_dir="/x")
    rec = Reconciler(backend, CLUSTER, files, AgentMetrics(), masquerade=False)
    got: list[Lease] = []
    keeper(kv, "n1", "192.168.77.11", got).step()
    keeper(kv, "n2", "192.168.77.12", got).step()
    rec.set_own(got[0])
    assert rec.reconcile_once() is None  # peers unknown yet: a restarted agent removes nothing
    assert backend.converged == []
    rec.set_peers({lease.node: lease for lease in got})
    changes = rec.reconcile_once()
    assert changes is not None and changes.added == (str(got[1].subnet),)
    own, desired = backend.converged[-1]
    assert own.node == "n1" and [r.gw for r in desired.routes] == [IPv4Address("192.168.77.12")]
    conflist = (tmp_path / "net.d" / CONFLIST_NAME).read_text()
    assert str(got[0].subnet) in conflist
    assert f"PYCNI_SUBNET={got[0].subnet[1]}/24" in (tmp_path / "run" / "subnet.env").read_text()


def test_reconciler_loop_runs_on_wake_and_counts_errors(tmp_path: Path, kv: MemoryKV) -> None:
    class Failing(RecordingBackend):
        def converge(self, own: Peer, desired: Desired) -> Changes:
            raise RuntimeError("boom")

    metrics = AgentMetrics()
    rec = Reconciler(Failing(), CLUSTER, NodeFiles(str(tmp_path / "c"), str(tmp_path / "r")), metrics,
                     masquerade=False)
    got: list[Lease] = []
    keeper(kv, "n1", "192.168.77.11", got).step()
    stop = threading.Event()
    thread = threading.Thread(target=rec.run, args=(stop, 60.0), daemon=True)
    thread.start()
    try:
        rec.set_own(got[0])
        rec.set_peers({})
        wait_until(lambda: metrics.get("pycni_agent_reconcile_errors_total") >= 1)
    finally:
        stop.set()
        rec.wake.set()
        thread.join(5)


def test_reconciler_loop_ends_soon_after_stop_even_unwoken(tmp_path: Path) -> None:
    """SIGTERM's handler only sets ``stop`` (on the main thread, which runs this loop): the loop must see it
    within a fraction of a second, not at the next resync interval (SIGKILL came first under ``lab down``)."""
    rec = Reconciler(RecordingBackend(), CLUSTER, NodeFiles(str(tmp_path / "c"), str(tmp_path / "r")),
                     AgentMetrics(), masquerade=False)
    stop = threading.Event()
    thread = threading.Thread(target=rec.run, args=(stop, 60.0), daemon=True)
    thread.start()
    time.sleep(0.2)
    stopped = time.monotonic()
    stop.set()  # and no wake: a handler knows nothing of the reconciler
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - stopped < 1.5
